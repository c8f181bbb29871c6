"""The bugs issue 12 reported, each written as the user met it: the messages a bad spec gets, the
picture of a design, and the time a user-sized design takes to check."""
from __future__ import annotations

import time

import pytest

from diaspec.compiler import check_spec
from diaspec.graph import design_dot

from ds_helpers import check_text, write


def _errors(tmp_path, text: str) -> list[str]:
    path = write(tmp_path, "bad.diaspec", text)
    return [str(d).replace(str(path), "bad.diaspec") for d in check_spec(path).diagnostics.errors]


def test_an_unclosed_comment_says_so_where_it_opens(tmp_path):
    assert _errors(tmp_path, "device D { }\n/* the sonar ring\ndevice E { }\n") == [
        "bad.diaspec:2:1: error: unclosed comment: '/*' has no matching '*/'"
    ]


def test_an_unclosed_comment_over_many_lines_is_reported_at_once(tmp_path):
    # found by the fuzz test: the lexer once backtracked exponentially over the newlines here
    started = time.process_time()
    errors = _errors(tmp_path, "device D { }\n/*" + "\n" * 40 + "x\n" * 40)
    assert errors == ["bad.diaspec:2:1: error: unclosed comment: '/*' has no matching '*/'"]
    assert time.process_time() - started < 2.0


def test_a_homoglyph_is_shown_with_its_code_point(tmp_path):
    # a Cyrillic 'о' pasted into a name
    assert _errors(tmp_path, "device S\u043enar { }\n") == [
        "bad.diaspec:1:9: error: unexpected character '\u043e' (U+043E CYRILLIC SMALL LETTER O, which looks like 'o'); "
        "names use ASCII letters, digits and '_'"
    ]


@pytest.mark.parametrize("text, expected, meant", [
    ("devce D { }\n", "1:1: error: unexpected 'devce', expected", "device"),
    ("device D { atribute a as Float; }\n", "1:12: error: unexpected 'atribute', expected", "attribute"),
    ("context C as Float { when provided x from D alway publish; }\n", "1:45: error: unexpected 'alway', expected", "always"),
])
def test_a_misspelled_keyword_gets_a_did_you_mean(tmp_path, text, expected, meant):
    (line,) = _errors(tmp_path, text)
    assert line.startswith("bad.diaspec:" + expected) and line.endswith(f"(did you mean '{meant}'?)")


def test_a_missing_semicolon_is_reported_on_its_own_line(tmp_path):
    text = "device Sonar {\n    source distance as Float\n    attribute mount as String;\n}\n"
    assert _errors(tmp_path, text) == [
        "bad.diaspec:2:29: error: missing ';' at the end of this line, expected ';', '[', 'indexed' "
        "(the next line starts with 'attribute')"
    ]


def test_a_type_with_fifty_thousand_dimensions_is_refused_cleanly(tmp_path):
    errors = _errors(tmp_path, "type Deep as Float" + "[]" * 50_000 + ";\n")
    assert errors == [
        "bad.diaspec:1:14: error: type 'Float' has 50000 array dimensions; at most 32 are allowed "
        "(use a structure to nest data)"
    ]


def test_the_graph_draws_each_order_once_and_has_a_legend(tmp_path):
    checked = check_text(tmp_path, """\
action Drive { go(); }
device DriveBase { action Drive; }
device Line { source offset as Float; }
context Offset as Float { when provided offset from Line always publish; }
context Lost as Boolean { when provided offset from Line maybe publish; }
controller LineFollower {
    when provided Offset do Drive on DriveBase;
    when provided Lost do Drive on DriveBase;
}
""")
    assert checked.ok, checked.diagnostics.render()
    dot = design_dot(checked)
    assert dot.count('"ctl:LineFollower" -> "act:DriveBase.Drive";') == 1
    assert 'subgraph cluster_legend { label="legend"' in dot
    for style in ("push (when provided)", "pull (get)", "sampled (when periodic)", "order (do ... on)"):
        assert f'label="{style}"' in dot


def sixty_thousand_devices() -> str:
    """A 2.4 MB design: 60,000 device declarations of 40 bytes."""
    return "".join(f"device Sonar{i:05d} {{ source s as Float; }}\n" for i in range(60_000))


@pytest.mark.slow
def test_a_sixty_thousand_device_design_checks_interactively(tmp_path):
    text = sixty_thousand_devices()
    assert 2_300_000 < len(text) < 2_600_000
    path = write(tmp_path, "big.diaspec", text)
    started = time.process_time()
    checked = check_spec(path)
    seconds = time.process_time() - started
    assert checked.ok and len(checked.design.devices) == 60_000
    # bench/diaspec_bench.py holds the 2 s target on a quiet machine; a test shares 2 cores with
    # up to 8 engineers, so it allows twice that in CPU time (a quadratic pass takes minutes)
    assert seconds < 4.0, f"{seconds:.2f} s of CPU to check 60,000 devices"
