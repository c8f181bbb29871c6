"""The generated Python runtime enforces the design: discover limits, emissions, orders, binding."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from diaspec.compiler import check_spec
from diaspec.pygen import generate_python

from ds_helpers import import_app, write

SPEC = """\
import Stamp as datetime.datetime;
type Meters as Float;
enumeration Room { LAB, HALL }
action Blink { blink(times as Integer); }
action Beep { beep(); }
device Sensor { attribute room as Room; attribute range as Meters; source level as Float; source ping as Integer indexed by channel as Integer; }
device Led { attribute room as Room; action Blink; }
device Buzzer { action Beep; }
context Level as Float { when provided level from Sensor always publish; }
context Quiet as Float { when provided level from Sensor no publish; when required get ping from Sensor; }
context Pings as Integer indexed by channel as Integer { when provided ping from Sensor maybe publish; }
context Alarm as Boolean { when provided Level get Quiet maybe publish; }
context Tick as Integer { when periodic <250 ms> always publish; }
controller Show { when provided Alarm do Blink on Led; when provided Pings do Beep on Buzzer; }
controller Clock { when provided Tick do Blink on Led; }
"""

DEPLOYMENT = """\
[[device]]
id = "s1"
type = "Sensor"
room = "LAB"
range = 4

[[device]]
id = "lab_led"
type = "Led"
room = "LAB"

[[device]]
id = "hall_led"
type = "Led"
room = "HALL"

