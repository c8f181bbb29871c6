"""The one measurement interface: build a unit or a whole program with a candidate, read its sizes.

Search, training, evaluation and the baselines all measure through `measure_many` (as CompilerGym
separates its environment from agents); results are cached by everything that determines them.
"""
from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fleetforge.tools import ToolFailedError
from ml_tuner import llvm
from ml_tuner.build import Sizes, compile_ir, elf_sizes, link_optimized_ir
from ml_tuner.knobs import Candidate, KnobSpace

if TYPE_CHECKING:
    from ml_tuner.cache import MeasureCache


def digest_text(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Subject:
    """What is measured: raw IR of one unit (an object comes out) or the merged, internalized
    IR of a whole program (a linked executable comes out, `link_flags` are the link's)."""

    name: str
    ir: Path
    target: str
    cflags: tuple[str, ...]
    link_flags: tuple[str, ...] | None = None  # None: a unit
    digest: str = field(default="", compare=False)

    @classmethod
    def unit(cls, name: str, ir: Path, target: str, cflags: Sequence[str] = ()) -> "Subject":
        return cls(name, ir, target, tuple(cflags), None, _file_digest(ir))

    @classmethod
    def program(cls, name: str, ir: Path, target: str, cflags: Sequence[str],
                link_flags: Sequence[str]) -> "Subject":
        return cls(name, ir, target, tuple(cflags), tuple(link_flags), _file_digest(ir))

    @property
    def is_program(self) -> bool:
        return self.link_flags is not None

    @property
    def key(self) -> str:
        link = "\0".join(self.link_flags) if self.link_flags is not None else "-"
        return digest_text(self.digest, self.target, "\0".join(self.cflags), link,
                           f"llvm{llvm.LLVM_VERSION}")


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:32]


@dataclass(frozen=True)
class Job:
    """One measurement: a subject built with a candidate (whose flags come from `space`)."""

    subject: Subject
    candidate: Candidate
    space: KnobSpace

    @property
    def key(self) -> str:
        # The flags, not just the label: editing a knob's flags in the table is a new measurement.
        return digest_text(self.subject.key, self.candidate.label,
                           "\0".join(self.space.flags(self.candidate)))


@dataclass(frozen=True)
class Result:
    """A job's sizes (None: the build failed or timed out), its seconds (as first measured when
    cached), and the file it made when the caller asked to keep it."""

    job: Job
    sizes: Sizes | None
    seconds: float
    cached: bool
    error: str = ""
    artifact: Path | None = None


def build(job: Job, output: Path, timeout: float | None) -> None:
    """Make the job's object (unit) or executable (program) at `output`."""
    s = job.subject
    if not s.is_program:
        compile_ir(s.ir, s.target, s.cflags, job.space, job.candidate, output, timeout=timeout)
        return
    # Bitcode named as an object: lld takes it for LTO, and clang's bare-metal driver refuses
    # to hand a .bc file to the linker.
    optimized = output.with_suffix(".opt.o")
    try:
        compile_ir(s.ir, s.target, s.cflags, job.space, job.candidate, optimized,
                   emit_llvm=True, timeout=timeout)
        link_optimized_ir(s.target, optimized, s.link_flags or (), job.space, job.candidate,
                          output, timeout=timeout)
    finally:
        optimized.unlink(missing_ok=True)


def _run(job: Job, keep_dir: Path | None, timeout: float | None) -> Result:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ml_tuner-") as scratch:
        suffix = ".elf" if job.subject.is_program else ".o"
        output = (keep_dir or Path(scratch)) / f"{job.key[:20]}{suffix}"
        try:
            build(job, output, timeout)
            sizes: Sizes | None = elf_sizes(output)
            error = ""
        except ToolFailedError as failure:
            # A candidate that crashes clang or runs too long is a (bad) outcome, not an error.
            sizes, error = None, ("timeout" if "timed out" in str(failure) else "failed")
            output.unlink(missing_ok=True)
    return Result(job, sizes, time.perf_counter() - start, False, error,
                  output if keep_dir is not None and sizes is not None else None)


def measure_many(jobs: Sequence[Job], *, cache: "MeasureCache | None" = None, workers: int = 1,
                 keep_dir: Path | None = None, timeout: float | None = None,
                 on_done: Callable[[Result], None] | None = None) -> list[Result]:
    """Measure jobs: cache hits first, then the misses on `workers` threads (each runs clang).

    With keep_dir, measured (not cached) builds stay there (Result.artifact). A timeout counts
    as a failure and is cached as one only when no timeout was imposed by the caller.
    """
    results: dict[str, Result] = {}
    todo: list[Job] = []
    for job in jobs:
        if job.key in results or any(t.key == job.key for t in todo):
            continue
        hit = cache.get(job.key) if cache is not None else None
        if hit is not None:
            results[job.key] = Result(job, hit.sizes, hit.seconds, True)
            if on_done:
                on_done(results[job.key])
        else:
            todo.append(job)
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        for result in pool.map(lambda j: _run(j, keep_dir, timeout), todo):
            results[result.job.key] = result
            if cache is not None and result.error != "timeout":
                cache.put(result.job.key, result.sizes, result.seconds)
            if on_done:
                on_done(result)
    return [results[job.key] for job in jobs]
