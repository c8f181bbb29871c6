"""Tune a whole program: what ships is the linked binary, so that is what is measured and kept.

The baseline is the user's own build: clang -Oz with their flags per unit, linked by lld with
their link flags (LTO when they use it). Two ways to beat it:
- whole-program (the default, the winner in bench/results/ml_tuner_programs.md): every unit's raw
  IR merged and internalized as the linker's LTO sees it, tuned as one module, then code-generated
  and linked by the linker's own LTO code generator (same options and library resolution as the
  user's LTO link);
- per-unit: every unit tuned on its own (ml_tuner.tune), the objects linked.
Flash is every stored allocated byte of the final ELF. The binary written is never larger than
the baseline; with a check, a build whose run differs from the baseline's is rejected (and
reported) and the next smallest is tried.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import toolchains
from fleetforge.errors import UserError
from ml_tuner.build import Sizes, compile_source, elf_sizes, link, merge_program
from ml_tuner.cache import MeasureCache
from ml_tuner.graph import count_ir_instructions
from ml_tuner.knobs import OZ, load_knobs
from ml_tuner.measure import Job, Result, Subject, measure_many
from ml_tuner.run import Check, Run
from ml_tuner.search import Ranked, SearchOutcome, search
from ml_tuner.tune import UnitResult, coreset_ranking, default_workers, tune_unit

MODES = ("whole-program", "per-unit")
DEFAULT_MODE = "whole-program"
# Raw IR into LTO objects: the merged module is then tuned from scratch, not re-optimized.
RAW_LTO_FLAGS = ("-flto", "-Xclang", "-disable-llvm-passes")


@dataclass(frozen=True)
class Rejection:
    """A build that was smaller but whose run differed from the baseline's: a miscompile (or a
    program whose output is not deterministic). Never shipped."""

    candidate: str
    flash: int
    expected: Run
    got: Run


@dataclass(frozen=True)
class ProgramResult:
    """What tuning one program did (contract B of CONTRACTS.md)."""

    units: tuple[Path, ...]
    target: str
    out: Path | None
    lto: bool
    mode: str  # "whole-program" or "per-unit"
    baseline: Sizes  # the user's build, linked
    tuned: Sizes  # what was written
    candidate: str  # whole-program: the knob settings kept; per-unit: "per-unit"
    flags: tuple[str, ...]
    fell_back: bool
    reason: str
    compilations: int
    failures: int
    seconds: float
    rejected: tuple[Rejection, ...] = ()
    checked: bool = False
    unit_results: tuple[UnitResult, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    ir_instructions: int = 0
    # With keep_builds: every whole-program build measured afresh, (candidate, flash, binary).
    builds: tuple[tuple[str, int, Path], ...] = ()

    @property
    def gain(self) -> float:
        return (self.baseline.flash - self.tuned.flash) / max(self.baseline.flash, 1)

    def as_json(self) -> dict:
        return {"units": [str(u) for u in self.units], "target": self.target,
                "out": str(self.out) if self.out else None, "lto": self.lto, "mode": self.mode,
                "candidate": self.candidate, "flags": list(self.flags),
                "baseline": self.baseline.as_dict(), "tuned": self.tuned.as_dict(),
                "gain": round(self.gain, 5), "fell_back": self.fell_back, "reason": self.reason,
                "compilations": self.compilations, "failures": self.failures,
                "checked": self.checked,
                "rejected": [{"candidate": r.candidate, "flash": r.flash} for r in self.rejected],
                "seconds": round(self.seconds, 3), "ir_instructions": self.ir_instructions,
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "units_tuned": [u.as_json() for u in self.unit_results]}


@dataclass(frozen=True)
class Build:
    """The user's build of a program: objects compiled with their flags, linked with lld."""

    target: str
    units: tuple[Path, ...]
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    lto: bool

    @property
    def compile_flags(self) -> tuple[str, ...]:
        return (*self.cflags, *(("-flto",) if self.lto else ()))

    @property
    def link_flags(self) -> tuple[str, ...]:
        return (*self.compile_flags, *self.ldflags)

    def objects(self, folder: Path, extra: Sequence[str], workers: int) -> list[Path]:
        """Every unit compiled (clang -Oz CFLAGS EXTRA -c), in parallel; names kept apart."""
        folder.mkdir(parents=True, exist_ok=True)
        outputs = [folder / f"{i:03d}-{unit.stem}.o" for i, unit in enumerate(self.units)]
        with ThreadPoolExecutor(max(workers, 1)) as pool:
            list(pool.map(lambda pair: compile_source(pair[0], self.target, self.cflags, pair[1],
                                                      extra), zip(self.units, outputs)))
        return outputs

    def baseline(self, folder: Path, workers: int) -> Path:
        """The user's own binary."""
        objects = self.objects(folder / "baseline", ("-flto",) if self.lto else (), workers)
        binary = folder / "baseline.elf"
        link(self.target, objects, self.link_flags, binary)
        return binary

    def merged_module(self, folder: Path, workers: int) -> Path:
        """Every unit's raw IR merged and internalized as the linker's LTO sees it (textual IR)."""
        objects = self.objects(folder / "raw", RAW_LTO_FLAGS, workers)
        merged = folder / "merged.ll"
        merge_program(self.target, objects, self.link_flags, merged)
        return merged


