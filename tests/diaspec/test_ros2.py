"""ROS 2 packaging and the node: package.xml files valid for catkin_pkg (metadata the user's,
dependencies generated), .msg files per structure/enumeration, bindings checked against the design
and the message table, and the node's logic (bridge.py, node.py) on stand-ins for rclpy and the
message classes, which cannot exist here (tests/diaspec/ros_standin.py says what they check)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package_string

from diaspec.compiler import check_spec
from diaspec.rosbind import message_table
from diaspec.rosgen import generate_ros2
from fleetforge.errors import UserError

from ds_helpers import EXAMPLES, import_app, write
from ros_standin import StandInRos, play_as_messages


def test_packages_are_valid_and_messages_match_the_structures(tmp_path):
    checked = check_spec(EXAMPLES / "pick_and_place" / "pick_and_place.diaspec")
    packages = generate_ros2(checked, tmp_path)
    interfaces = parse_package_string((packages.interfaces_dir / "package.xml").read_text())
    interfaces.validate()
    assert interfaces.name == "pick_and_place_interfaces" and interfaces.get_build_type() == "ament_cmake"
    assert [g.name for g in interfaces.member_of_groups] == ["rosidl_interface_packages"]
    node = parse_package_string((packages.node_dir / "package.xml").read_text())
    node.validate()
    assert node.get_build_type() == "ament_python"
    assert [d.name for d in node.exec_depends] == ["rclpy", "python3-tomli", "pick_and_place_interfaces", "std_msgs"]
    tomli = node.exec_depends[1]
    assert tomli.condition == "$ROS_DISTRO == humble"  # Humble's Python 3.10 has no tomllib
    msg = packages.interfaces_dir / "msg"
    assert sorted(p.name for p in msg.iterdir()) == ["Detection.msg", "GripState.msg", "Point.msg"]
    assert (msg / "Detection.msg").read_text().splitlines()[1:] == [
        "# An object the camera recognised, and where.", "string label", "Point at",
    ]
    assert (msg / "GripState.msg").read_text().splitlines()[1:] == ["uint8 OPEN=0", "uint8 CLOSED=1", "uint8 value"]
    cmake = (packages.interfaces_dir / "CMakeLists.txt").read_text()
    assert 'rosidl_generate_interfaces(${PROJECT_NAME}\n  "msg/Detection.msg"\n  "msg/GripState.msg"\n  "msg/Point.msg"\n)' in cmake
    setup = (packages.node_dir / "setup.py").read_text()
    compile(setup, "setup.py", "exec")
    assert "package_data={package_name: ['pick_and_place_app/*.toml']}" in setup  # found without --symlink-install


def test_package_xml_metadata_is_the_users_and_dependencies_follow_the_design(tmp_path):
    spec = tmp_path / "cell" / "pick_and_place.diaspec"
    shutil.copytree(EXAMPLES / "pick_and_place", spec.parent, ignore=shutil.ignore_patterns("framework", "__pycache__"))
    packages = generate_ros2(check_spec(spec), tmp_path / "ws")
    xml = packages.node_dir / "package.xml"
    xml.write_text(xml.read_text().replace("<version>0.1.0</version>", "<version>2.3.4</version>")
                   .replace('<maintainer email="robot@example.com">FleetForge</maintainer>',
                            '<maintainer email="ada@example.org">Ada</maintainer>'))
    # the design's Grasp context becomes a Boolean: no custom message crosses for it any more
    spec.write_text(spec.read_text().replace("context Grasp as GripState", "context Grasp as Boolean"))
    generate_ros2(check_spec(spec), tmp_path / "ws")
    node = parse_package_string(xml.read_text())
    node.validate()
    assert (node.version, node.maintainers[0].email) == ("2.3.4", "ada@example.org")
    assert [d.name for d in node.exec_depends] == ["rclpy", "python3-tomli", "pick_and_place_interfaces", "std_msgs"]
    xml.write_text(xml.read_text().replace("<!-- diaspec: dependencies end -->", ""))
    with pytest.raises(UserError, match="package.xml lost its diaspec dependency markers"):
        generate_ros2(check_spec(spec), tmp_path / "ws")


def test_imported_ros_messages_become_dependencies_and_bad_types_are_refused(tmp_path):
    spec = write(tmp_path, "nav.diaspec", """\
