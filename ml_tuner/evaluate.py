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
from ml_tuner.program import Build, whole_program_search
from ml_tuner.programs import Program, programs_for
from ml_tuner.run import Check, Run
from ml_tuner.search import Ranked, SearchOutcome, random_ranking, search, with_link_options
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
                     cache: MeasureCache, scratch: Path, per_unit: bool = True) -> ProgramRow:
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
    outcome = whole_program_search(subject, space, ranked, baseline, budget=budget,
                                   baseline_seconds=base_seconds, cache=cache, workers=workers,
                                   keep_dir=keep)
    methods["model"] = _method(outcome.tried, baseline, check, expected, keep,
                               time.monotonic() - tick)
    # The first ten builds of the same ranked search (link options on the best of them).
    first = SearchOutcome(baseline, tried=[])
    for result in outcome.tried[:8]:
        first.tried.append(result)
        if result.sizes is not None and result.sizes.flash < first.sizes.flash:
            first.best, first.best_sizes = result.job.candidate, result.sizes
    first = with_link_options(subject, space, first, builds=2, baseline_seconds=base_seconds,
                              cache=cache, workers=workers, keep_dir=keep)
    methods["model@10"] = _method(first.tried, baseline, check, expected, keep, 0.0)
    oracle = search(subject, space, [Ranked(c) for c in (OZ, *model.coreset)], baseline,
                    budget=len(model.coreset) + 2, baseline_seconds=base_seconds, cache=cache,
                    workers=workers, keep_dir=keep)
    methods["whole-program Oz"] = _method(oracle.tried[:1], baseline, check, expected, keep, 0.0)
    oracle = with_link_options(subject, space, oracle, builds=2, baseline_seconds=base_seconds,
                               cache=cache, workers=workers, keep_dir=keep)
    methods["oracle"] = _method(oracle.tried, baseline, check, expected, keep, 0.0)
    random = random_ranking(space, budget - 1, f"{program.name}:{target}")
    tick = time.monotonic()
    outcome = whole_program_search(subject, space, random, baseline, budget=budget,
                                   baseline_seconds=base_seconds, cache=cache, workers=workers,
                                   keep_dir=keep)
    methods["random"] = _method(outcome.tried, baseline, check, expected, keep,
                                time.monotonic() - tick)
    if per_unit:
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


METHODS = ("model", "model@10", "random", "oracle", "whole-program Oz", "per-unit")


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
        "model: `ml-tuner tune-program` (the merged whole program, whole-program clang -Oz "
        "first, then the shipped model's ranking of its coreset); model@10: its first 10 builds; "
        f"random: best of {budget - 1} random candidates of the same knob space; oracle: best of "
        "the whole coreset (the ceiling of what the model can pick); whole-program Oz: the "
        "merged program under plain clang -Oz; per-unit: every unit tuned on its own "
        "(`ml-tuner tune`), the objects linked. Every "
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
        cells = [f"{row.methods[m].flash} ({100 * row.gain(m):+.2f}%)" if m in row.methods
                 else "-" for m in METHODS]
        found = sorted({c for m in row.methods for c in row.methods[m].rejected})
        lines.append(f"| {row.program} | {row.units} | {row.ir_instructions} | "
                     f"{row.baseline_flash} | {row.nolto_flash} | " + " | ".join(cells) +
                     f" | {len(found)} | {row.methods['model'].seconds:.0f} |")
    geo = {m: geomean_reduction([(r.baseline_flash, r.methods[m].flash) for r in rows
                                 if m in r.methods]) for m in METHODS}
    lines.append("| **geomean gain** | | | | | " +
                 " | ".join(f"**{100 * geo[m]:+.2f}%**" for m in METHODS) + " | | |")
    lines += ["", "Kept candidates (model): " + "; ".join(
        f"{r.program}: `{r.methods['model'].candidate}`" for r in rows), "",
        "Miscompiles shipped: 0 (every kept binary passed its checks; rejected candidates: " +
        (", ".join(f"{r.program}: {sorted({c for m in r.methods for c in r.methods[m].rejected})}"
                   for r in rows if any(r.methods[m].rejected for m in r.methods)) or "none") +
        ").", "", "```", json.dumps(meta, indent=1), "```", ""]
    return "\n".join(lines)


