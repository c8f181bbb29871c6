"""Every construct of the dialect parses into the model; bad files give one positioned error."""
from __future__ import annotations

from pathlib import Path

import pytest

from diaspec.compiler import check_spec
from diaspec.checks.types import MAX_ARRAY_DIMS
from diaspec.model import (
    ContextInput,
    Device,
    ImportType,
    SourceInput,
    Structure,
    TypeAlias,
    WhenPeriodic,
    WhenProvided,
    WhenRequired,
)

from ds_helpers import check_text, write

HERE = Path(__file__).parent


def test_every_construct_parses_into_the_model():
    checked = check_spec(HERE / "all_constructs.diaspec")
    assert checked.ok, checked.diagnostics.render()
    design, index = checked.design, checked.index
    assert [Path(f).name for f in design.files] == ["all_constructs.diaspec", "all_constructs_taxonomy.diaspec"]
    assert [d.name.text for d in design.devices].count("Thing") == 1  # included once
    pose = index.by_name["Pose"]
    assert isinstance(pose, ImportType) and pose.target == "geometry_msgs.msg.Pose"
    grid = index.by_name["Grid"]
    assert isinstance(grid, TypeAlias) and str(grid.target) == "Integer[][]"
    assert [v.text for v in index.by_name["Mode"].values] == ["CRUISE", "AVOID", "STOPPED"]
    velocity = index.by_name["Velocity"]
    assert isinstance(velocity, Structure) and velocity.doc == "A velocity.\nTwo parts."
    assert [m.name.text for m in index.action("Drive").methods] == ["setVelocity", "stop", "on"]
    assert index.action("Noop").methods == []
    part = index.device("Part")
    assert isinstance(part, Device) and part.keyword == "entity"
    sonar = index.device("Sonar")
    assert [p.text for p in sonar.parents] == ["Part", "Thing"]
    assert [(s.name.text, [i.name.text for i in s.indices]) for s in sonar.sources] == [
        ("distance", ["position", "n"]),
        ("on", []),
    ]
    assert list(index.attributes("Sonar")) == ["maxRange", "mount"]
    obstacle = index.context("Obstacle")
    assert [i.name.text for i in obstacle.indices] == ["k"]
    kinds = [type(c) for c in obstacle.contracts]
    assert kinds == [WhenProvided, WhenProvided, WhenRequired, WhenPeriodic, WhenPeriodic, WhenPeriodic, WhenPeriodic]
    first = obstacle.contracts[0]
    assert isinstance(first.input, SourceInput) and str(first.input) == "distance from Sonar"
    assert [str(g) for g in first.gets] == ["on from Sonar", "Other"] and first.emission == "maybe"
    assert isinstance(obstacle.contracts[1].input, ContextInput)
    periodic = obstacle.contracts[3]
    assert (str(periodic.source), periodic.period.milliseconds, periodic.grouped_by.text, periodic.emission) == (
        "distance from Sonar", 100, "mount", "no",
    )
    assert [c.period.milliseconds for c in obstacle.contracts[4:]] == [1500, 120_000, 3_600_000]
    motion = design.controllers[0]
    assert [(o.action.text, o.device.text) for o in motion.contracts[0].orders] == [("Drive", "Sonar"), ("Noop", "Sonar")]
    assert (first.pos.line, first.pos.col) == (18, 5)


def test_soft_keywords_are_names_where_a_name_stands(tmp_path):
    checked = check_text(tmp_path, "action on { no(); s(h as Float); }\ndevice min { source on as Boolean; action on; }\n")
    assert [m.name.text for m in checked.index.action("on").methods] == ["no", "s"]
    assert checked.index.device("min").sources[0].name.text == "on"


