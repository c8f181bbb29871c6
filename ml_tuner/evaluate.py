"""Held-out evaluation, per target: the linked programs of held-out projects (issue 15's goal)
against clang -Oz -flto -ffunction-sections -fdata-sections -Wl,--gc-sections, with the model,
the best of 45 random candidates and the coreset oracle in the same run; every kept binary is
run against the baseline's (checks in data/projects.toml)."""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fleetforge.progress import step_progress
from ml_tuner.build import Sizes, elf_sizes, link
from ml_tuner.cache import MeasureCache
from ml_tuner.graph import count_ir_instructions
from ml_tuner.knobs import OZ, load_knobs
from ml_tuner.measure import Job, Result, Subject, measure_many
from ml_tuner.model import shipped_model
from ml_tuner.program import Build
from ml_tuner.programs import Program, programs_for
from ml_tuner.run import Check, Run
from ml_tuner.search import Ranked, random_ranking, search
from ml_tuner.tune import tune_unit
from ml_tuner.values import geomean_reduction

RESULTS_DIR = Path("bench") / "results"
BASELINE_FLAGS = ("-flto", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections")


def machine_line() -> str:
    load = os.getloadavg()
    return (f"{platform.node()}: {os.cpu_count()} cores, {platform.processor() or platform.machine()}"
            f", load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


@dataclass
class MethodResult:
    """One method on one program: the binary it ships (after checks) and what it cost."""

    flash: int
    text: int
    candidate: str
    builds: int
    seconds: float
    rejected: list[str] = field(default_factory=list)  # candidates whose runs differed


@dataclass
class ProgramRow:
    target: str
    program: str
    units: int
    ir_instructions: int  # of the merged module
    baseline_flash: int  # clang -Oz -flto ... --gc-sections
    baseline_text: int
    nolto_flash: int  # the same without -flto
    methods: dict[str, MethodResult]
    load: str

    def gain(self, method: str) -> float:
        return (self.baseline_flash - self.methods[method].flash) / self.baseline_flash


def _first_passing(results: list[Result], baseline: Sizes, check: Check, expected: Run,
                   scratch: Path) -> tuple[Result | None, list[str]]:
    """The smallest result that beats the baseline and whose run matches the baseline's."""
    space = load_knobs().for_target(results[0].job.subject.target) if results else None
    rejected = []
    good = sorted((r for r in results if r.sizes is not None and r.sizes.flash < baseline.flash),
                  key=lambda r: (r.sizes.flash, r.sizes.text))
    for result in good:
        binary = result.artifact
        if binary is None or not binary.is_file():
            binary = measure_many([Job(result.job.subject, result.job.candidate, space)],
                                  keep_dir=scratch)[0].artifact
        if binary is not None and check(binary).same_as(expected):
            return result, rejected
        rejected.append(result.job.candidate.label)
    return None, rejected


def _method(results: list[Result], baseline: Sizes, check: Check, expected: Run, scratch: Path,
            seconds: float) -> MethodResult:
    kept, rejected = _first_passing(results, baseline, check, expected, scratch)
    if kept is None:
        return MethodResult(baseline.flash, baseline.text, "Oz", len(results) + 1, seconds,
                            rejected)
    assert kept.sizes is not None
    return MethodResult(kept.sizes.flash, kept.sizes.text, kept.job.candidate.label,
                        len(results) + 1, seconds, rejected)


def evaluate_program(program: Program, target: str, budget: int, workers: int,
                     cache: MeasureCache, scratch: Path) -> ProgramRow:
    """Baseline, model, random, oracle (whole program) and per-unit on one program."""
    units = tuple(program.unit_files())
    cflags = tuple(f for f in program.cflags(target) if f not in BASELINE_FLAGS)
    ldflags = program.ldflags(target)
    build = Build(target, units, cflags, ldflags, lto=True)
    scratch.mkdir(parents=True, exist_ok=True)
    baseline_binary = build.baseline(scratch, workers)
    baseline = elf_sizes(baseline_binary)
    nolto = scratch / "nolto.elf"
    link(target, build.objects(scratch / "nolto", (), workers), (*cflags, *ldflags), nolto)
    check = program.check(target)
    expected = check(baseline_binary)
    if expected.status != 0 or expected.timed_out:
        raise RuntimeError(f"{program.name}: the baseline fails its own check:\n{expected.output}")
    merged = build.merged_module(scratch, workers)
    text = merged.read_text(encoding="utf-8", errors="replace")
    subject = Subject.program(program.name, merged, target, cflags, build.link_flags)
    space = load_knobs().for_target(target)
    model = shipped_model(target)
    assert model is not None, f"no model for {target}"
    keep = scratch / "builds"
    keep.mkdir(exist_ok=True)
    base_seconds = 30.0
    methods: dict[str, MethodResult] = {}

    tick = time.monotonic()
    ranked = [Ranked(OZ), *[r for r in model.rank(text) if r.candidate != OZ]]
    outcome = search(subject, space, ranked, baseline, budget=budget,
                     baseline_seconds=base_seconds, cache=cache, workers=workers, keep_dir=keep)
    methods["model"] = _method(outcome.tried, baseline, check, expected, keep,
                               time.monotonic() - tick)
    random = random_ranking(space, budget - 1, f"{program.name}:{target}")
    tick = time.monotonic()
    outcome = search(subject, space, random, baseline, budget=budget,
                     baseline_seconds=base_seconds, cache=cache, workers=workers, keep_dir=keep)
    methods["random"] = _method(outcome.tried, baseline, check, expected, keep,
                                time.monotonic() - tick)
    oracle = [Ranked(c) for c in (OZ, *model.coreset)]
    tick = time.monotonic()
    outcome = search(subject, space, oracle, baseline, budget=len(oracle) + 1,
                     baseline_seconds=base_seconds, cache=cache, workers=workers, keep_dir=keep)
    methods["oracle"] = _method(outcome.tried, baseline, check, expected, keep,
                                time.monotonic() - tick)
    methods["whole-program Oz"] = _method([r for r in outcome.tried if r.job.candidate == OZ],
                                          baseline, check, expected, keep, 0.0)
    methods["per-unit"] = _per_unit(build, baseline, budget, workers, cache, scratch, check,
                                    expected)
    return ProgramRow(target, program.name, len(units), count_ir_instructions(text),
                      baseline.flash, baseline.text, elf_sizes(nolto).flash, methods,
                      machine_line())


def _per_unit(build: Build, baseline: Sizes, budget: int, workers: int, cache: MeasureCache,
              scratch: Path, check: Check, expected: Run) -> MethodResult:
    tick = time.monotonic()
    folder = scratch / "per-unit"
    folder.mkdir(exist_ok=True)
    objects, builds = [], 0
    for i, unit in enumerate(build.units):
        result = tune_unit(unit, build.target, cflags=build.cflags,
                           out=folder / f"{i:03d}-{unit.stem}.o", budget=budget, cache=cache,
                           workers=workers, time_limit=None)
        objects.append(result.out)
        builds += result.compilations
    binary = scratch / "per-unit.elf"
    link(build.target, objects, (*build.cflags, *build.ldflags), binary)
    sizes = elf_sizes(binary)
    seconds = time.monotonic() - tick
    if sizes.flash >= baseline.flash:
        return MethodResult(baseline.flash, baseline.text, "Oz", builds, seconds)
    if not check(binary).same_as(expected):
        return MethodResult(baseline.flash, baseline.text, "Oz", builds, seconds, ["per-unit"])
    return MethodResult(sizes.flash, sizes.text, "per-unit", builds, seconds)


METHODS = ("model", "random", "oracle", "whole-program Oz", "per-unit")


def markdown(target: str, rows: list[ProgramRow], budget: int, meta: dict) -> str:
    """The per-target table (generated; DO NOT EDIT)."""
    lines = [
        "<!-- generated by bench/ml_tuner_eval.py; DO NOT EDIT -->",
        f"# ml_tuner on held-out linked programs: {target}",
        "",
        "Baseline: each program built as `clang -Oz -flto -ffunction-sections -fdata-sections "
        "-Wl,--gc-sections` (lld; the target's C library). Flash = every allocated byte the ELF "
        "stores (code, constants, initialized data, unwind and dynamic-linking tables; not .bss)."
        f" Gain = 1 - tuned/baseline. Budget {budget} builds (the baseline's included). "
        "model: the shipped model's ranking of its coreset on the merged whole program; random: "
        f"best of {budget - 1} random candidates of the same knob space; oracle: best of the "
        "whole coreset (the ceiling of what the model can pick); whole-program Oz: the merged "
        "program under plain clang -Oz; per-unit: every unit tuned on its own, linked. Every "
        "kept binary ran the program's checks with the baseline's output and exit status; a "
        "smaller binary that did not is a miscompile: rejected, counted, never kept.",
        "",
        f"Machine: {meta['machine']}. Held-out projects (no unit of theirs in training): "
        f"{', '.join(meta['held_out'])}.",
        "",
        "| program | units | IR instr. | -Oz -flto flash | no-LTO flash | " +
        " | ".join(METHODS) + " | miscompiles found | model s |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(METHODS) + "---:|---:|",
    ]
    for row in rows:
        cells = [f"{row.methods[m].flash} ({100 * row.gain(m):+.2f}%)" for m in METHODS]
        found = sorted({c for m in METHODS for c in row.methods[m].rejected})
        lines.append(f"| {row.program} | {row.units} | {row.ir_instructions} | "
                     f"{row.baseline_flash} | {row.nolto_flash} | " + " | ".join(cells) +
                     f" | {len(found)} | {row.methods['model'].seconds:.0f} |")
    geo = {m: geomean_reduction([(r.baseline_flash, r.methods[m].flash) for r in rows])
           for m in METHODS}
    lines.append("| **geomean gain** | | | | | " +
                 " | ".join(f"**{100 * geo[m]:+.2f}%**" for m in METHODS) + " | | |")
    lines += ["", "Kept candidates (model): " + "; ".join(
        f"{r.program}: `{r.methods['model'].candidate}`" for r in rows), "",
        "Miscompiles shipped: 0 (every kept binary passed its checks; rejected candidates: " +
        (", ".join(f"{r.program}: {sorted({c for m in METHODS for c in r.methods[m].rejected})}"
                   for r in rows if any(r.methods[m].rejected for m in METHODS)) or "none") +
        ").", "", "```", json.dumps(meta, indent=1), "```", ""]
    return "\n".join(lines)


def run_evaluation(target: str, budget: int = 45, workers: int = 2, out_dir: Path | None = None,
                   only: list[str] | None = None) -> Path:
    """Every held-out program of `target`; writes ml_tuner_<target>.md and .json."""
    import tempfile

    out_dir = out_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    chosen = [p for p in programs_for(target) if not only or p.name in only]
    rows = []
    with MeasureCache() as cache, tempfile.TemporaryDirectory(prefix="ml_tuner-eval-") as tmp, \
            step_progress() as progress:
        task = progress.add_task(f"programs {target}", total=len(chosen))
        for program in chosen:
            progress.update(task, description=f"{target}: {program.name}")
            rows.append(evaluate_program(program, target, budget, workers, cache,
                                         Path(tmp) / program.name))
            progress.advance(task)
    model = shipped_model(target)
    meta = {"target": target, "budget": budget, "workers": workers,
            "machine": machine_line(), "held_out": sorted({p.project for p in chosen}),
            "eval_seconds": round(time.time() - start, 1),
            "model": model.meta if model else None}
    (out_dir / f"ml_tuner_{target}.json").write_text(json.dumps(
        {"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1))
    report = out_dir / f"ml_tuner_{target}.md"
    report.write_text(markdown(target, rows, budget, meta))
    return report
