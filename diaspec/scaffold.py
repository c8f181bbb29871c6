"""`diaspec new NAME`: a starter design (taxonomy + application) that generates an app which runs."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from fleetforge.errors import UserError

TAXONOMY = """\
// Taxonomy of {name}: data types, actions and devices.

enumeration Level {{ LOW, HIGH }}

action Blink {{
    setPattern(pattern as String, times as Integer);
}}

device Thermometer {{
    attribute room as String;
    source temperature as Float;
}}

device Led {{
    attribute room as String;
    action Blink;
}}
"""

APPLICATION = """\
// {name}: blink the LED of a room when it gets hot, and show a heartbeat.
include "taxonomy.diaspec";

// How warm each room is, sampled every second.
context Heat as Level {{
    when periodic temperature from Thermometer <1 s> grouped by room maybe publish;
}}

// A heartbeat, so a fresh app shows activity even before any reading arrives.
context Heartbeat as Integer {{
    when periodic <500 ms> always publish;
}}

controller Alarm {{
    when provided Heat do Blink on Led;
}}

controller Pulse {{
    when provided Heartbeat do Blink on Led;
}}
"""

HEAT = '''\
"""Heat: your code (generated once by diaspec, then yours to edit)."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractHeat, Event  # noqa: F401
from ..framework.types import *  # noqa: F401,F403

HOT = 28.0


class Heat(AbstractHeat):
    def on_periodic_temperature_from_thermometer(self, readings: dict[Any, tuple[Event, ...]], discover: Any):
        # when periodic temperature from Thermometer <1 s> grouped by room maybe publish
        hottest = max((e.value for events in readings.values() for e in events), default=None)
        if hottest is None:
            return None
        return Level.HIGH if hottest >= HOT else Level.LOW
'''

HEARTBEAT = '''\
"""Heartbeat: your code (generated once by diaspec, then yours to edit)."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractHeartbeat


class Heartbeat(AbstractHeartbeat):
    def __init__(self) -> None:
        self.beats = 0

    def on_every_500ms(self, discover: Any) -> int:
        # when periodic <500 ms> always publish
        self.beats += 1
        return self.beats
'''

ALARM = '''\
"""Alarm: your code (generated once by diaspec, then yours to edit)."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractAlarm
from ..framework.types import *  # noqa: F401,F403


class Alarm(AbstractAlarm):
    def on_heat(self, value: Any, discover: Any) -> None:
        # when provided Heat do Blink on Led
        if value is Level.HIGH:
            discover.led.set_pattern("alarm", 5)
'''

PULSE = '''\
"""Pulse: your code (generated once by diaspec, then yours to edit)."""
from __future__ import annotations

from typing import Any

from ..framework import AbstractPulse


class Pulse(AbstractPulse):
    def on_heartbeat(self, value: int, discover: Any) -> None:
        # when provided Heartbeat do Blink on Led
        discover.led.where(room="lab").set_pattern("heartbeat", 1)
'''

DEPLOYMENT = """\
# Devices of this robot: one [[device]] table per instance, attributes by name.
[[device]]
id = "lab_thermometer"
type = "Thermometer"
room = "lab"

[[device]]
id = "lab_led"
type = "Led"
room = "lab"
"""


def new_project(name: str, parent: Path) -> Path:
    """Create `<parent>/<name>/` with a starter design and its generated, runnable app."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise UserError(f"'{name}' is not a valid project name (letters, digits and _, not starting with a digit)")
    root = Path(parent) / name
    if root.exists():
        raise UserError(f"'{root}' already exists; choose another name")
    root.mkdir(parents=True)
    try:
        _write_project(name, root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)  # nothing half-written is left behind
        raise
    return root


def _write_project(name: str, root: Path) -> None:
    from diaspec.compiler import check_spec
    from diaspec.pygen import generate_python

    (root / "taxonomy.diaspec").write_text(TAXONOMY.format(name=name), encoding="utf-8")
    spec = root / f"{name}.diaspec"
    spec.write_text(APPLICATION.format(name=name), encoding="utf-8")
    app = root / f"{name}_app"
    for relative, text in {
        "components/heat.py": HEAT,
        "components/heartbeat.py": HEARTBEAT,
        "components/alarm.py": ALARM,
        "components/pulse.py": PULSE,
        "deployment.toml": DEPLOYMENT,
    }.items():
        path = app / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    checked = check_spec(spec)
    if not checked.ok:  # the starter design is ours: a failure here is a bug
        raise UserError("the starter design does not check:\n" + checked.diagnostics.render())
    generate_python(checked, app)