def tune_program(units: Sequence[Path], target: str, *, cflags: Sequence[str] = (),
                 ldflags: Sequence[str] = (), out: Path | None = None, lto: bool = False,
                 budget: int = 45, cache: MeasureCache | None = None, mode: str = DEFAULT_MODE,
                 check: Check | None = None, workers: int | None = None,
                 time_limit: float | None = None,
                 keep_builds: Path | None = None) -> ProgramResult:
    """Tune a program made of UNITS for TARGET; write the binary to OUT.

    budget: builds of the whole program allowed (whole-program) or per unit (per-unit), the
    baseline's included. check: runs a binary; a tuned binary whose run differs from the
    baseline's is rejected. time_limit: seconds for the search (None: the budget alone bounds it).
    keep_builds: a folder that keeps every binary built (whole-program), e.g. to test them all.
    """
    started = time.monotonic()
    toolchains.target(target).require(with_llvm=True)
    if mode not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)} (got {mode})")
    if not units:
        raise UserError("no units to build")
    for unit in units:
        if not unit.is_file():
            raise UserError("no such file", where=str(unit))
    workers = workers or default_workers()
    build = Build(target, tuple(units), tuple(cflags), tuple(ldflags), lto)
    with tempfile.TemporaryDirectory(prefix="ml_tuner-program-") as scratch_name:
        scratch = Path(scratch_name)
        tick = time.monotonic()
        baseline_binary = build.baseline(scratch, workers)
        timings = {"baseline build": time.monotonic() - tick}
        baseline = elf_sizes(baseline_binary)
        expected = check(baseline_binary) if check is not None else None
        if mode == "whole-program":
            outcome, extra = _whole_program(build, scratch, baseline, timings, budget, cache,
                                            workers, time_limit, keep_builds)
            choices = [(r.job.candidate.label, r.artifact, r.sizes, r) for r in outcome.ordered()]
            compilations, failures = 1 + len(outcome.tried), outcome.failures
            stop = outcome.stop_reason
        else:
            choices, extra, compilations, failures = _per_unit(build, scratch, baseline, budget,
                                                                cache, workers, timings)
            stop = "every unit tuned"
        tick = time.monotonic()
        kept, rejected = _first_that_passes(build, choices, check, expected, scratch)
        timings["check"] = time.monotonic() - tick
        if kept is None:
            label, binary, sizes = "Oz", baseline_binary, baseline
        else:
            label, binary, sizes = kept
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            partial = out.with_name(out.name + ".part")
            shutil.copyfile(binary, partial)
            partial.chmod(0o755)
            partial.replace(out)
    fell_back = kept is None
    if fell_back:
        reason = ("every smaller build failed its check; kept the baseline" if rejected else
                  f"nothing beat the baseline; kept it ({stop})")
    else:
        reason = f"{mode}: {stop}"
    space = load_knobs().for_target(target)
    flags = space.flags(_candidate(label)) if mode == "whole-program" else ()
    return ProgramResult(tuple(units), target, out, lto, mode, baseline, sizes, label, flags,
                         fell_back, reason, compilations, failures, time.monotonic() - started,
                         tuple(rejected), check is not None, extra.get("units", ()), timings,
                         extra.get("ir_instructions", 0), extra.get("builds", ()))


