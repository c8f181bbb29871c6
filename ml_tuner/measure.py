"""The one measurement interface: build a unit or a whole program with a candidate, read its sizes.

Search, training, evaluation and the baselines all measure through `measure_many` (as CompilerGym
separates its environment from agents); results are cached by everything that determines them.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fleetforge.errors import UserError
from fleetforge.tools import ToolFailedError
from ml_tuner import llvm
from ml_tuner.build import Sizes, compile_ir, elf_sizes, link_optimized_ir
from ml_tuner.knobs import Candidate, KnobSpace

if TYPE_CHECKING:
    from ml_tuner.cache import MeasureCache

BACKEND_ENV = "ML_TUNER_BACKEND"
# Where the misses are built: "pool" on this machine's threads (`workers` at a time), "ray" as
# tasks on the Ray cluster RAY_ADDRESS names (ml_tuner/ray_cluster.py).
BACKENDS = ("pool", "ray")


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
        return cls(name, ir, target, tuple(cflags), tuple(link_flags), _module_digest(ir))

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


def _module_digest(path: Path) -> str:
    """Digest of a merged module's text without the line naming its (temporary) file, so the
    same program merged in another folder is the same subject."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for line in handle:
            if not line.startswith(b"; ModuleID = "):
                digest.update(line)
    return digest.hexdigest()[:32]


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


def chosen_backend(backend: str | None = None) -> str:
    """The one place the backend is chosen: the argument, else ML_TUNER_BACKEND, else the pool."""
    name = backend or os.environ.get(BACKEND_ENV) or BACKENDS[0]
    if name not in BACKENDS:
        raise UserError(f"unknown measurement backend {name!r}: use one of {', '.join(BACKENDS)}",
                        where=BACKEND_ENV)
    return name


def output_name(job: Job) -> str:
    """The file name of a job's build (kept in keep_dir when asked)."""
    return f"{job.key[:20]}{'.elf' if job.subject.is_program else '.o'}"


def _run(job: Job, keep_dir: Path | None, timeout: float | None) -> Result:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ml_tuner-") as scratch:
        output = (keep_dir or Path(scratch)) / output_name(job)
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


def measure_shipped(job: Job, ir_text: bytes, keep: bool, timeout: float | None
                    ) -> tuple[Sizes | None, float, str, bytes | None]:
    """One job as a Ray task on any node: nodes share no files, so the subject's IR comes as
    bytes and a kept build goes back as bytes (sizes, seconds, error, build)."""
    with tempfile.TemporaryDirectory(prefix="ml_tuner-ray-") as local:
        ir = Path(local) / job.subject.ir.name
        ir.write_bytes(ir_text)
        result = _run(replace(job, subject=replace(job.subject, ir=ir)),
                      Path(local) if keep else None, timeout)
        built = result.artifact.read_bytes() if result.artifact is not None else None
    return result.sizes, result.seconds, result.error, built


def _measure_in_pool(todo: dict[str, Job], workers: int, keep_dir: Path | None,
                     timeout: float | None) -> Iterator[tuple[str, Result]]:
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        yield from zip(todo, pool.map(lambda j: _run(j, keep_dir, timeout), todo.values()))


def _measure_on_ray(todo: dict[str, Job], keep_dir: Path | None,
                    timeout: float | None) -> Iterator[tuple[str, Result]]:
    from ml_tuner import ray_cluster  # lazily: only a Ray run pays for importing Ray

    texts: dict[Path, bytes] = {}
    for job in todo.values():
        if job.subject.ir not in texts:
            texts[job.subject.ir] = job.subject.ir.read_bytes()
    keys = list(todo)
    calls = [(job, texts[job.subject.ir], keep_dir is not None, timeout) for job in todo.values()]
    for index, (sizes, seconds, error, built) in ray_cluster.run_tasks(
            measure_shipped, calls, label="measuring on Ray"):
        job = todo[keys[index]]
        kept = None
        if built is not None and keep_dir is not None:
            kept = keep_dir / output_name(job)
            kept.write_bytes(built)
        yield keys[index], Result(job, sizes, seconds, False, error, kept)


def measure_many(jobs: Sequence[Job], *, cache: "MeasureCache | None" = None, workers: int = 1,
                 keep_dir: Path | None = None, timeout: float | None = None,
                 on_done: Callable[[Result], None] | None = None,
                 backend: str | None = None) -> list[Result]:
    """Measure jobs: cache hits first, then only the misses on the chosen backend (see
    chosen_backend: `workers` threads here, or Ray tasks on a cluster). Results come back in
    job order; the cache is written here only, from the calling thread (one writer).

    With keep_dir, measured (not cached) builds stay there (Result.artifact). A timeout counts
    as a failure and is cached as one only when no timeout was imposed by the caller.
    """
    on_ray = chosen_backend(backend) == "ray"
    keys = [job.key for job in jobs]  # a key hashes the flags: compute each once
    results: dict[str, Result] = {}
    todo: dict[str, Job] = {}
    for key, job in zip(keys, jobs):
        if key in results or key in todo:
            continue
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            results[key] = Result(job, hit.sizes, hit.seconds, True)
            if on_done:
                on_done(results[key])
        else:
            todo[key] = job
    if todo:
        measured = (_measure_on_ray(todo, keep_dir, timeout) if on_ray
                    else _measure_in_pool(todo, workers, keep_dir, timeout))
        for key, result in measured:
            results[key] = result
            if cache is not None and result.error != "timeout":
                cache.put(key, result.sizes, result.seconds)
            if on_done:
                on_done(result)
    return [results[key] for key in keys]
