"""The measurement interface and its cache, on real clang."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleetforge.errors import UserError
from ml_tuner.build import emit_raw_ir
from ml_tuner.cache import MeasureCache
from ml_tuner.knobs import OZ, Candidate, KnobSpace, Knob, load_knobs
from ml_tuner.measure import Job, Subject, measure_many

TARGET = "aarch64-linux-gnu"


def _subject(pid_c: Path, tmp_path: Path) -> Subject:
    ir = tmp_path / "pid.ll"
    emit_raw_ir(pid_c, TARGET, (), ir)
    return Subject.unit("pid", ir, TARGET)


def test_cache_hits_misses_keys_and_persistence(pid_c: Path, tmp_path: Path):
    subject = _subject(pid_c, tmp_path)
    space = load_knobs().for_target(TARGET)
    inline = Candidate.of({"inline": next(iter(space.knob("inline").settings))})
    path = tmp_path / "cache.sqlite"
    with MeasureCache(path) as cache:
        first, again = measure_many([Job(subject, OZ, space)] * 2, cache=cache)
        assert not first.cached and first.sizes is not None and first.sizes == again.sizes
        assert measure_many([Job(subject, OZ, space)], cache=cache)[0].cached
        # Another candidate, or the same label with other flags, is another measurement.
        assert not measure_many([Job(subject, inline, space)], cache=cache)[0].cached
        edited = KnobSpace(tuple(
            Knob(k.name, k.stage, {s: (*f, "-fno-jump-tables") for s, f in k.settings.items()},
                 k.targets) if k.name == "inline" else k for k in space.knobs))
        assert not measure_many([Job(subject, inline, edited)], cache=cache)[0].cached
    with MeasureCache(path) as reopened:
        assert measure_many([Job(subject, OZ, space)], cache=reopened)[0].cached


def test_a_failing_build_is_a_result_not_an_error(pid_c: Path, tmp_path: Path):
    subject = _subject(pid_c, tmp_path)
    broken = KnobSpace((Knob("broken", "ir", {"on": ("-mllvm", "-no-such-option")}, ()),))
    result = measure_many([Job(subject, Candidate.of({"broken": "on"}), broken)])[0]
    assert result.sizes is None and result.error == "failed"


def test_kept_builds_and_parallel_equals_serial(pid_c: Path, tmp_path: Path):
    subject = _subject(pid_c, tmp_path)
    space = load_knobs().for_target(TARGET)
    jobs = [Job(subject, c, space) for c in [OZ, *space.singles()[:3]]]
    keep = tmp_path / "keep"
    keep.mkdir()
    parallel = measure_many(jobs, workers=2, keep_dir=keep)
    serial = measure_many(jobs, workers=1)
    assert [r.sizes for r in parallel] == [r.sizes for r in serial]
    assert all(r.artifact is not None and r.artifact.parent == keep for r in parallel)


def test_the_backend_is_checked_and_ray_is_imported_only_when_chosen(monkeypatch):
    monkeypatch.setenv("ML_TUNER_BACKEND", "spark")
    with pytest.raises(UserError, match="ML_TUNER_BACKEND: unknown measurement backend 'spark'"):
        measure_many([])
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, ml_tuner.cli, ml_tuner.tune, ml_tuner.measure;"
         " print('ray' in sys.modules)"], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "False"