def run_evaluation(target: str, budget: int = 45, workers: int = 2, out_dir: Path | None = None,
                   only: list[str] | None = None, per_unit: list[str] | None = None) -> Path:
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
                                         Path(tmp) / program.name,
                                         per_unit=per_unit is None or program.name in per_unit))
            progress.advance(task)
    model = shipped_model(target)
    meta = {"target": target, "budget": budget, "workers": workers,
            "machine": machine_line(), "held_out": sorted({p.project for p in chosen}),
            "eval_seconds": round(time.time() - start, 1),
            "model": model.meta if model else None}
    return write_results(out_dir / f"ml_tuner_{target}", meta, rows,
                         markdown(target, rows, budget, meta))



def write_results(stem: Path, meta: dict, rows: list, report: str) -> Path:
    """A bench's rows as STEM.json (with their meta) and its report as STEM.md; returns the .md."""
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]},
                                                    indent=1))
    stem.with_suffix(".md").write_text(report)
    return stem.with_suffix(".md")

# --- Units: speed (uncached, start-up included), the unit-level ceiling, the paper's setting ---

PAPER_IR_FLAGS = ("-O0", "-Xclang", "-disable-O0-optnone", "-emit-llvm", "-S")


@dataclass
class UnitRow:
    target: str
    project: str
    unit: str
    ir_instructions: int
    oz_flash: int  # clang -Oz
    tuned_flash: int  # `ml-tuner tune`, uncached
    oracle_flash: int  # best of the coreset
    random_flash: int  # best of budget-1 random candidates
    builds: int
    wall_seconds: float  # the whole command, interpreter start-up included
    timings: dict[str, float]
    optimizer_share: float  # of one clang -Oz build: optimizer seconds / (optimizer + codegen)
    paper_oz_ir: int  # opt -passes='default<Oz>' on -O0 IR: the paper's baseline
    paper_oz_flash: int
    tuned_ir: int  # IR instructions of the tuned unit
    load: float


def _paper_setting(source: Path, target: str, cflags: tuple[str, ...],
                   scratch: Path) -> tuple[int, int]:
    """IR instructions and flash of `opt -passes=default<Oz>` on -O0 IR, code generated by llc
    (CompilerGym's and the paper's baseline)."""
    import toolchains
    from fleetforge.tools import run_tool
    from ml_tuner import llvm

    t = toolchains.target(target)
    o0, optimized, obj = scratch / "o0.ll", scratch / "o0-oz.ll", scratch / "o0-oz.o"
    run_tool([*t.clang_args(), *cflags, *PAPER_IR_FLAGS, "-c", source, "-o", o0],
             debian_package=llvm.CLANG_PACKAGE)
    run_tool([llvm.OPT, "-passes=default<Oz>", "-S", o0, "-o", optimized],
             debian_package=llvm.LLVM_PACKAGE)
    run_tool([toolchains.llvm().llc, f"-mtriple={t.clang_target}", *t.llc_flags,
              "-filetype=obj", "-function-sections", "-data-sections", optimized, "-o", obj],
             debian_package=llvm.LLVM_PACKAGE)
    return count_ir_instructions(optimized.read_text(errors="replace")), elf_sizes(obj).flash


