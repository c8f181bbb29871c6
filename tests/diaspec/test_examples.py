"""The shipped examples: generate -> implement -> run on simulated devices, and regeneration."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from diaspec.compiler import check_spec
from diaspec.pygen import generate_python
from diaspec.usercheck import check_user_code

from ds_helpers import EXAMPLES, import_app


def _generate(root: Path, spec: str, package: str):
    checked = check_spec(root / spec)
    assert checked.ok, checked.diagnostics.render()
    result = generate_python(checked, root / package)
    return checked, result


def test_examples_check_without_findings():
    for spec in ("mobile_robot/mobile_robot.diaspec", "pick_and_place/pick_and_place.diaspec",
                 "warehouse_robot/warehouse_robot.diaspec"):
        checked = check_spec(EXAMPLES / spec)
        assert checked.diagnostics.items == [], checked.diagnostics.render()


def test_mobile_robot_avoids_obstacles_and_stops_on_collision(example_copy):
    root = example_copy("mobile_robot")
    checked, result = _generate(root, "mobile_robot.diaspec", "mobile_robot_app")
    assert check_user_code(checked, root / "mobile_robot_app").items == []
    fw = import_app(root, "mobile_robot_app")
    types = fw.types
    trace: list[str] = []
    app = fw.build("mobile_robot_app", clock=fw.VirtualClock(), trace=trace.append)
    base, led, rear = app.device("base"), app.device("status_led"), app.device("rear_led")

    # an obstacle beyond the sonar's range publishes nothing
    app.device("sonar_front").publish_distance(6.0, position=types.SonarPosition.FRONT)
    assert base.orders == [] and "publish ObstacleDistance" not in "\n".join(trace)

    # a near obstacle: turn away and blink (only the LED mounted on top)
    app.device("sonar_front").publish_distance(0.3, position=types.SonarPosition.FRONT)
    assert [(o.method, o.args, o.controller) for o in base.orders] == [
        ("set_velocity", (types.Velocity(linear=0.0, angular=0.8),), "Motion")
    ]
    assert [(o.method, o.args) for o in led.orders] == [("set_pattern", ("avoid", 3))]
    assert rear.orders == []

    # the obstacle goes away: cruise again
    app.device("sonar_front").publish_distance(1.5, position=types.SonarPosition.FRONT)
    assert base.orders[-1].args == (types.Velocity(linear=0.4, angular=0.0),)

    # the bumper hits something: stop, and every LED shows it
    app.device("bumper").publish_pressed(True)
    assert base.order_names() == ["set_velocity", "set_velocity", "stop"]
    assert rear.order_names() == ["set_pattern"] and rear.orders[0].args == ("stopped", 0)

    # while stopped, a sonar reading keeps it stopped: DriveMode pulls Collision
    app.device("sonar_left").publish_distance(0.2, position=types.SonarPosition.LEFT)
    assert base.order_names() == ["set_velocity", "set_velocity", "stop"]
    assert any(line.endswith("pull Collision by DriveMode") for line in trace)

    # periodic: Clearance samples the front sonars (grouped by mount) every 200 ms
    led.clear_orders()
    app.advance(199)
    assert led.orders == []
    app.advance(1)
    assert [(o.args, o.controller, o.time_ms) for o in led.orders] == [(("clearance", 2), "Dashboard", 200.0)]
    assert app.values["Clearance"] == 0.2
    app.advance(400)
    assert len(led.orders) == 1  # no change, no order
    assert app.failures == []


def test_pick_and_place_picks_a_part_in_reach_and_places_it(example_copy):
    root = example_copy("pick_and_place")
    checked, _ = _generate(root, "pick_and_place.diaspec", "pick_and_place_app")
    assert check_user_code(checked, root / "pick_and_place_app").items == []
    fw = import_app(root, "pick_and_place_app")
    t = fw.types
    app = fw.build("pick_and_place_app", clock=fw.VirtualClock())
    arm, gripper, belt = app.device("arm"), app.device("gripper"), app.device("belt")
    arm.publish_position(t.Point(0.0, 0.0, 0.2))

    far = t.Detection("bolt", t.Point(2.0, 0.0, 0.0))
    unwanted = t.Detection("banana", t.Point(0.1, 0.0, 0.0))
    app.device("camera").publish_detections((far, unwanted))
    assert arm.orders == [] and belt.orders == []

    part = t.Detection("nut", t.Point(0.3, 0.1, 0.0))
    app.device("camera").publish_detections((far, part))
    assert belt.order_names() == ["halt"]
    assert gripper.order_names() == ["open", "close"]
    assert arm.orders[0].method == "move_to" and arm.orders[0].args == (part.at, 0.5)

    gripper.publish_holding(True)
    assert arm.orders[-1].args == (t.Point(0.0, -0.6, 0.3), 0.3)
    assert gripper.order_names() == ["open", "close", "open"]
    gripper.publish_holding(False)
    assert arm.order_names() == ["move_to", "move_to", "home"]
    assert belt.orders[-1].method == "run" and belt.orders[-1].args == (0.2,)

    # the belt stalls: Safety halts it once, at the next 500 ms sample
    belt.clear_orders()
    belt.publish_speed(0.0)
    app.advance(499)
    assert belt.orders == []
    app.advance(1)
    assert [(o.method, o.controller) for o in belt.orders] == [("halt", "Safety")]
    app.advance(1000)
    assert len(belt.orders) == 1
    assert app.failures == []


def test_regeneration_keeps_user_code_and_reports_changes(example_copy):
    root = example_copy("mobile_robot")
    package = root / "mobile_robot_app"
    _generate(root, "mobile_robot.diaspec", "mobile_robot_app")
    user_files = {p: p.read_bytes() for p in package.rglob("*.py") if "framework" not in p.parts}
    spec = root / "mobile_robot.diaspec"
    text = spec.read_text()
    # the design changes: DriveMode no longer listens to Collision but samples every 100 ms;
    # Dashboard disappears; a new controller appears
    text = text.replace("    when provided Collision maybe publish;\n", "    when periodic <100 ms> maybe publish;\n")
    text = text.replace("controller Dashboard {\n    when provided Clearance do Blink on Led;\n}\n",
                        "controller Horn {\n    when provided Clearance do Blink on Led;\n}\n")
    spec.write_text(text)
    checked, result = _generate(root, "mobile_robot.diaspec", "mobile_robot_app")
    for path, data in user_files.items():
        assert path.read_bytes() == data, f"{path} was changed"
    assert package / "components" / "horn.py" in result.created_user_files
    report = check_user_code(checked, package, display_root=root)
    lines = [str(d) for d in report.sorted()]
    assert lines == [
        # Dashboard became Horn with the same contract: a rename, said as such
        "mobile_robot_app/components/dashboard.py:1:1: warning: dashboard looks renamed to horn (same contracts): "
        "move its code into components/horn.py and delete this module",
        "mobile_robot_app/components/drive_mode.py:7:1: error: imports DiscoverDriveModeOnCollision, which the "
        "framework no longer has (its contract or type left the design)",
        "mobile_robot_app/components/drive_mode.py:13:1: error: DriveMode is missing on_every_100ms(self, discover) "
        "for 'when periodic <100 ms> maybe publish'",
        "mobile_robot_app/components/drive_mode.py:32:5: warning: DriveMode.on_collision is no longer called: "
        "its contract left the design (remove it)",
    ]
    framework = (package / "framework" / "components.py").read_text()
    assert framework.startswith("# Code generated by diaspec from mobile_robot.diaspec (spec sha256 ")
    assert "DO NOT EDIT" in framework.splitlines()[0]
    assert "AbstractHorn" in framework and "AbstractDashboard" not in framework


def test_pick_and_place_regeneration_reports_stale_missing_and_mismatched(example_copy):
    root = example_copy("pick_and_place")
    package = root / "pick_and_place_app"
    _generate(root, "pick_and_place.diaspec", "pick_and_place_app")
    # the user breaks a signature; the design renames Stalled to Jam
    picker = package / "components" / "picker.py"
    picker.write_text(picker.read_text().replace("def on_target(self, value: Detection, discover: DiscoverPickerOnTarget)",
                                                 "def on_target(self, value)"))
    spec = root / "pick_and_place.diaspec"
    spec.write_text(spec.read_text().replace("Stalled", "Jam"))
    kept = {p: p.read_bytes() for p in package.rglob("*.py") if "framework" not in p.parts}
    checked, result = _generate(root, "pick_and_place.diaspec", "pick_and_place_app")
    assert all(p.read_bytes() == data for p, data in kept.items())
    assert result.created_user_files == [package / "components" / "jam.py"]
    lines = [str(d) for d in check_user_code(checked, package, display_root=root).sorted()]
    assert lines == [
        "pick_and_place_app/components/picker.py:15:5: error: Picker.on_target takes (value) but "
        "'when provided Target do Move on Arm, Grip on Gripper, ConveyorControl on Conveyor' calls it with "
        "(value, discover): write on_target(self, value, discover)",
        "pick_and_place_app/components/safety.py:7:1: error: imports DiscoverSafetyOnStalled, which the framework "
        "no longer has (its contract or type left the design)",
        # the design renamed Stalled to Jam: one callback gone and one new with the same signature
        "pick_and_place_app/components/safety.py:11:5: error: Safety.on_stalled looks renamed: the design now calls "
        "on_jam(self, value, discover) for 'when provided Jam do ConveyorControl on Conveyor' (same signature); "
        "rename the method",
        "pick_and_place_app/components/stalled.py:1:1: warning: stalled looks renamed to jam (same contracts): move "
        "its code into components/jam.py and delete this module",
    ]


@pytest.mark.parametrize("name", ["mobile_robot", "pick_and_place", "warehouse_robot"])
def test_each_example_passes_its_own_tests_on_its_scenario(example_copy, name):
    """The example's test_app.py (its user test) plays scenario.toml on the generated framework."""
    root = example_copy(name)
    _generate(root, f"{name}.diaspec", f"{name}_app")
    import_app(root, f"{name}_app")
    module = importlib.import_module(f"{name}_app.test_app")
    tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
    assert tests
    for test in tests:
        test()


