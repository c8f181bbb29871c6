"""Tuning one unit: never larger than clang -Oz, outputs that reproduce the report, the command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_tuner.build import compile_source, elf_sizes
from ml_tuner.tune import tune_unit

DATA = Path(__file__).parent / "data"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLEETFORGE_CACHE": str(cwd / "cache"), "ML_TUNER_WORKERS": "2"}
    return subprocess.run([sys.executable, "-m", "ml_tuner", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("target", ["aarch64-linux-gnu", "thumbv7em-none-eabi"])
def test_object_never_larger_than_clang_oz_and_is_what_was_reported(target: str, tmp_path: Path,
                                                                     cache):
    out = tmp_path / "pid.o"
    flags = ("-DPID_GAIN=3", "-ffunction-sections")
    result = tune_unit(DATA / "pid.c", target, cflags=flags, out=out, budget=6, cache=cache,
                       workers=2, time_limit=None)
    compile_source(DATA / "pid.c", target, flags, tmp_path / "clang.o")
    assert result.baseline == elf_sizes(tmp_path / "clang.o")  # the floor is real clang -Oz
    assert elf_sizes(out) == result.tuned and result.tuned.flash <= result.baseline.flash
    assert 1 < result.compilations <= 6
    if result.fell_back:
        assert out.read_bytes() == (tmp_path / "clang.o").read_bytes()
    # Unchanged unit: the decision comes from the cache, nothing is re-tuned.
    again = tune_unit(DATA / "pid.c", target, cflags=flags, out=tmp_path / "again.o", budget=6,
                      cache=cache, workers=2, time_limit=None)
    assert again.cached and again.candidate == result.candidate and again.compilations <= 2
    assert (tmp_path / "again.o").read_bytes() == out.read_bytes()


def test_budget_one_is_clang_oz_and_says_so(tmp_path: Path, cache):
    result = tune_unit(DATA / "pid.c", "aarch64-linux-gnu", out=tmp_path / "p.o", budget=1,
                       cache=cache, workers=1, time_limit=None)
    assert result.fell_back and result.candidate == "Oz" and result.compilations == 1
    assert "clang's own output" in result.reason


def test_cli_json_from_another_folder_with_cflags_and_emit_llvm(tmp_path: Path):
    work = tmp_path / "project"
    (work / "inc").mkdir(parents=True)
    (work / "inc" / "gain.h").write_text("#define GAIN 5\n")
    (work / "motor.c").write_text('#include "gain.h"\nint scale(int x) { return x * GAIN; }\n')
    proc = run_cli("tune", "motor.c", "--target", "thumbv7em-none-eabi", "--budget", "3",
                   "-o", "out/motor.o", "--json", "--", "-Iinc", cwd=work)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert report["tuned"]["flash"] <= report["baseline"]["flash"]
    assert elf_sizes(work / "out" / "motor.o").flash == report["tuned"]["flash"]
    assert {"candidate", "flags", "fell_back", "cached", "seconds", "timings"} <= set(report)
    proc = run_cli("tune", "motor.c", "--target", "thumbv7em-none-eabi", "--budget", "3",
                   "--emit-llvm", "motor.ll", "--", "-Iinc", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "define" in (work / "motor.ll").read_text() and "kept:" in proc.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path):
    proc = run_cli("tune", "nope.c", "--target", "aarch64-linux-gnu", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "nope.c" in proc.stderr
    (tmp_path / "bad.c").write_text("int f( {\n")
    proc = run_cli("tune", "bad.c", "--target", "aarch64-linux-gnu", "-o", "bad.o", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "bad.c" in proc.stderr
    assert not (tmp_path / "bad.o").exists() and not (tmp_path / "bad.o.part").exists()
    proc = run_cli("tune", "bad.c", "--target", "mips-unknown", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown target" in proc.stderr