def test_comment_block_before_a_declaration_is_its_docstring(tmp_path):
    checked = check_text(tmp_path, "// not this one\n\n// Line one.\n// Line two.\ndevice D { }\ndevice E { } // trailing\n")
    assert checked.index.device("D").doc == "Line one.\nLine two."
    assert checked.index.device("E").doc == ""


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"device D { source x as Float", "1:29: error: unexpected end of file, expected ';', '[', 'indexed'"),
        (b"context C as Float { when provided x from D always; }", "1:51: error: unexpected ';', expected 'publish'"),
        (b"device D {\n  sourc x as Float; }", "2:3: error: unexpected 'sourc', expected 'action', 'attribute', 'source', '}' (did you mean 'source'?)"),
        (b"device D { } @", "1:14: error: unexpected character '@'"),
        (b"device \x00 {", "1:8: error: binary file, not a DiaSpec spec (found a NUL byte)"),
        (b"device D \xff\xfe { }", "1:10: error: file is not UTF-8 text"),
        (b"context C as Float { when periodic <5 days> always publish; }", "1:39: error: unexpected 'days', expected a time unit (ms, s, min, h)"),
    ],
)
def test_bad_files_give_one_positioned_error(tmp_path, content, expected):
    path = tmp_path / "bad.diaspec"
    path.write_bytes(content)
    checked = check_spec(path)
    assert [str(d) for d in checked.diagnostics.sorted()] == [f"{path}:{expected}"]


def test_empty_file_is_a_warning_not_an_error(tmp_path):
    checked = check_text(tmp_path, "")
    assert checked.ok
    assert [d.message for d in checked.diagnostics.items] == ["the design is empty: nothing is declared"]


def test_include_problems_name_the_include(tmp_path):
    write(tmp_path, "a.diaspec", 'include "b.diaspec";\ndevice A { }\n')
    write(tmp_path, "b.diaspec", 'include "sub/c.diaspec";\n')
    write(tmp_path, "sub/c.diaspec", 'include "../a.diaspec";\ninclude "missing.diaspec";\n')
    checked = check_spec(tmp_path / "a.diaspec")
    lines = [str(d).replace(str(tmp_path) + "/", "") for d in checked.diagnostics.sorted()]
    assert lines == [
        "sub/c.diaspec:1:9: error: include cycle: a.diaspec -> b.diaspec -> sub/c.diaspec -> a.diaspec",
        "sub/c.diaspec:2:9: error: cannot read 'sub/missing.diaspec': No such file or directory",
    ]


def test_missing_main_file(tmp_path):
    checked = check_spec(tmp_path / "nope.diaspec")
    assert [d.message for d in checked.diagnostics.items] == [f"cannot read '{tmp_path}/nope.diaspec': No such file or directory"]


def test_huge_and_deep_specs_compile(tmp_path):
    # thousands of declarations, an array type as deep as allowed, a 1,500-long alias chain and a
    # 1,500-long inheritance chain: no recursion limit is hit, nothing is quadratic enough to stall
    lines = [f"device D{i} {{ source s as Float{'[]' * 3}; }}" for i in range(1500)]
    lines.append("type Deep as Float" + "[]" * MAX_ARRAY_DIMS + ";")
    lines.append("type A0 as Float;")
    lines += [f"type A{i + 1} as A{i};" for i in range(1500)]
    lines += [f"device E{i + 1} extends E{i} {{ }}" for i in range(1500)] + ["device E0 { }"]
    checked = check_text(tmp_path, "\n".join(lines))
    assert checked.ok
    assert checked.index.resolve(checked.index.by_name["A1500"].target).name == "Float"
    assert len(checked.index.ancestors("E1500")) == 1500


def test_include_chains_deeper_than_the_limit_are_one_error(tmp_path):
    for i in range(120):
        write(tmp_path, f"f{i}.diaspec", f'include "f{i + 1}.diaspec";\n')
    write(tmp_path, "f120.diaspec", "device D { }\n")
    checked = check_spec(tmp_path / "f0.diaspec")
    lines = [str(d).replace(str(tmp_path) + "/", "") for d in checked.diagnostics.errors]
    assert lines == ["f99.diaspec:1:9: error: includes nested deeper than 100 files"]
