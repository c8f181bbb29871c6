"""The knob table: clang accepts every setting; candidates, labels and flags; bad tables."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import toolchains
from fleetforge.errors import UserError
from ml_tuner.knobs import OZ, Candidate, load_knobs, pool

TARGETS = ("aarch64-linux-gnu", "thumbv7em-none-eabi")


@pytest.mark.parametrize("target", TARGETS)
def test_clang_accepts_every_setting(target: str, tmp_path: Path, pid_c: Path):
    # One compile with every setting of every knob (a later value of an option wins, but an
    # option clang or LLVM does not know fails the whole command).
    space = load_knobs().for_target(target)
    flags = [f for knob in space.knobs for setting in knob.settings.values() for f in setting]
    done = subprocess.run([*toolchains.target(target).clang_args(), "-Oz", *flags, "-c",
                           str(pid_c), "-o", str(tmp_path / "all.o")], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert "unknown" not in done.stderr and "ignored" not in done.stderr


def test_labels_round_trip_and_flags_follow_the_table_order():
    space = load_knobs().for_target("aarch64-linux-gnu")
    first, second = space.knobs[0], space.knobs[1]
    a = Candidate.of({second.name: next(iter(second.settings)),
                      first.name: next(iter(first.settings))})
    assert Candidate.parse(a.label) == a and Candidate.parse("Oz") == OZ
    assert space.flags(a) == (*next(iter(first.settings.values())),
                              *next(iter(second.settings.values())))
    assert space.flags(OZ) == ()
    assert all(f == "-mllvm" for f in space.flags(a, "codegen")[::2])


def test_pool_starts_with_oz_and_every_single_setting():
    space = load_knobs().for_target("thumbv7em-none-eabi")
    candidates = pool(space, 80)
    singles = space.singles()
    assert candidates[0] == OZ and candidates[1:1 + len(singles)] == singles
    assert len(set(candidates)) == len(candidates) == 80


def test_bad_table_is_one_line_naming_the_file(tmp_path: Path):
    bad = tmp_path / "knobs.toml"
    bad.write_text('[[knob]]\nname = "x"\nstage = "codegen"\nsettings = { on = ["-fno-x"] }\n')
    with pytest.raises(UserError) as error:
        load_knobs(bad)
    assert str(bad) in str(error.value) and "-mllvm" in str(error.value)
    bad.write_text('[[knob]]\nname = "x"\nsettings = { on = ["-fno-x"] }\n')
    with pytest.raises(UserError, match="missing"):
        load_knobs(bad)
