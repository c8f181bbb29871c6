"""The one measurement interface: optimize a module with a pass list, report IR and object sizes.

Everything else in ml_tuner (corpus statistics, coreset, training, tuning, baselines) measures
through `measure` / `measure_many` only, as CompilerGym separates its environment from agents.
"""
from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from fleetforge.tools import ToolFailedError, run_tool
from ml_tuner import llvm

if TYPE_CHECKING:
    from ml_tuner.cache import MeasureCache

OZ: tuple[str, ...] = ("default<Oz>",)


@dataclass(frozen=True)
class Module:
    """An unoptimized LLVM IR module (textual .ll) and the digest that keys the cache."""

    name: str
    path: Path
    digest: str

    @classmethod
    def from_file(cls, path: Path, name: str | None = None) -> "Module":
        data = path.read_bytes()
        return cls(name or path.stem, path, hashlib.sha256(data).hexdigest()[:32])


@dataclass(frozen=True)
class Sizes:
    """What one compilation produced. `object_bytes` counts every allocated section (code+data)."""

    ir_instructions: int
    text_bytes: int
    object_bytes: int

    def as_dict(self) -> dict[str, int]:
        return {
            "ir_instructions": self.ir_instructions,
            "text_bytes": self.text_bytes,
            "object_bytes": self.object_bytes,
        }


def pipeline_text(passes: tuple[str, ...]) -> str:
    """The `opt -passes=` argument for a sequence; the empty sequence is the identity."""
    return ",".join(passes) if passes else "verify"


def count_ir_instructions(ll_text: str) -> int:
    """Instructions in function bodies of textual IR (labels, comments and braces excluded)."""
    count = 0
    in_body = False
    for line in ll_text.splitlines():
        if not in_body:
            if line.startswith("define ") and line.rstrip().endswith("{"):
                in_body = True
            continue
        if line.startswith("}"):
            in_body = False
            continue
        stripped = line.strip()
        # Instructions are indented; labels ("bb:", "12:") start at column 0.
        if stripped and line[0] in " \t" and not stripped.startswith(";"):
            count += 1
    return count


def object_sizes(object_path: Path) -> tuple[int, int]:
    """(.text bytes, allocated bytes) of an ELF object: executable and all SHF_ALLOC sections."""
    text = alloc = 0
    with object_path.open("rb") as handle:
        for section in ELFFile(handle).iter_sections():
            flags = section["sh_flags"]
            if flags & SH_FLAGS.SHF_ALLOC:
                alloc += section["sh_size"]
                if flags & SH_FLAGS.SHF_EXECINSTR:
                    text += section["sh_size"]
    return text, alloc


def measure_uncached(module_path: Path, passes: tuple[str, ...], triple: str) -> Sizes:
    """Run opt then llc for `triple` in a scratch directory and read the sizes."""
    target = llvm.target_for(triple)
    with tempfile.TemporaryDirectory(prefix="ml_tuner-") as scratch:
        optimized = Path(scratch) / "out.ll"
        obj = Path(scratch) / "out.o"
        run_tool(
            [llvm.OPT, f"-passes={pipeline_text(passes)}", "-S", module_path, "-o", optimized],
            debian_package=llvm.LLVM_PACKAGE,
            timeout=120,
        )
        ir_count = count_ir_instructions(optimized.read_text(encoding="utf-8", errors="replace"))
        run_tool(
            [llvm.LLC, f"-mtriple={triple}", *target.llc_flags, "-filetype=obj", optimized,
             "-o", obj],
            debian_package=llvm.LLVM_PACKAGE,
            timeout=120,
        )
        text, alloc = object_sizes(obj)
    return Sizes(ir_count, text, alloc)


@dataclass(frozen=True)
class Job:
    """One measurement request: a module, a pass sequence and a target triple."""

    module: Module
    passes: tuple[str, ...]
    triple: str

    @property
    def key(self) -> str:
        raw = f"{self.module.digest}|{pipeline_text(self.passes)}|{self.triple}|llvm{llvm.LLVM_VERSION}"
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Result:
    """A job's sizes (None when opt or llc failed on it) and the seconds it took (0 if cached)."""

    job: Job
    sizes: Sizes | None
    seconds: float
    cached: bool


def _run_job(module_path: Path, passes: tuple[str, ...], triple: str) -> tuple[Sizes | None, float]:
    start = time.perf_counter()
    try:
        sizes: Sizes | None = measure_uncached(module_path, passes, triple)
    except ToolFailedError:
        # A pass order that crashes or times out is a (bad) outcome, not an error of the user's.
        sizes = None
    return sizes, time.perf_counter() - start


def measure(job: Job, cache: "MeasureCache | None" = None) -> Result:
    """Measure one job, through the cache when one is given."""
    return measure_many([job], cache=cache, workers=1)[0]


def measure_many(
    jobs: list[Job],
    *,
    cache: "MeasureCache | None" = None,
    workers: int = 1,
    on_done: Callable[[], None] | None = None,
) -> list[Result]:
    """Measure many jobs: cache hits first, the misses on a process pool of `workers`."""
    from ml_tuner.parallel import run_jobs

    results: list[Result | None] = [None] * len(jobs)
    missing: list[int] = []
    for index, job in enumerate(jobs):
        hit = cache.get(job.key) if cache is not None else None
        if hit is not None:
            results[index] = Result(job, hit.sizes, 0.0, True)
            if on_done:
                on_done()
        else:
            missing.append(index)
    # Duplicate jobs in one batch are measured once.
    unique: dict[str, int] = {}
    for index in missing:
        unique.setdefault(jobs[index].key, index)
    todo = [jobs[i] for i in unique.values()]
    measured: dict[str, tuple[Sizes | None, float]] = {}
    for job, (sizes, seconds) in run_jobs(todo, _run_job, workers=workers, on_done=on_done):
        measured[job.key] = (sizes, seconds)
        if cache is not None:
            cache.put(job.key, sizes, seconds)
    for index in missing:
        sizes, seconds = measured[jobs[index].key]
        results[index] = Result(jobs[index], sizes, seconds, False)
    return [r for r in results if r is not None]