def evaluate_unit(entry, budget: int, workers: int, cache: MeasureCache,
                  scratch: Path) -> UnitRow:
    import subprocess
    import sys

    from ml_tuner.build import compile_ir
    from ml_tuner.knobs import Candidate

    scratch.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ML_TUNER_WORKERS": str(workers)}
    load = os.getloadavg()[0]
    tick = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "ml_tuner", "tune", str(entry.source),
                           "--target", entry.target, "--budget", str(budget), "--no-cache",
                           "--json", "--", *entry.cflags], capture_output=True, text=True,
                          env=env, check=True)
    wall = time.monotonic() - tick
    report = json.loads(done.stdout)
    space = load_knobs().for_target(entry.target)
    subject = entry.subject()
    model = shipped_model(entry.target)
    assert model is not None
    oracle = measure_many([Job(subject, c, space) for c in (OZ, *model.coreset)], cache=cache,
                          workers=workers)
    random = measure_many([Job(subject, r.candidate, space) for r in
                           random_ranking(space, budget - 1, entry.name)], cache=cache,
                          workers=workers)
    oz = oracle[0].sizes
    assert oz is not None

    def best(results: list[Result]) -> int:
        return min([oz.flash] + [r.sizes.flash for r in results if r.sizes is not None])

    # One -Oz build split into optimizer and code generation (the share the breakdown uses).
    tick = time.monotonic()
    compile_ir(entry.ir, entry.target, entry.cflags, space, OZ, scratch / "opt.bc",
               emit_llvm=True)
    optimizer = time.monotonic() - tick
    tick = time.monotonic()
    compile_ir(entry.ir, entry.target, entry.cflags, space, OZ, scratch / "full.o")
    full = time.monotonic() - tick
    kept = Candidate.parse(report["candidate"])
    compile_ir(entry.ir, entry.target, entry.cflags, space, kept, scratch / "tuned.ll",
               emit_llvm=True, text=True)
    paper_ir, paper_flash = _paper_setting(entry.source, entry.target, entry.cflags, scratch)
    return UnitRow(entry.target, entry.project, entry.name, entry.instructions, oz.flash,
                   report["tuned"]["flash"], best(oracle), best(random), report["compilations"],
                   wall, report["timings"], min(optimizer / max(full, 1e-6), 1.0), paper_ir,
                   paper_flash, count_ir_instructions((scratch / "tuned.ll").read_text()), load)


def units_markdown(target: str, rows: list[UnitRow], budget: int, meta: dict) -> str:
    def geo(pairs):
        return f"{100 * geomean_reduction(pairs):+.2f}%"

    walls = sorted(r.wall_seconds for r in rows)
    mean = lambda key: sum(r.timings.get(key, 0.0) for r in rows) / len(rows)  # noqa: E731
    builds = mean("builds")
    share = sum(r.optimizer_share for r in rows) / len(rows)
    lines = [
        "<!-- generated by bench/ml_tuner_units.py; DO NOT EDIT -->",
        f"# ml_tuner on held-out units: {target}",
        "",
        f"`ml-tuner tune UNIT.c --target {target} --budget {budget} --no-cache --json` on "
        f"{len(rows)} units of held-out projects ({', '.join(meta['projects'])}) up to 20k IR "
        f"instructions, {meta['workers']} parallel builds, uncached; seconds are the whole "
        "command's wall time, Python start-up included. Flash gain = 1 - tuned/baseline "
        "(geomean). Machine: " + meta["machine"] + ".",
        "",
        "| against | tuned | random (best of 44) | coreset oracle |",
        "|---|---:|---:|---:|",
        f"| clang -Oz (flash) | {geo([(r.oz_flash, r.tuned_flash) for r in rows])} | "
        f"{geo([(r.oz_flash, r.random_flash) for r in rows])} | "
        f"{geo([(r.oz_flash, r.oracle_flash) for r in rows])} |",
        f"| the paper's setting: opt default<Oz> on -O0 IR (flash) | "
        f"{geo([(r.paper_oz_flash, r.tuned_flash) for r in rows])} | | |",
        f"| the paper's setting (IR instructions, the paper's metric) | "
        f"{geo([(r.paper_oz_ir, r.tuned_ir) for r in rows])} | | |",
        "",
        f"clang -Oz is {geo([(r.paper_oz_flash, r.oz_flash) for r in rows])} smaller in flash "
        "than the paper's baseline on the same units.",
        "",
        f"Seconds per unit: median {walls[len(walls) // 2]:.1f}, max {walls[-1]:.1f}, "
        f"{sum(w < 10 for w in walls)}/{len(walls)} under 10 s; load average during the runs "
        f"{min(r.load for r in rows):.1f}-{max(r.load for r in rows):.1f}. Mean breakdown: "
        f"front end + clang -Oz baseline {mean('frontend+baseline'):.2f} s, graph "
        f"{mean('graph'):.3f} s, model {mean('model'):.3f} s, search {mean('search'):.2f} s "
        f"wall for {builds:.1f} build-seconds (optimizer {100 * share:.0f}% / code generation "
        f"{100 - 100 * share:.0f}% of a build), output {mean('write'):.2f} s; builds per unit "
        f"{sum(r.builds for r in rows) / len(rows):.1f}.",
        "",
        "| project | unit | IR instr. | clang -Oz | tuned | oracle | random | paper -Oz | "
        "builds | s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.project} | {r.unit} | {r.ir_instructions} | {r.oz_flash} | "
                     f"{r.tuned_flash} | {r.oracle_flash} | {r.random_flash} | "
                     f"{r.paper_oz_flash} | {r.builds} | {r.wall_seconds:.1f} |")
    lines += ["", "```", json.dumps(meta, indent=1), "```", ""]
    return "\n".join(lines)