[[device]]
id = "buzzer"
type = "Buzzer"
"""

COMPONENTS = {
    "level": """
        class Level(AbstractLevel):
            def on_level_from_sensor(self, event, discover):
                return event.value
    """,
    "quiet": """
        class Quiet(AbstractQuiet):
            def on_level_from_sensor(self, event, discover):
                self.last = event.value
            def when_required(self, discover):
                return float(sum(e.value for e in discover.ping_from_sensor()))
    """,
    "pings": """
        class Pings(AbstractPings):
            def on_ping_from_sensor(self, event, discover):
                return {event.index["channel"]: event.value}
    """,
    "alarm": """
        class Alarm(AbstractAlarm):
            def on_level(self, value, discover):
                return value > discover.quiet()
    """,
    "tick": """
        class Tick(AbstractTick):
            count = 0
            def on_every_250ms(self, discover):
                self.count += 1
                return self.count
    """,
    "show": """
        class Show(AbstractShow):
            def on_alarm(self, value, discover):
                if value:
                    discover.led.where(room=Room.LAB).blink(3)
            def on_pings(self, value, discover):
                discover.buzzer.beep()
    """,
    "clock": """
        class Clock(AbstractClock):
            def on_tick(self, value, discover):
                discover.led.where(room=Room.HALL).blink(value)
    """,
}


def make_app(tmp_path: Path, overrides: dict[str, str] | None = None, *, spec: str = SPEC,
             deployment: str = DEPLOYMENT, trace=None):
    write(tmp_path, "rt.diaspec", spec)
    checked = check_spec(tmp_path / "rt.diaspec")
    assert checked.ok, checked.diagnostics.render()
    package = tmp_path / "rt_app"
    generate_python(checked, package)
    (package / "deployment.toml").write_text(deployment)
    for name, body in {**COMPONENTS, **(overrides or {})}.items():
        cls = body.strip().split("(")[0].split()[-1]
        code = f"from ..framework import Abstract{cls}\nfrom ..framework.types import *\n\n" + textwrap.dedent(body)
        (package / "components" / f"{name}.py").write_text(code)
    fw = import_app(tmp_path, "rt_app")
    return fw, lambda: fw.build("rt_app", clock=fw.VirtualClock(), trace=trace)


def test_push_pull_and_selection_by_attribute(tmp_path):
    lines: list[str] = []
    fw, build = make_app(tmp_path, trace=lines.append)
    app = build()
    sensor = app.device("s1")
    sensor.publish_ping(2, channel=1)
    assert app.device("buzzer").order_names() == ["beep"]
    assert app.values["Pings"] == {1: 2}
    sensor.publish_level(5.0)  # Alarm pulls Quiet, which reads the pings: 5 > 2
    assert [(o.method, o.args, o.controller) for o in app.device("lab_led").orders] == [("blink", (3,), "Show")]
    assert app.device("hall_led").orders == []
    sensor.publish_level(1.0)  # 1 > 2 is false: no order
    assert len(app.device("lab_led").orders) == 1
    assert "[       0.0 ms] pull Quiet by Alarm" in lines
    assert "[       0.0 ms] order Led(lab_led).blink(3) by Show" in lines
    assert any(line.endswith("publish Sensor(s1).ping = 2 channel=1") for line in lines)


def test_periodic_contracts_follow_the_virtual_clock(tmp_path):
    fw, build = make_app(tmp_path)
    app = build()
    hall = app.device("hall_led")
    app.advance(249)
    assert hall.orders == []
    app.advance(1000)  # due at 250, 500, 750, 1000, 1250 (and the last at exactly 1249? no)
    assert [(o.args, o.time_ms) for o in hall.orders] == [((1,), 250.0), ((2,), 500.0), ((3,), 750.0), ((4,), 1000.0)]
    app.advance(1)
    assert hall.orders[-1].args == (5,) and app.clock.now() == 1250


@pytest.mark.parametrize(
    "name, body, message",
    [
        ("level", "class Level(AbstractLevel):\n    def on_level_from_sensor(self, event, discover):\n        return None\n",
         "Level.on_level_from_sensor (when provided level from Sensor always publish): returned None but the "
         "contract says 'always publish'"),
        ("quiet", "class Quiet(AbstractQuiet):\n    def on_level_from_sensor(self, event, discover):\n        return 1.0\n"
                  "    def when_required(self, discover):\n        return 0.0\n",
         "Quiet.on_level_from_sensor (when provided level from Sensor no publish): returned a value but the "
         "contract says 'no publish'"),
        ("pings", "class Pings(AbstractPings):\n    def on_ping_from_sensor(self, event, discover):\n        return 3\n",
         "Pings.on_ping_from_sensor (when provided ping from Sensor maybe publish): Pings is indexed, so it must "
         "return a {key: value} mapping"),
        ("level", "class Level(AbstractLevel):\n    def on_level_from_sensor(self, event, discover):\n"
                  "        return discover.quiet()\n",
         "Level.on_level_from_sensor (when provided level from Sensor always publish): 'quiet' is not in this "
         "contract (it may use: nothing)"),
        ("show", "class Show(AbstractShow):\n    def on_alarm(self, value, discover):\n        discover.buzzer.beep()\n"
                 "    def on_pings(self, value, discover):\n        pass\n",
         "Show.on_alarm (when provided Alarm do Blink on Led): 'buzzer' is not in this contract (it may use: led)"),
        ("show", "class Show(AbstractShow):\n    def on_alarm(self, value, discover):\n        discover.led.beep()\n"
                 "    def on_pings(self, value, discover):\n        pass\n",
         "Show: may order Led only blink (action Blink); 'beep' is not allowed by the design"),
        ("quiet", "class Quiet(AbstractQuiet):\n    def on_level_from_sensor(self, event, discover):\n        pass\n"
                  "    def when_required(self, discover):\n        return float(len(discover.ping_from_sensor(floor=2)))\n",
         "Quiet.when_required (when required get ping from Sensor): Sensor has no attribute 'floor' (it has: room, range)"),
        ("show", "class Show(AbstractShow):\n    def on_alarm(self, value, discover):\n"
                 "        discover.led.where(colour='red').blink(1)\n"
                 "    def on_pings(self, value, discover):\n        pass\n",
         "Show: Led has no attribute 'colour' (it has: room)"),
    ],
    ids=["always-none", "no-with-value", "indexed-not-mapping", "get-not-declared", "order-other-device",
         "order-other-action", "get-unknown-attribute", "select-unknown-attribute"],
)
def test_contract_violations_name_the_contract(tmp_path, name, body, message):
    fw, build = make_app(tmp_path, {name: body})
    app = build()
    with pytest.raises(fw.ContractViolation) as caught:
        app.device("s1").publish_ping(1, channel=0)
        app.device("s1").publish_level(9.0)
    assert str(caught.value) == message


def test_discover_is_dead_after_the_callback_returns(tmp_path):
    body = """
        class Show(AbstractShow):
            kept = None
            def on_alarm(self, value, discover):
                Show.kept = discover.led
            def on_pings(self, value, discover):
                Show.kept.blink(1)
    """
    fw, build = make_app(tmp_path, {"show": body})
    app = build()
    app.device("s1").publish_level(9.0)
    with pytest.raises(fw.ContractViolation, match=r"Show.on_alarm .*: discover used after the callback returned"):
        app.device("s1").publish_ping(1, channel=0)


def test_user_exceptions_are_logged_and_the_rest_keeps_running(tmp_path, caplog):
    body = """
        class Pings(AbstractPings):
            def on_ping_from_sensor(self, event, discover):
                raise ValueError("bad ping")
    """
    fw, build = make_app(tmp_path, {"pings": body})
    app = build()
    app.device("s1").publish_ping(1, channel=0)
    app.device("s1").publish_level(9.0)
    assert [(f.component, f.contract, str(f.error)) for f in app.failures] == [
        ("Pings", "when provided ping from Sensor maybe publish", "bad ping")
    ]
    assert "Pings.on_ping_from_sensor (when provided ping from Sensor maybe publish) raised ValueError: bad ping" in caplog.text
    assert app.device("lab_led").order_names() == ["blink"]


@pytest.mark.parametrize(
    "deployment, message",
    [
        ('[[device]]\nid = "x"\ntype = "Sensr"\nroom = "LAB"\n', "device #1 'x': unknown device type 'Sensr' (did you mean 'Sensor'?)"),
        ('[[device]]\nid = "x"\ntype = "Led"\n', "device #1 'x': missing attribute(s) room"),
        ('[[device]]\nid = "x"\ntype = "Led"\nroom = "ROOF"\n', "device #1 'x': attribute 'room': 'ROOF' is not one of LAB, HALL"),
        ('[[device]]\nid = "x"\ntype = "Led"\nroom = "LAB"\nsize = 3\n', "device #1 'x': Led has no attribute 'size' (it has: room)"),
        ('[[device]]\nid = "x"\ntype = "Buzzer"\n[[device]]\nid = "x"\ntype = "Buzzer"\n', "device #2 'x': id used twice"),
        ("[[device]\n", "not a valid TOML deployment"),
        ('[[device]]\nid = "x"\ntype = "Sensor"\nroom = "LAB"\nrange = "far"\n', "device #1 'x': attribute 'range': expected a number, got 'far'"),
    ],
)
def test_bad_deployments_are_one_clear_line(tmp_path, deployment, message):
    fw, build = make_app(tmp_path, deployment=deployment)
    with pytest.raises(fw.BindError) as caught:
        build()
    assert message in str(caught.value) and str(caught.value).startswith(str(tmp_path / "rt_app" / "deployment.toml"))


def test_missing_callback_refuses_to_start_and_a_missing_import_only_on_hardware(tmp_path):
    body = "class Tick(AbstractTick):\n    pass\n"
    fw, build = make_app(tmp_path, {"tick": body})
    with pytest.raises(fw.BindError, match="rt_app.components.tick: Can't instantiate abstract class Tick"):
        build()
    fw, build = make_app(tmp_path / "other", spec=SPEC.replace("datetime.datetime", "no_such_pkg.msg.Pose"))
    # a simulation runs without the imported package (a ROS message type where ROS is absent) ...
    app = build()
    app.device("s1").publish_level(9.0)
    assert app.failures == [] and fw.types.Stamp.__name__ == "Stamp"
    # ... but on hardware the app refuses to start
    with pytest.raises(fw.BindError, match="imported types are missing: Stamp as no_such_pkg.msg.Pose: No module named 'no_such_pkg'"):
        fw.build("rt_app", clock=fw.VirtualClock(), simulate=False)


def test_generated_types(tmp_path):
    fw, _ = make_app(tmp_path)
    import datetime
    import enum
    import dataclasses

    assert fw.types.Stamp is datetime.datetime
    assert issubclass(fw.types.Room, enum.Enum) and [r.name for r in fw.types.Room] == ["LAB", "HALL"]
    assert not fw.types.MISSING_IMPORTS
    assert dataclasses.is_dataclass(fw.types) is False
    assert fw.SPEC_SHA256 and len(fw.SPEC_SHA256) == 64


def test_names_that_are_python_keywords_generate_a_working_app(tmp_path):
    spec = Path(__file__).with_name("keyword_names.diaspec")
    checked = check_spec(spec)
    assert checked.ok, checked.diagnostics.render()
    generate_python(checked, tmp_path / "kw_app")
    assert (tmp_path / "kw_app" / "components" / "from_.py").read_text().count("class from_(Abstractfrom):") == 1
    fw = import_app(tmp_path, "kw_app")
    lines: list[str] = []
    app = fw.build("kw_app", clock=fw.VirtualClock(), trace=lines.append)
    t = fw.types
    app.devices_of("class")[0].publish_lambda(t.int_(default=1.0, class_=2), value=t.None_.if_, sender=3)
    assert any(line.endswith("-> double.on_lambda_from_class") for line in lines), lines
    assert any(line.endswith("-> from.on_lambda_from_class") for line in lines)
    assert app.failures == []


def test_aliases_in_any_order_and_nested_types(tmp_path):
    spec = write(tmp_path, "ty.diaspec", """\
