"""Every check of LANGUAGE.md has a spec that triggers it; messages and positions are exact."""
from __future__ import annotations

import pytest

from ds_helpers import check_text, write

BASE = """\
type Meters as Float;
enumeration Side { LEFT, RIGHT }
structure Velocity { linear as Float; angular as Float; }
action Drive { setVelocity(v as Velocity); stop(); }
action Blink { blink(times as Integer); }
device Part { attribute mount as String; attribute tags as String[]; }
device Sonar extends Part { source distance as Meters indexed by side as Side; }
device Base extends Part { action Drive; }
device Led { action Blink; }
"""

CASES = {
    "1-duplicates-and-primitives": (
        """include "base.diaspec";
device Sonar { }
structure Float { x as Integer; }
enumeration E { A, B, A }
""",
        [
            "app.diaspec:2:8: error: 'Sonar' is already declared as a device at base.diaspec:7:8",
            "app.diaspec:3:11: error: 'Float' is a primitive type and cannot be redeclared",
            "app.diaspec:4:23: error: duplicate value in enumeration E: 'A' (first declared at app.diaspec:4:17)",
        ],
    ),
    "2-type-references": (
        """include "base.diaspec";
type T as Metrs;
type U as Sonar;
type A1 as B1;
type B1 as A1;
structure S { inner as S2; }
structure S2 { back as S; }
structure Ok { items as Ok[]; }
""",
        [
            "app.diaspec:2:11: error: unknown type 'Metrs' (did you mean 'Meters'?)",
            "app.diaspec:3:11: error: 'Sonar' is a device, not a data type",
            "app.diaspec:4:6: error: type alias cycle: A1 -> B1 -> A1",
            "app.diaspec:6:11: error: structure 'S' contains itself by value: S.inner -> S2.back -> S "
            "(use an array to break the cycle)",
        ],
    ),
    "3-inheritance": (
        """include "base.diaspec";
device X extends Sonr { }
device Y extends Drive { }
device C1 extends C2 { }
device C2 extends C1 { }
device Z extends Sonar { source distance as Float indexed by side as Side; }
device W extends Sonar { source distance as Meters; }
device V extends Part { attribute mount as Integer; }
""",
        [
            "app.diaspec:2:18: error: unknown device 'Sonr' (did you mean 'Sonar'?)",
            "app.diaspec:3:18: error: 'Drive' is an action, not a device; only devices can be extended",
            "app.diaspec:4:8: error: inheritance cycle: C1 -> C2 -> C1",
            "app.diaspec:6:45: error: source 'distance' is inherited from Sonar as Meters; it cannot be redeclared as Float",
            "app.diaspec:7:33: error: source 'distance' is inherited from Sonar indexed by (side as Side); "
            "it cannot be redeclared indexed by nothing",
            "app.diaspec:8:44: error: attribute 'mount' is inherited from Part as String; it cannot be redeclared as Integer",
        ],
    ),
    "4-device-actions": (
        """include "base.diaspec";
action Go { stop(); }
device Q { action Blnk; action Velocity; }
device R extends Base { action Go; }
""",
        [
            "app.diaspec:3:19: error: unknown action 'Blnk' (did you mean 'Blink'?)",
            "app.diaspec:3:32: error: 'Velocity' is a structure, not an action",
            "app.diaspec:4:32: error: method 'stop' of action Drive clashes with method 'stop' of action Go on device R",
        ],
    ),
    "5-index-keys": (
        """include "base.diaspec";
device K { source a as Float indexed by k as Integer[]; }
context Ctx as Float indexed by v as Velocity, w as Meters[] { when provided a from K always publish; }
""",
        [
            "app.diaspec:2:46: error: index 'k' must not be an array (its type is Integer[])",
            "app.diaspec:3:53: error: index 'w' must not be an array (its type is Meters[])",
        ],
    ),
    "6-source-from-device": (
        """include "base.diaspec";
context A as Float { when provided distance from Sonr always publish; }
context B as Float { when provided distanse from Sonar always publish; }
context C as Float { when provided mount from Sonar always publish; }
context D as Float { when provided distance from Velocity always publish; }
""",
        [
            "app.diaspec:2:50: error: unknown device 'Sonr' (did you mean 'Sonar'?)",
            "app.diaspec:3:36: error: device 'Sonar' has no source 'distanse' (did you mean 'distance'?)",
            "app.diaspec:4:36: error: 'mount' is an attribute of Sonar, not a source; attributes select devices, they are not read",
            "app.diaspec:5:50: error: 'Velocity' is a structure, not a device",
        ],
    ),
    "7-bare-name-is-a-context": (
        """include "base.diaspec";
context A as Float { when provided Sonar always publish; }
context B as Float { when provided Velocity always publish; }
context C as Float { when provided Nope always publish; }
""",
        [
            "app.diaspec:2:36: error: 'Sonar' is a device; write '<source> from Sonar'",
            "app.diaspec:3:36: error: 'Velocity' is a structure, not a context",
            "app.diaspec:4:36: error: unknown context 'Nope'",
        ],
    ),
    "8-get-needs-when-required": (
        """include "base.diaspec";
context P as Float { when provided distance from Sonar always publish; }
context Q as Float { when provided distance from Sonar get P always publish; when required; when required; }
""",
        [
            "app.diaspec:3:60: error: context 'P' has no 'when required' contract, so it cannot be pulled with 'get'",
            "app.diaspec:3:93: error: context 'Q' has more than one 'when required' contract",
        ],
    ),
    "9-periodic": (
        """include "base.diaspec";
context A as Float { when periodic <0 ms> always publish; }
context B as Float { when periodic <1 s> grouped by mount always publish; }
context C as Float { when periodic distance from Sonar <1 s> grouped by mont always publish; }
context D as Float { when periodic distance from Sonar <1 s> grouped by tags always publish; }
""",
        [
            "app.diaspec:2:37: error: the period of 'when periodic' must be greater than zero",
            "app.diaspec:3:53: error: 'grouped by' needs a sampled source: write "
            "'when periodic <source> from <Device> <period> grouped by ...'",
            "app.diaspec:4:73: error: device 'Sonar' has no attribute 'mont' (did you mean 'mount'?)",
            "app.diaspec:5:73: error: cannot group by 'tags': its type String[] is an array",
        ],
    ),
    "10-controllers": (
        """include "base.diaspec";
context Quiet as Float { when provided distance from Sonar no publish; }
controller M { when provided Quiet do Drive on Base; }
controller N { when provided Nothing do Drive on Led; }
controller O { when provided Sonar do Blink on Base, Drve on Base, Drive on Sonr; }
""",
        [
            "app.diaspec:3:30: error: context 'Quiet' never publishes (no 'always' or 'maybe publish' contract), "
            "so controller 'M' is never activated",
            "app.diaspec:4:30: error: unknown context 'Nothing'",
            "app.diaspec:4:50: error: device 'Led' does not provide action 'Drive' (devices that do: Base)",
            "app.diaspec:5:30: error: 'Sonar' is a device; a controller reacts to contexts only",
            "app.diaspec:5:48: error: device 'Base' does not provide action 'Blink' (devices that do: Led)",
            "app.diaspec:5:54: error: unknown action 'Drve' (did you mean 'Drive'?)",
            "app.diaspec:5:77: error: unknown device 'Sonr' (did you mean 'Sonar'?)",
        ],
    ),
    "11-context-cycles": (
        """include "base.diaspec";
context A as Float { when provided B maybe publish; when required; }
context B as Float { when provided distance from Sonar get C maybe publish; when required; }
context C as Float { when required get A; }
context Self as Float { when required get Self; }
""",
        [
            "app.diaspec:2:9: error: cycle among contexts: A -> B -> C -> A "
            "(a context cannot depend on itself, by push or through 'when required')",
            "app.diaspec:5:9: error: cycle among contexts: Self -> Self "
            "(a context cannot depend on itself, by push or through 'when required')",
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES), ids=sorted(CASES))
def test_check_reports_exact_message_and_position(tmp_path, case):
    text, expected = CASES[case]
    write(tmp_path, "base.diaspec", BASE)
    checked = check_text(tmp_path, text)
    errors = [str(d).replace(str(tmp_path) + "/", "") for d in checked.diagnostics.errors]
    assert errors == expected
    assert not checked.ok


def test_check_12_warnings_for_unused_parts(tmp_path):
    checked = check_text(
        tmp_path,
        """\
action Blink { blink(); }
action Beep { beep(); }
device Led { action Blink; action Beep; source on as Boolean; source level as Float; }
context Unused as Boolean { when provided on from Led always publish; }
context Empty as Float { }
context Lit as Boolean { when provided on from Led always publish; }
controller Idle { }
controller Show { when provided Lit do Blink on Led; }
""",
    )
    assert checked.ok  # warnings only
    lines = [str(d).replace(str(tmp_path) + "/", "") for d in checked.diagnostics.sorted()]
    assert lines == [
        "app.diaspec:2:8: warning: action 'Beep' is never ordered by a controller",
        "app.diaspec:3:70: warning: source 'level' of device Led is never used",
        "app.diaspec:4:9: warning: context 'Unused' is never used by a context or controller",
        "app.diaspec:5:9: warning: context 'Empty' has no contracts",
        "app.diaspec:5:9: warning: context 'Empty' is never used by a context or controller",
        "app.diaspec:7:12: warning: controller 'Idle' has no contracts",
    ]


def test_findings_are_sorted_across_files_and_all_reported(tmp_path):
    write(tmp_path, "tax.diaspec", "device D { source s as Floot; }\n")
    checked = check_text(tmp_path, 'include "tax.diaspec";\ncontext C as Intger { when provided s from D always publish; }\n')
    lines = [str(d).replace(str(tmp_path) + "/", "") for d in checked.diagnostics.errors]
    assert lines == [
        "app.diaspec:2:14: error: unknown type 'Intger' (did you mean 'Integer'?)",
        "tax.diaspec:1:24: error: unknown type 'Floot' (did you mean 'Float'?)",
    ]


def test_duplicate_contracts_and_orders_are_errors(tmp_path):
    checked = check_text(
        tmp_path,
        """\
action A { go(); }
device D { source s as Float; action A; }
context C as Float { when provided s from D always publish; when provided s from D maybe publish; }
controller K { when provided C do A on D, A on D; when provided C do A on D; }
""",
    )
    lines = [str(d).replace(str(tmp_path) + "/", "") for d in checked.diagnostics.errors]
    assert lines == [
        "app.diaspec:3:61: error: context 'C' already has a contract 'when provided s from D' at app.diaspec:3:22",
        "app.diaspec:4:43: error: duplicate order 'A on D'",
        "app.diaspec:4:51: error: controller 'K' already has a contract 'when provided C' at app.diaspec:4:16",
    ]