def _candidate(label: str):
    from ml_tuner.knobs import Candidate

    return OZ if label in ("Oz", "per-unit") else Candidate.parse(label)


def _whole_program(build: Build, scratch: Path, baseline: Sizes, timings: dict[str, float],
                   budget: int, cache: MeasureCache | None, workers: int,
                   time_limit: float | None, keep_builds: Path | None) -> tuple[SearchOutcome, dict]:
    tick = time.monotonic()
    merged = build.merged_module(scratch, workers)
    timings["merge"] = time.monotonic() - tick
    text = merged.read_text(encoding="utf-8", errors="replace")
    space = load_knobs().for_target(build.target)
    subject = Subject.program("program", merged, build.target, build.cflags, build.link_flags)
    tick = time.monotonic()
    ranked, _ = coreset_ranking(build.target, text, space)
    timings["graph+model"] = time.monotonic() - tick
    # Whole-program clang -Oz (no knob) first: the plain merge is often a gain of its own.
    ranked = [Ranked(OZ), *[r for r in ranked if r.candidate != OZ]]
    keep = keep_builds or scratch / "builds"
    keep.mkdir(parents=True, exist_ok=True)
    tick = time.monotonic()
    outcome = search(subject, space, ranked, baseline, budget=budget,
                     baseline_seconds=timings["baseline build"], cache=cache, workers=workers,
                     keep_dir=keep, time_limit=time_limit)
    timings["search"] = time.monotonic() - tick
    timings["builds"] = outcome.compile_seconds
    kept = tuple((r.job.candidate.label, r.sizes.flash, r.artifact) for r in outcome.tried
                 if keep_builds is not None and r.artifact is not None and r.sizes is not None)
    return outcome, {"ir_instructions": count_ir_instructions(text), "builds": kept}


def _per_unit(build: Build, scratch: Path, baseline: Sizes, budget: int,
              cache: MeasureCache | None, workers: int, timings: dict[str, float]):
    tick = time.monotonic()
    folder = scratch / "per-unit"
    folder.mkdir()
    results = []
    for i, unit in enumerate(build.units):
        results.append(tune_unit(unit, build.target, cflags=build.cflags,
                                 out=folder / f"{i:03d}-{unit.stem}.o", budget=budget,
                                 cache=cache, workers=workers, time_limit=None))
    binary = scratch / "per-unit.elf"
    # Native objects now: the link keeps the user's link flags but has nothing left for LTO.
    link(build.target, [r.out for r in results], (*build.cflags, *build.ldflags), binary)
    sizes = elf_sizes(binary)
    timings["search"] = time.monotonic() - tick
    choices = [("per-unit", binary, sizes, None)] if sizes.flash < baseline.flash else []
    compilations = sum(r.compilations for r in results) + 1
    failures = sum(r.failures for r in results)
    return choices, {"units": tuple(results)}, compilations, failures


def _first_that_passes(build: Build, choices, check: Check | None, expected: Run | None,
                       scratch: Path):
    """The smallest build whose run matches the baseline's (every build, without a check)."""
    rejected: list[Rejection] = []
    space = load_knobs().for_target(build.target)
    for label, artifact, sizes, result in choices:
        binary = artifact
        if binary is None or not Path(binary).is_file():  # measured in an earlier run: rebuild
            binary = _rebuild(result, space, scratch)
        if check is None or expected is None:
            return (label, binary, sizes), rejected
        got = check(binary)
        if got.same_as(expected):
            return (label, binary, sizes), rejected
        rejected.append(Rejection(label, sizes.flash, expected, got))
    return None, rejected


def _rebuild(result: Result, space, scratch: Path) -> Path:
    again = measure_many([Job(result.job.subject, result.job.candidate, space)],
                         keep_dir=scratch)[0]
    if again.artifact is None:
        raise UserError(f"candidate {result.job.candidate.label} no longer builds")
    return again.artifact
