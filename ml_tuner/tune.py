"""Tune one unit: its raw IR, clang -Oz's object as the floor, the model's ranked candidates.

The object (or IR) written is the smallest build found, and clang's own output whenever nothing
beats it: never larger than clang -Oz with the same flags.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from fleetforge.errors import UserError
from ml_tuner import llvm
from ml_tuner.build import (Sizes, compile_ir, compile_source, elf_sizes, emit_raw_ir)
from ml_tuner.cache import MeasureCache
from ml_tuner.graph import count_ir_instructions
from ml_tuner.knobs import OZ, Candidate, KnobSpace, load_knobs
from ml_tuner.measure import Subject, digest_text
from ml_tuner.model import model_path, shipped_model
from ml_tuner.search import Ranked, search

SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".i")
IR_SUFFIXES = (".ll", ".bc")
DEFAULT_TIME_LIMIT = 10.0  # seconds per unit, everything included (issue 15's bound)


def default_workers() -> int:
    """Parallel builds: ML_TUNER_WORKERS, else every core (set it on a shared machine)."""
    return int(os.environ.get("ML_TUNER_WORKERS", os.cpu_count() or 1))


@dataclass(frozen=True)
class UnitResult:
    """What tuning one unit did (contract B of CONTRACTS.md)."""

    source: Path
    target: str
    out: Path | None
    baseline: Sizes  # clang -Oz with the same flags
    tuned: Sizes  # what was written: the baseline's sizes when it fell back
    candidate: str  # the knob settings kept ("Oz": clang's own output)
    flags: tuple[str, ...]  # clang flags that reproduce it (after the user's flags and -Oz)
    fell_back: bool
    reason: str
    cached: bool  # the decision came from the cache (nothing was re-tuned)
    compilations: int  # builds, the baseline's included
    failures: int  # candidates that failed or timed out
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    ir_instructions: int = 0

    @property
    def gain(self) -> float:
        return (self.baseline.flash - self.tuned.flash) / max(self.baseline.flash, 1)

    def as_json(self) -> dict:
        return {"source": str(self.source), "target": self.target,
                "out": str(self.out) if self.out else None, "candidate": self.candidate,
                "flags": list(self.flags), "baseline": self.baseline.as_dict(),
                "tuned": self.tuned.as_dict(), "gain": round(self.gain, 5),
                "fell_back": self.fell_back, "reason": self.reason, "cached": self.cached,
                "compilations": self.compilations, "failures": self.failures,
                "seconds": round(self.seconds, 3), "ir_instructions": self.ir_instructions,
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}


def coreset_ranking(target: str, ll_text: str, space: KnobSpace) -> tuple[list[Ranked], str]:
    """The target's model's ranking of its coreset, or (no model) the knob settings one by one."""
    model = shipped_model(target)
    if model is None:
        return [Ranked(c) for c in space.singles()], "none (knob settings in table order)"
    known = {k.name for k in space.knobs}
    ranked = [r for r in model.rank(ll_text) if {k for k, _ in r.candidate.settings} <= known]
    return ranked, model_path(target).name


def _decision_key(ir_text: str, target: str, cflags: Sequence[str], budget: int,
                  space: KnobSpace, model_name: str) -> str:
    path = model_path(target)
    model_stamp = str(path.stat().st_mtime_ns) if path.is_file() else "none"
    knobs = "\0".join(f"{k.name}:{k.settings}" for k in space.knobs)
    return digest_text(ir_text, target, "\0".join(cflags), f"llvm{llvm.LLVM_VERSION}",
                       str(budget), knobs, model_name, model_stamp)


def prepare_ir(source: Path, target: str, cflags: Sequence[str], scratch: Path) -> Path:
    """Raw IR of a C/C++ source (as clang -Oz optimizes it); .ll/.bc inputs as given."""
    suffix = source.suffix
    if suffix in IR_SUFFIXES:
        return source
    if suffix not in SOURCE_SUFFIXES:
        raise UserError(f"expected a C/C++ source ({', '.join(SOURCE_SUFFIXES)}) or LLVM IR "
                        f"({', '.join(IR_SUFFIXES)})", where=str(source))
    ir = scratch / (source.stem + ".ll")
    emit_raw_ir(source, target, cflags, ir)
    return ir


def tune_unit(source: Path, target: str, *, cflags: Sequence[str] = (), out: Path | None = None,
              budget: int = 45, cache: MeasureCache | None = None, emit_llvm: bool = False,
              workers: int | None = None, time_limit: float | None = DEFAULT_TIME_LIMIT,
              started: float | None = None) -> UnitResult:
    """Tune SOURCE for TARGET with the user's CFLAGS; write the object (or IR) to OUT.

    budget: builds allowed, the baseline's included. time_limit: seconds for the whole unit
    (from `started`, a time.monotonic() value, default now); the search stops when it is spent.
    """
    import toolchains

    started = time.monotonic() if started is None else started
    toolchains.target(target).require(with_llvm=True)
    if not source.is_file():
        raise UserError("no such file", where=str(source))
    if budget < 1:
        raise UserError(f"the budget must be at least 1 (got {budget})")
    workers = workers or default_workers()
    cflags = tuple(cflags)
    space = load_knobs().for_target(target)
    if emit_llvm:  # code-generation knobs cannot travel inside IR
        space = KnobSpace(tuple(k for k in space.knobs if k.stage == "ir"))
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ml_tuner-unit-") as scratch_name:
        scratch = Path(scratch_name)
        base_obj = scratch / "baseline.o"
        tick = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            ir_future = pool.submit(prepare_ir, source, target, cflags, scratch)
            if source.suffix in IR_SUFFIXES:
                ir = ir_future.result()
                compile_ir(ir, target, cflags, space, OZ, base_obj)
            else:
                base_future = pool.submit(compile_source, source, target, cflags, base_obj)
                ir = ir_future.result()
                base_future.result()
        timings["frontend+baseline"] = time.monotonic() - tick
        baseline = elf_sizes(base_obj)
        ir_text = ir.read_text(encoding="utf-8", errors="replace") if ir.suffix == ".ll" else ""
        subject = Subject.unit(source.name, ir, target, cflags)
        model_name = model_path(target).name
        key = _decision_key(ir_text or subject.digest, target, cflags, budget, space, model_name)
        decision = cache.get_decision(key) if cache is not None else None
        if decision is not None:
            return _replay(decision, source, target, cflags, space, ir, base_obj, baseline, out,
                           emit_llvm, started, timings, ir_text)
        tick = time.monotonic()
        ranked, model_name = coreset_ranking(target, ir_text, space)
        timings["graph+model"] = time.monotonic() - tick
        limit = None if time_limit is None else time_limit - (time.monotonic() - started) - 0.3
        tick = time.monotonic()
        outcome = search(subject, space, ranked, baseline, budget=budget,
                         baseline_seconds=max(timings["frontend+baseline"], 0.05), cache=cache,
                         workers=workers, keep_dir=scratch, time_limit=limit)
        timings["search"] = time.monotonic() - tick
        timings["builds"] = outcome.compile_seconds
        chosen = outcome.best or OZ
        tick = time.monotonic()
        written = _write(out, chosen, outcome.best_artifact, base_obj, ir, target, cflags, space,
                         emit_llvm)
        timings["write"] = time.monotonic() - tick
        if cache is not None:
            cache.put_decision(key, {"candidate": chosen.label,
                                     "tuned": outcome.sizes.as_dict(),
                                     "baseline": baseline.as_dict()})
    fell_back = outcome.best is None
    reason = (f"nothing beat clang -Oz; kept clang's own output ({outcome.stop_reason})"
              if fell_back else f"stopped: {outcome.stop_reason}")
    return UnitResult(source, target, written, baseline, outcome.sizes, chosen.label,
                      space.flags(chosen), fell_back, reason, False, 1 + len(outcome.tried),
                      outcome.failures, time.monotonic() - started, timings,
                      count_ir_instructions(ir_text) if ir_text else 0)


def _write(out: Path | None, chosen: Candidate, artifact: Path | None, base_obj: Path, ir: Path,
           target: str, cflags: tuple[str, ...], space: KnobSpace, emit_llvm: bool) -> Path | None:
    """Write the chosen build to OUT (through a temporary file: nothing half-written)."""
    if out is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    if emit_llvm:
        compile_ir(ir, target, cflags, space, chosen, partial, emit_llvm=True, text=True)
    elif chosen == OZ:
        shutil.copyfile(base_obj, partial)
    elif artifact is not None and artifact.is_file():
        shutil.copyfile(artifact, partial)
    else:  # measured earlier (cache): build it once more
        compile_ir(ir, target, cflags, space, chosen, partial)
    partial.replace(out)
    return out


def _replay(decision: dict, source: Path, target: str, cflags: tuple[str, ...], space: KnobSpace,
            ir: Path, base_obj: Path, baseline: Sizes, out: Path | None, emit_llvm: bool,
            started: float, timings: dict[str, float], ir_text: str) -> UnitResult:
    """A cached decision: build the kept candidate once (no search) and check its sizes."""
    chosen = Candidate.parse(decision["candidate"])
    with tempfile.TemporaryDirectory(prefix="ml_tuner-replay-") as scratch_name:
        scratch = Path(scratch_name)
        tuned = baseline
        artifact = None
        if chosen != OZ:
            artifact = scratch / "tuned.o"
            compile_ir(ir, target, cflags, space, chosen, artifact)
            tuned = elf_sizes(artifact)
            if tuned.flash >= baseline.flash:  # not reproducible any more: keep clang's output
                chosen, tuned, artifact = OZ, baseline, None
        written = _write(out, chosen, artifact, base_obj, ir, target, cflags, space, emit_llvm)
    return UnitResult(source, target, written, baseline, tuned, chosen.label, space.flags(chosen),
                      chosen == OZ, "cached decision" + (" (clang -Oz)" if chosen == OZ else ""),
                      True, 1 + (chosen != OZ), 0, time.monotonic() - started, timings,
                      count_ir_instructions(ir_text) if ir_text else 0)