import Pose as geometry_msgs.msg.Pose;
structure Goal { pose as Pose; tags as String[]; }
action Go { go(goal as Goal); }
device Base { source goal as Goal; action Go; }
context Next as Goal { when provided goal from Base always publish; }
controller Drive { when provided Next do Go on Base; }
""")
    packages = generate_ros2(check_spec(spec), tmp_path / "ws")
    assert (packages.interfaces_dir / "msg" / "Goal.msg").read_text().splitlines()[1:] == [
        "geometry_msgs/Pose pose", "string[] tags",
    ]
    xml = parse_package_string((packages.interfaces_dir / "package.xml").read_text())
    assert "geometry_msgs" in [d.name for d in xml.build_depends]
    bad = write(tmp_path, "bad.diaspec", "structure Grid { cells as Float[][]; }\n")
    with pytest.raises(UserError, match=r"Grid.cells: Float\[\]\[\] is a nested array, which ROS messages cannot carry"):
        generate_ros2(check_spec(bad), tmp_path / "ws2")


def _warehouse(tmp_path: Path):
    root = tmp_path / "warehouse_robot"
    shutil.copytree(EXAMPLES / "warehouse_robot", root, ignore=shutil.ignore_patterns("framework", "__pycache__"))
    return root


def _ros_package(root: Path, ws: Path):
    """The ROS 2 packages of the warehouse robot, with the example's user code in the node's app."""
    checked = check_spec(root / "warehouse_robot.diaspec")
    app_dir = ws / "warehouse_robot_ros" / "warehouse_robot_ros" / "warehouse_robot_app"
    shutil.copytree(root / "warehouse_robot_app", app_dir, dirs_exist_ok=True)
    return checked, generate_ros2(checked, ws)


def test_bindings_are_checked_against_the_design_and_the_message_table(tmp_path):
    root = _warehouse(tmp_path)
    deployment = root / "warehouse_robot_app" / "deployment.toml"
    text = deployment.read_text()
    deployment.write_text(text.replace('field = "twist.twist.linear.x"', 'field = "twist.twist.linear.q"')
                          .replace('type = "std_msgs/msg/Float32"', 'type = "std_msgs/msg/Flaot32"')
                          .replace("methods = { beep = { data = \"times\" } }", "methods = { beep = { data = \"time\" } }")
                          .replace('index = { position = "REAR" }', 'index = { side = "REAR" }'))
    with pytest.raises(UserError) as caught:
        _ros_package(root, tmp_path / "ws")
    message = str(caught.value)
    assert "ROS 2 bindings do not fit the design" in message
    assert "device #1 'ring': ros binding #4: distance is indexed by position; write index = { position = ... }" in message
    assert ("device #2 'line': ros binding #1: unknown message type 'std_msgs/msg/Flaot32' (add it to ros_messages.toml "
            "beside the design) (did you mean 'std_msgs/msg/Float32'?)") in message
    assert "device #5 'base': ros binding #1: geometry_msgs/msg/Vector3 has no field 'q'" in message
    assert "device #6 'buzzer': ros binding #1: beep has no parameter 'time' (did you mean 'times'?)" in message


def _node(tmp_path: Path, monkeypatch, parameters: dict):
    root = _warehouse(tmp_path)
    checked, packages = _ros_package(root, tmp_path / "ws")
    node_xml = parse_package_string((packages.node_dir / "package.xml").read_text())
    assert {"geometry_msgs", "nav_msgs", "sensor_msgs", "std_msgs", "std_srvs"} <= {d.name for d in node_xml.exec_depends}
    ros = StandInRos(message_table(str(root / "warehouse_robot.diaspec")),
                     {"warehouse_robot_interfaces": packages.interfaces_dir / "msg"})
    ros.install(monkeypatch)
    for name in [m for m in sys.modules if m.startswith("warehouse_robot_ros")]:
        monkeypatch.delitem(sys.modules, name)
    import_app(packages.node_dir, "warehouse_robot_ros.warehouse_robot_app")
    node_module = __import__("warehouse_robot_ros.node", fromlist=["AppNode"])
    monkeypatch.setattr(sys.modules["rclpy.node"].Node, "parameters", parameters)
    node = node_module.AppNode()
    return ros, node, packages


def test_the_node_reads_topics_sends_orders_and_runs_on_ros_time(tmp_path, monkeypatch):
    ros, node, _ = _node(tmp_path, monkeypatch, {})
    msg = ros.message_class
    ros.deliver("ring/front", msg("sensor_msgs/msg/Range")(range=2.0), "sensor_msgs/msg/Range")
    ros.deliver("line/offset", msg("std_msgs/msg/Float32")(data=0.05), "std_msgs/msg/Float32")
    topic, twist = ros.published[-1]
    assert topic == "cmd_vel" and (twist.linear.x, twist.angular.z) == (0.5, 0.1)
    ros.deliver("ring/front", msg("sensor_msgs/msg/Range")(range=0.3), "sensor_msgs/msg/Range")
    ros.deliver("line/offset", msg("std_msgs/msg/Float32")(data=0.05), "std_msgs/msg/Float32")
    assert (ros.published[-1][1].linear.x, ros.published[-1][1].angular.z) == (0.0, 0.0)
    # the battery report is a periodic contract on a ROS timer: nothing before 2 s of ROS time
    ros.deliver("battery/b", msg("sensor_msgs/msg/BatteryState")(percentage=0.1), "sensor_msgs/msg/BatteryState")
    ros.advance_to(1999)
    assert not any(topic == "buzzer" for topic, _ in ros.published)
    ros.advance_to(2000)
    assert [(t, m.data) for t, m in ros.published if t == "buzzer"] == [("buzzer", 1)]
    # Stuck measures 3 s on event times: ROS time, so use_sim_time drives it too
    for second in range(3, 8):
        ros.advance_to(second * 1000)
        ros.deliver("ring/front", msg("sensor_msgs/msg/Range")(range=2.0), "sensor_msgs/msg/Range")
        ros.deliver("odom", msg("nav_msgs/msg/Odometry")(), "nav_msgs/msg/Odometry")
    assert [(t, m.data) for t, m in ros.published if t == "buzzer"][-1] == ("buzzer", 3)
    # the beacon is bound to a service: the order is a SetBool request
    assert [(service, request.data) for service, request in ros.requests] == [("beacon/set", True)]
    assert node.app.failures == []


def test_arrays_of_structures_become_lists_of_messages(tmp_path, monkeypatch):
    spec = write(tmp_path, "cell.diaspec", """\
