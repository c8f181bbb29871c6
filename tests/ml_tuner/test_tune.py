"""`python -m ml_tuner tune` with the shipped model: JSON shape, budget, never worse than -Oz."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ml_tuner.tune import SHIPPED_MODEL, tune_file

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"FLEETFORGE_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin", "ML_TUNER_WORKERS": "2"}
    return subprocess.run([sys.executable, "-m", "ml_tuner", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_shipped_model_is_small():
    assert SHIPPED_MODEL.is_file() and SHIPPED_MODEL.stat().st_size < 5_000_000


def test_json_shape_and_never_worse_than_oz(pid_c: Path, tmp_path: Path):
    proc = run_cli("tune", str(pid_c), "--target", "aarch64-linux-gnu", "--budget", "8", "--json",
                   tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert set(out) == {"passes", "compilations", "seconds", "oz", "tuned"}
    keys = {"ir_instructions", "text_bytes", "object_bytes"}
    assert set(out["oz"]) == keys and set(out["tuned"]) == keys
    assert 1 <= out["compilations"] <= 8 and out["seconds"] > 0
    assert all(isinstance(p, str) for p in out["passes"]) and out["passes"]
    assert out["tuned"]["ir_instructions"] <= out["oz"]["ir_instructions"]
    assert out["tuned"]["text_bytes"] <= out["oz"]["text_bytes"]


@pytest.mark.parametrize("triple", ["aarch64-linux-gnu", "thumbv7em-none-eabi"])
def test_tuned_never_worse_and_reproducible(pid_c: Path, cache, triple: str):
    result = tune_file(pid_c, triple, budget=12, cache=cache, workers=2)
    assert result.tuned.ir_instructions <= result.oz.ir_instructions
    assert result.tuned.text_bytes <= result.oz.text_bytes
    assert result.compilations <= 12
    # The chosen pass list, measured on its own, gives the reported sizes.
    from ml_tuner.measure import Job, Module, measure
    from ml_tuner.tune import prepare_module

    module, _ = prepare_module(pid_c, triple, cache.path.parent)
    assert measure(Job(module, result.passes, triple)).sizes == result.tuned


def test_budget_one_is_oz(pid_c: Path, cache):
    result = tune_file(pid_c, "aarch64-linux-gnu", budget=1, cache=cache, workers=1)
    assert result.passes == ("default<Oz>",) and result.tuned == result.oz
    assert result.compilations == 1


def test_missing_file_is_one_line_exit_2(tmp_path: Path):
    proc = run_cli("tune", str(tmp_path / "nope.c"), "--target", "aarch64-linux-gnu",
                   tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nope.c" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_bad_c_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "bad.c"
    bad.write_text("int f( {\n")
    proc = run_cli("tune", str(bad), "--target", "aarch64-linux-gnu", tmp_path=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "clang" in proc.stderr


def test_ll_and_bc_inputs_agree(pid_c: Path, tmp_path: Path, cache):
    from ml_tuner.corpus import compile_to_ir

    ll = tmp_path / "pid.ll"
    compile_to_ir(pid_c, ll, "aarch64-linux-gnu")
    bc = tmp_path / "pid.bc"
    subprocess.run(["llvm-as-16", str(ll), "-o", str(bc)], check=True)
    from_ll = tune_file(ll, "aarch64-linux-gnu", budget=3, cache=cache, workers=1)
    from_bc = tune_file(bc, "aarch64-linux-gnu", budget=3, cache=cache, workers=1)
    assert from_ll.oz == from_bc.oz and from_ll.tuned == from_bc.tuned