def test_regeneration_checks_discover_uses_structures_and_emissions(example_copy):
    """A design change that user code still relies on is found at generate time, not at run time."""
    root = example_copy("mobile_robot")
    package = root / "mobile_robot_app"
    _generate(root, "mobile_robot.diaspec", "mobile_robot_app")
    spec = root / "mobile_robot.diaspec"
    taxonomy = root / "taxonomy.diaspec"
    # DriveMode no longer pulls Collision; Velocity gains a field; Collision stops publishing on push;
    # Motion may no longer order the LED
    spec.write_text(spec.read_text()
                    .replace("when provided ObstacleDistance get Collision maybe publish;", "when provided ObstacleDistance maybe publish;")
                    .replace("when provided pressed from Bumper maybe publish;", "when provided pressed from Bumper no publish;")
                    .replace("when provided DriveMode do Drive on DriveBase, Blink on Led;", "when provided DriveMode do Drive on DriveBase;")
                    .replace("when provided Collision maybe publish;", "when provided Clearance maybe publish;"))
    taxonomy.write_text(taxonomy.read_text().replace("    angular as Float;\n", "    angular as Float;\n    lateral as Float;\n"))
    checked, _ = _generate(root, "mobile_robot.diaspec", "mobile_robot_app")
    lines = [str(d) for d in check_user_code(checked, package, display_root=root).errors]
    joined = "\n".join(lines)
    assert ("drive_mode.py:27:12: error: DriveMode.on_obstacle_distance uses discover.collision, which 'when provided "
            "ObstacleDistance maybe publish' does not offer (it offers: now)") in joined, joined
    assert "collision.py:18:9: error: Collision.on_pressed_from_bumper returns a value, but 'when provided pressed " \
           "from Bumper no publish' says 'no publish' now: update state and return None" in joined, joined
    assert "motion.py:10:10: error: Velocity(...) lacks lateral: the design gave Velocity this field" in joined, joined
    assert ("motion.py:19:13: error: Motion.on_drive_mode uses discover.led, which 'when provided DriveMode do Drive on "
            "DriveBase' does not offer (it offers: drive_base, now)") in joined, joined