structure Point { x as Float; y as Float; }
structure Path { name as String; points as Point[]; }
device Planner { source plan as Path; }
context Plan as Path { when provided plan from Planner always publish; }
action Show { show(); }
device Screen { action Show; }
controller View { when provided Plan do Show on Screen; }
""")
    packages = generate_ros2(check_spec(spec), tmp_path / "ws")
    ros = StandInRos(message_table(str(spec)), {"cell_interfaces": packages.interfaces_dir / "msg"})
    ros.install(monkeypatch)
    fw = import_app(packages.node_dir, "cell_ros.cell_app")
    bridge = __import__("cell_ros.bridge", fromlist=["to_message"])
    value = fw.types.Path("aisle", (fw.types.Point(0.0, 1.0), fw.types.Point(2.0, 3.0)))
    msg = bridge.to_message(ros.message_class("cell_interfaces/msg/Path"), value)
    assert [type(p).__name__ for p in msg.points] == ["Point", "Point"] and msg.points[1].y == 3.0
    for name in [m for m in sys.modules if m.startswith("cell_ros")]:
        monkeypatch.delitem(sys.modules, name)


def test_the_node_and_the_python_runtime_give_the_same_trace(tmp_path, monkeypatch):
    """Conformance, third target: the scenario's readings as ROS messages through the node."""
    ros, node, packages = _node(tmp_path, monkeypatch, {"trace": True})
    fw = sys.modules["warehouse_robot_ros.warehouse_robot_app.framework"]
    app_dir = packages.app_dir
    python_lines: list[str] = []
    app = fw.build("warehouse_robot_ros.warehouse_robot_app", clock=fw.VirtualClock(), trace=python_lines.append)
    scenario = fw.load_scenario(app_dir / "scenario.toml", app)
    app.play(scenario)
    assert app.failures == [] and len(python_lines) > 200
    play_as_messages(ros, node.bridge, scenario, message_table(str(app_dir)))
    assert node.app.failures == []
    first = next((i for i, (a, b) in enumerate(zip(python_lines, ros.log)) if a != b), None)
    assert first is None, f"line {first + 1}: python {python_lines[first]!r} != node {ros.log[first]!r}"
    assert ros.log == python_lines


