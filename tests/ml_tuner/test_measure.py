"""Measurement against hand-checked modules, and the cache."""
from __future__ import annotations

from pathlib import Path

from ml_tuner.cache import MeasureCache
from ml_tuner.corpus import compile_to_ir
from ml_tuner.measure import (OZ, Job, Module, count_ir_instructions, measure, measure_many,
                              measure_uncached)


def test_ir_count_of_hand_written_text():
    text = """define i32 @f(i32 %a) {
entry:
  %x = add i32 %a, 1
  br label %next

next:                                             ; preds = %entry
  ; a comment line
  ret i32 %x
}
declare void @g()
"""
    assert count_ir_instructions(text) == 3


def test_add_module_unoptimized_and_oz(add_ll: Path):
    # Hand-checked: 3 instructions as written; -Oz deletes the dead mul; aarch64 emits
    # `add w0, w1, w0; ret` (8 bytes) and no other allocated section.
    raw = measure_uncached(add_ll, (), "aarch64-linux-gnu")
    assert raw.ir_instructions == 3
    oz = measure_uncached(add_ll, OZ, "aarch64-linux-gnu")
    assert (oz.ir_instructions, oz.text_bytes, oz.object_bytes) == (2, 8, 8)


def test_add_module_thumb(add_ll: Path):
    # Thumb-2: `add r0, r1; bx lr` is 4 bytes; .ARM.exidx (8 bytes) is allocated too.
    oz = measure_uncached(add_ll, OZ, "thumbv7em-none-eabi")
    assert (oz.ir_instructions, oz.text_bytes, oz.object_bytes) == (2, 4, 12)


def test_failing_pass_list_is_a_result_not_a_crash(add_ll: Path):
    result = measure(Job(Module.from_file(add_ll), ("no-such-pass",), "aarch64-linux-gnu"))
    assert result.sizes is None


def test_cache_hits_misses_and_persistence(add_ll: Path, tmp_path: Path):
    path = tmp_path / "cache.sqlite"
    module = Module.from_file(add_ll)
    job = Job(module, OZ, "aarch64-linux-gnu")
    with MeasureCache(path) as cache:
        first = measure(job, cache)
        second = measure(job, cache)
        assert not first.cached and second.cached
        assert first.sizes == second.sizes
        # Another pass list or another target is another key.
        assert not measure(Job(module, ("instcombine",), "aarch64-linux-gnu"), cache).cached
        assert not measure(Job(module, OZ, "thumbv7em-none-eabi"), cache).cached
        assert len(cache) == 3
    with MeasureCache(path) as reopened:
        again = measure(job, reopened)
        assert again.cached and again.sizes == first.sizes


def test_cache_key_follows_module_content(add_ll: Path, tmp_path: Path):
    copy = tmp_path / "add2.ll"
    copy.write_text(add_ll.read_text().replace("mul i32 %a, 7", "mul i32 %a, 9"))
    assert Module.from_file(copy).digest != Module.from_file(add_ll).digest


def test_process_pool_matches_serial(pid_c: Path, tmp_path: Path):
    ll = tmp_path / "pid.ll"
    compile_to_ir(pid_c, ll, "aarch64-linux-gnu")
    module = Module.from_file(ll)
    sequences = [OZ, ("sroa", "instcombine"), ("mem2reg", "simplifycfg", "adce")]
    jobs = [Job(module, s, "aarch64-linux-gnu") for s in sequences]
    parallel = measure_many(jobs, workers=2)
    serial = [measure_uncached(ll, s, "aarch64-linux-gnu") for s in sequences]
    assert [r.sizes for r in parallel] == serial
    assert serial[0].ir_instructions < count_ir_instructions(ll.read_text())
