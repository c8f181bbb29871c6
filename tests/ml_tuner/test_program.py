"""Tuning what ships, a linked program: never larger than the user's build, checked by running it,
a build whose run differs is rejected (never written), and the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ml_tuner.build import elf_sizes
from ml_tuner.program import tune_program
from ml_tuner.run import args_check, run_program

DATA = Path(__file__).parent / "data"
UNITS = [DATA / "digest_main.c", DATA / "digest.c"]
TARGET = "thumbv7em-none-eabi"  # the knob that pays here is known (see digest.c)
FLAGS = ("-ffunction-sections", "-fdata-sections")
LINK = ("-Wl,--gc-sections",)


def test_whole_program_is_smaller_checked_and_what_was_reported(tmp_path: Path, cache):
    out = tmp_path / "firmware.elf"
    result = tune_program(UNITS, TARGET, cflags=FLAGS, ldflags=LINK, out=out, lto=True,
                          budget=8, cache=cache, check=args_check(TARGET, [[]]), workers=2)
    assert result.mode == "whole-program" and result.checked and not result.rejected
    assert result.tuned.flash < result.baseline.flash and not result.fell_back
    assert elf_sizes(out) == result.tuned
    expected = run_program(TARGET, out)
    assert expected.status == 0 and len(expected.output.split()) == 3


def test_a_build_whose_run_differs_is_rejected_and_never_written(tmp_path: Path, cache):
    # With an argument the program prints where its code ends: every smaller build "miscompiles".
    out = tmp_path / "firmware.elf"
    result = tune_program(UNITS, TARGET, cflags=FLAGS, ldflags=LINK, out=out, lto=True,
                          budget=8, cache=cache, check=args_check(TARGET, [["x"]]), workers=2)
    assert result.rejected and result.fell_back and "check" in result.reason
    assert all(r.flash < result.baseline.flash and r.got.output != r.expected.output
               for r in result.rejected)
    assert elf_sizes(out) == result.baseline == result.tuned


def test_per_unit_mode_links_tuned_objects(tmp_path: Path, cache):
    result = tune_program(UNITS, "aarch64-linux-gnu", cflags=FLAGS, ldflags=LINK,
                          out=tmp_path / "p", lto=False, budget=3, cache=cache, mode="per-unit",
                          check=args_check("aarch64-linux-gnu", [[]]), workers=2)
    assert result.mode == "per-unit" and len(result.unit_results) == 2
    assert result.tuned.flash <= result.baseline.flash and not result.rejected
    assert elf_sizes(tmp_path / "p") == result.tuned


def test_cli_tune_program_from_another_folder(tmp_path: Path):
    work = tmp_path / "robot"
    work.mkdir()
    for unit in UNITS:
        (work / unit.name).write_text(unit.read_text())
    env = {**os.environ, "FLEETFORGE_CACHE": str(tmp_path / "cache"), "ML_TUNER_WORKERS": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "ml_tuner", "tune-program", "--target", "aarch64-linux-gnu",
         "-o", "bin/robot", "digest_main.c", "digest.c", "--budget", "3", "--check", "", "--json",
         "--", *FLAGS, "-flto", *LINK], cwd=work, env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["lto"] and report["checked"] and report["mode"] == "whole-program"
    assert report["tuned"]["flash"] <= report["baseline"]["flash"]
    assert elf_sizes(work / "bin" / "robot").flash == report["tuned"]["flash"]
    assert run_program("aarch64-linux-gnu", work / "bin" / "robot").status == 0