GRIPPER_DESIGN = """\
device Hand { source closing as Float; }
context Target as Float { when provided closing from Hand always publish; }
action Grip { close(width as Float); }
device Gripper { action Grip; }
controller Hold { when provided Target do Grip on Gripper; }
"""
GRIPPER_DEPLOYMENT = """\
[[device]]
id = "hand_1"
type = "Hand"

[[device.ros]]
source = "closing"
topic = "hand/closing"
type = "std_msgs/msg/Float32"

[[device]]
id = "gripper_1"
type = "Gripper"

[[device.ros]]                # an action bound to a ROS 2 action server: each order is one goal
action = "Grip"
action_server = "gripper/command"
type = "control_msgs/action/GripperCommand"
methods = { close = { "command.position" = "width" } }
"""


def _gripper_packages(tmp_path: Path, deployment: str):
    spec = write(tmp_path, "grip.diaspec", GRIPPER_DESIGN)
    packages = generate_ros2(check_spec(spec), tmp_path / "ws")  # the first run writes the starter app
    app = packages.app_dir
    (app / "deployment.toml").write_text(deployment)
    (app / "components" / "target.py").write_text((app / "components" / "target.py").read_text()
                                                  .replace("return 0.0", "return event.value"))
    (app / "components" / "hold.py").write_text((app / "components" / "hold.py").read_text()
                                                .replace("        pass", "        discover.gripper.close(value)"))
    return spec, generate_ros2(check_spec(spec), tmp_path / "ws")  # checks the bindings


def test_an_action_bound_to_an_action_server_sends_goals(tmp_path, monkeypatch):
    spec, packages = _gripper_packages(tmp_path, GRIPPER_DEPLOYMENT)
    assert "control_msgs" in {d.name for d in parse_package_string(
        (packages.node_dir / "package.xml").read_text()).exec_depends}
    ros = StandInRos(message_table(str(spec)))
    ros.install(monkeypatch)
    import_app(packages.node_dir, "grip_ros.grip_app")
    node = __import__("grip_ros.node", fromlist=["AppNode"]).AppNode()
    ros.deliver("hand/closing", ros.message_class("std_msgs/msg/Float32")(data=0.25), "std_msgs/msg/Float32")
    assert [(server, type(goal).__name__, goal.command.position) for server, goal in ros.goals] == \
        [("gripper/command", "GripperCommand_Goal", 0.25)]
    # the goal went to the action server, not to a topic (only the context value is published)
    assert node.app.failures == [] and [topic for topic, _ in ros.published] == ["~/target"]
    for name in [m for m in sys.modules if m.startswith("grip_ros")]:
        monkeypatch.delitem(sys.modules, name)


def test_action_server_bindings_are_checked(tmp_path):
    bad = (GRIPPER_DEPLOYMENT.replace("command.position", "command.width")
           .replace('source = "closing"\ntopic = "hand/closing"', 'source = "closing"\naction_server = "hand"'))
    with pytest.raises(UserError) as caught:
        _gripper_packages(tmp_path, bad)
    message = str(caught.value)
    assert "device #1 'hand_1': ros binding #1: only an action can be bound to an action server" in message
    assert "device #2 'gripper_1': ros binding #1: close: control_msgs/msg/GripperCommand has no field 'width'" in message