type Track as Lap[];
type Lap as Point[];
structure Point { x as Float; label as Name; }
type Name as String;
device Gps { source track as Track; }
context Length as Integer { when provided track from Gps always publish; }
controller Log { when provided Length do Note on Gps; }
action Note { note(n as Integer); }
device Pad { action Note; }
""".replace("do Note on Gps", "do Note on Pad"))
    checked = check_spec(spec)
    assert checked.ok, checked.diagnostics.render()
    generate_python(checked, tmp_path / "ty_app")
    fw = import_app(tmp_path, "ty_app")
    assert fw.types.Track == tuple[tuple[fw.types.Point, ...], ...]
    assert fw.types.Name is str


def test_doc_comments_with_quotes_and_backslashes(tmp_path):
    spec = write(tmp_path, "doc.diaspec", '// He said "hi" \\\ndevice A { source s as Float; }\n'
                 '/* a """ b \\ c" */\nstructure S { x as Float; }\n'
                 "context C as S { when provided s from A always publish; }\n"
                 "action Go { go(); }\ndevice B { action Go; }\ncontroller K { when provided C do Go on B; }\n")
    checked = check_spec(spec)
    assert checked.ok, checked.diagnostics.render()
    generate_python(checked, tmp_path / "doc_app")
    fw = import_app(tmp_path, "doc_app")
    assert fw.devices.AbstractA.__doc__ == 'He said "hi" \\'
    assert fw.types.S.__doc__ == "a \'\'\' b \\ c\" "