def run_unit_evaluation(target: str, per_project: int = 5, budget: int = 45, workers: int = 2,
                        out_dir: Path | None = None) -> Path:
    import tempfile

    from ml_tuner.corpus import load_corpus, spread

    out_dir = out_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list] = {}
    for entry in load_corpus(target):
        if entry.split == "test":
            groups.setdefault(entry.project, []).append(entry)
    chosen = [e for members in groups.values() for e in spread(members, per_project)]
    rows = []
    start = time.time()
    with MeasureCache() as cache, tempfile.TemporaryDirectory(prefix="ml_tuner-units-") as tmp, \
            step_progress() as progress:
        task = progress.add_task(f"units {target}", total=len(chosen))
        for i, entry in enumerate(chosen):
            rows.append(evaluate_unit(entry, budget, workers, cache, Path(tmp) / str(i)))
            progress.advance(task)
    meta = {"target": target, "budget": budget, "workers": workers, "machine": machine_line(),
            "projects": sorted(groups), "eval_seconds": round(time.time() - start, 1)}
    return write_results(out_dir / f"ml_tuner_units_{target}", meta, rows,
                         units_markdown(target, rows, budget, meta))


# --- Where the bytes are -------------------------------------------------------------------------

_UNWIND = (".eh_frame", ".eh_frame_hdr", ".ARM.exidx", ".ARM.extab", ".gcc_except_table")
_DYNAMIC = (".dynsym", ".dynstr", ".dynamic", ".interp", ".hash", ".gnu.hash", ".got", ".plt",
            ".got.plt", ".relr.dyn", ".note")


def flash_breakdown(binary: Path, program_symbols: set[str]) -> dict[str, int]:
    """A binary's flash by kind: the program's code (functions and constants its merged module
    defines, in code sections: the Cortex-M layout keeps constants there), the libraries' (C
    library, runtime), read-only data, writable data, unwind tables, dynamic-linking tables."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    out = {"program code": 0, "library code": 0, "read-only data": 0, "writable data": 0,
           "unwind tables": 0, "dynamic linking": 0}
    with binary.open("rb") as handle:
        elf = ELFFile(handle)
        code = 0
        for section in elf.iter_sections():
            flags = section["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC or section["sh_type"] == "SHT_NOBITS":
                continue
            name, size = section.name, section["sh_size"]
            if name.startswith(_UNWIND):
                out["unwind tables"] += size
            elif name.startswith(_DYNAMIC) or name.startswith((".rela", ".rel.", ".gnu.version")):
                out["dynamic linking"] += size
            elif flags & SH_FLAGS.SHF_EXECINSTR:
                code += size
            elif flags & SH_FLAGS.SHF_WRITE:
                out["writable data"] += size
            else:
                out["read-only data"] += size
        executable = {i for i, s in enumerate(elf.iter_sections())
                      if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR}
        symbols = elf.get_section_by_name(".symtab")
        mine = 0
        for symbol in symbols.iter_symbols() if symbols is not None else ():
            if symbol["st_shndx"] in executable and \
                    symbol["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT") and \
                    symbol.name.split(".")[0] in program_symbols:
                mine += symbol["st_size"]
    out["program code"] = min(mine, code)
    out["library code"] = code - out["program code"]
    return out


def defined_symbols(ll_text: str) -> set[str]:
    """Functions and globals a module defines."""
    import re

    found = re.findall(r'^define [^@]*@("[^"]+"|[\w.$-]+)\(', ll_text, re.M)
    found += re.findall(r'^@("[^"]+"|[\w.$-]+) = (?!external)', ll_text, re.M)
    return {m.strip('"') for m in found}
