"""Evaluation on held-out programs: the model against -Oz, random, greedy and the coreset oracle."""
from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from fleetforge.progress import step_progress
from ml_tuner.actions import load_actions
from ml_tuner.cache import MeasureCache
from ml_tuner.corpus import CorpusEntry, load_corpus
from ml_tuner.measure import Job, Module, measure_many
from ml_tuner.model import load_model
from ml_tuner.search import Choice, greedy_search, random_search, try_ranked
from ml_tuner.tune import SHIPPED_CLANG_OZ_MODEL, SHIPPED_MODEL, rank, tune_file
from ml_tuner.values import geomean_reduction

METHODS = ("model", "model@10", "random", "greedy", "oracle", "model/attr", "oracle/attr")
# "/attr" methods tune the IR `clang -Oz` itself optimizes (functions carry optsize/minsize)
# instead of -O0 IR; their -Oz floor is then real `clang -Oz`.


@dataclass(frozen=True)
class Row:
    """One module under one method."""

    dataset: str
    project: str
    module: str
    method: str
    oz_ir: int
    oz_text: int
    ir: int
    text: int
    compilations: int
    seconds: float  # compile seconds / workers, plus model inference for model rows
    ref_ir: int = 0  # `clang -Oz` on the same source (0 when there is no C source)
    ref_text: int = 0


@dataclass(frozen=True)
class Summary:
    """Geometric-mean improvement over -Oz of one method on one group of modules."""

    group: str
    method: str
    modules: int
    ir_gain: float
    text_gain: float
    compilations: float
    seconds: float
    wins_text: int
    ir_vs_clang_oz: float | None
    text_vs_clang_oz: float | None


def evaluate(budget: int = 45, workers: int = 2, model_path: Path = SHIPPED_MODEL,
             triple: str = "aarch64-linux-gnu", limit_per_project: int | None = None,
             attr_model_path: Path | None = None) -> list[Row]:
    """Run every method on every held-out module; cached measurements are shared by methods."""
    loaded = load_model(model_path)
    # The "/attr" methods use the model trained on clang -Oz IR when there is one.
    attr_path = attr_model_path or (SHIPPED_CLANG_OZ_MODEL if SHIPPED_CLANG_OZ_MODEL.is_file()
                                    else model_path)
    attr_loaded = load_model(attr_path)
    attr_oracle = list(zip(attr_loaded.sequences, attr_loaded.labels))
    space = load_actions()
    entries = [e for e in load_corpus() if e.split == "test"]
    if limit_per_project:
        from ml_tuner.train import spread_per_project

        entries = spread_per_project(entries, limit_per_project)
    rows: list[Row] = []
    oracle_ranked = list(zip(loaded.sequences, loaded.labels))
    with MeasureCache() as cache:
        # One big batch first so the pool stays busy; the methods below then hit the cache.
        warm = [Job(e.module(), s, triple) for e in entries for s in
                [("default<Oz>",), *loaded.sequences]]
        references = {e.name: Job(Module.from_file(e.clang_oz_path), ("default<Oz>",), triple)
                      for e in entries if e.clang_oz_path is not None}
        warm += list(references.values())
        warm += [Job(ref.module, seq, triple) for ref in references.values()
                 for seq in attr_loaded.sequences]
        with step_progress() as progress:
            task = progress.add_task("measure coreset on held-out", total=len(warm))
            measure_many(warm, cache=cache, workers=workers,
                         on_done=lambda: progress.advance(task))
        cache.flush()
        with step_progress() as progress:
            task = progress.add_task("evaluate", total=len(entries))
            for entry in entries:
                module = entry.module()
                text = entry.path.read_text(errors="replace")
                start = time.perf_counter()
                ranked = rank(loaded, text)
                inference = time.perf_counter() - start
                choices: dict[str, tuple[Choice, float]] = {
                    "model": (try_ranked(module, triple, ranked, budget, cache, workers),
                              inference),
                    "model@10": (try_ranked(module, triple, ranked, 10, cache, workers),
                                 inference),
                    "oracle": (try_ranked(module, triple, oracle_ranked, len(oracle_ranked) + 1,
                                          cache, workers), 0.0),
                    "random": (random_search(module, triple, space, budget, cache, workers), 0.0),
                    "greedy": (greedy_search(module, triple, space, budget, cache, workers), 0.0),
                }
                reference = (measure_many([references[entry.name]], cache=cache)[0].sizes
                             if entry.name in references else None)
                if entry.name in references:
                    attr_module = references[entry.name].module
                    attr_ranked = rank(attr_loaded, attr_module.path.read_text(errors="replace"))
                    choices["model/attr"] = (
                        try_ranked(attr_module, triple, attr_ranked, budget, cache, workers),
                        inference)
                    choices["oracle/attr"] = (
                        try_ranked(attr_module, triple, attr_oracle, len(attr_oracle) + 1,
                                   cache, workers), 0.0)
                for method, (choice, extra) in choices.items():
                    rows.append(Row(entry.dataset, entry.project, entry.name, method,
                                    choice.oz.ir_instructions, choice.oz.text_bytes,
                                    choice.sizes.ir_instructions, choice.sizes.text_bytes,
                                    choice.compilations,
                                    choice.compile_seconds / workers + extra,
                                    reference.ir_instructions if reference else 0,
                                    reference.text_bytes if reference else 0))
                progress.advance(task)
    return rows


def summarize(rows: list[Row]) -> list[Summary]:
    """Per dataset, per Debian project, and overall; geometric means of oz/tuned ratios."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row.dataset, row.method)].append(row)
        if row.dataset == "debian":
            groups[(f"debian/{row.project}", row.method)].append(row)
        groups[("all", row.method)].append(row)
    out = []
    for (group, method), members in groups.items():
        with_ref = [r for r in members if r.ref_text > 0]
        out.append(Summary(
            group, method, len(members),
            geomean_reduction([(r.oz_ir, r.ir) for r in members]),
            geomean_reduction([(r.oz_text, r.text) for r in members]),
            sum(r.compilations for r in members) / len(members),
            sum(r.seconds for r in members) / len(members),
            sum(r.text < r.oz_text for r in members),
            geomean_reduction([(r.ref_ir, r.ir) for r in with_ref]) if with_ref else None,
            geomean_reduction([(r.ref_text, r.text) for r in with_ref])
            if with_ref else None,
        ))
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(out, key=lambda s: (s.group != "all", s.group, order.get(s.method, 99)))


def time_uncached(entries: list[CorpusEntry], budget: int, workers: int, model_path: Path,
                  triple: str) -> list[float]:
    """Real wall seconds of `tune` per module with no cache (what a user waits)."""
    return [tune_file(e.path, triple, budget, model_path, None, workers).seconds for e in entries]


def markdown(summaries: list[Summary], budget: int, wall: list[float], meta: dict) -> str:
    """The results table (generated; DO NOT EDIT)."""
    lines = [
        "<!-- generated by bench/ml_tuner_eval.py; DO NOT EDIT -->",
        "# ml_tuner: held-out evaluation",
        "",
        f"Size reduction versus `opt -passes=default<Oz>` on the same -O0 IR: "
        f"1 - geomean(tuned / -Oz) over modules, positive = smaller. Budget {budget} compilations for model/random/greedy (-Oz included); "
        "model@10 uses 10; the oracle tries all coreset sequences. seconds = compile time per "
        "module (summed job time / workers, from first measurement) + model inference.",
        "",
        "The last two columns compare with `clang -Oz` proper (the same source compiled with "
        "`-Oz -Xclang -disable-llvm-passes`, so functions carry optsize/minsize, then "
        "`default<Oz>`): the baseline a user of clang would actually get.",
        "",
        "`model/attr` and `oracle/attr` tune that `clang -Oz` IR instead of -O0 IR (their "
        "first columns are then relative to real `clang -Oz` too).",
        "",
        "| group | method | modules | IR instr. | .text bytes | .text wins | compilations | "
        "s/module | IR vs clang -Oz | .text vs clang -Oz |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:+.2f}%"

    for s in summaries:
        lines.append(f"| {s.group} | {s.method} | {s.modules} | {pct(s.ir_gain)} | "
                     f"{pct(s.text_gain)} | {s.wins_text} | {s.compilations:.1f} | "
                     f"{s.seconds:.2f} | {pct(s.ir_vs_clang_oz)} | {pct(s.text_vs_clang_oz)} |")
    if wall:
        lines += ["", f"Uncached `tune` wall time (budget {budget}, {len(wall)} modules): mean "
                  f"{sum(wall) / len(wall):.2f} s, max {max(wall):.2f} s."]
    lines += ["", "```", json.dumps(meta, indent=1), "```", ""]
    return "\n".join(lines)


def plots(rows: list[Row], summaries: list[Summary], out_dir: Path) -> list[Path]:
    """Per-dataset bars (IR and .text) and the per-module distribution, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in dict.fromkeys(s.group for s in summaries)
              if not g.startswith("debian/")]
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(METHODS)
    for ax, metric, title in ((axes[0], "ir_gain", "IR instructions"),
                              (axes[1], "text_gain", ".text bytes")):
        for k, method in enumerate(METHODS):
            values = [next((100 * getattr(s, metric) for s in summaries
                            if s.group == g and s.method == method), 0.0) for g in groups]
            ax.bar([i + k * width for i in range(len(groups))], values, width, label=method)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], groups)
        ax.set_ylabel("% smaller than -Oz (1 - geomean tuned/-Oz)")
        ax.set_title(title)
        ax.axhline(0, color="black", linewidth=0.8)
    axes[0].legend()
    fig.tight_layout()
    paths.append(out_dir / "ml_tuner_per_dataset.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (oz_key, key, title) in zip(axes, (("oz_ir", "ir", "IR instructions"),
                                               ("oz_text", "text", ".text bytes"))):
        data = [[100 * (getattr(r, oz_key) - getattr(r, key)) / max(getattr(r, oz_key), 1)
                 for r in rows if r.method == m] for m in METHODS]
        ax.boxplot(data, tick_labels=list(METHODS), showfliers=True)
        ax.set_ylabel("% smaller than -Oz, per module")
        ax.set_title(f"{title}: distribution over held-out modules")
        ax.axhline(0, color="black", linewidth=0.8)
    fig.tight_layout()
    paths.append(out_dir / "ml_tuner_distribution.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def write_report(rows: list[Row], budget: int, wall: list[float], out_dir: Path,
                 meta: dict) -> Path:
    """Write the table (markdown), the raw rows (JSON) and the plots into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ml_tuner_rows.json").write_text(json.dumps([asdict(r) for r in rows]))
    summaries = summarize(rows)
    report = out_dir / "ml_tuner_eval.md"
    report.write_text(markdown(summaries, budget, wall, meta))
    plots(rows, summaries, out_dir)
    return report


def run_evaluation(budget: int = 45, workers: int = 2, out_dir: Path | None = None,
                   limit_per_project: int | None = None, timed_modules: int = 6,
                   model_path: Path = SHIPPED_MODEL) -> Path:
    """Everything `fleetforge tune.eval` and bench/ml_tuner_eval.py do: rows, timing, report, plots."""

    out_dir = out_dir or Path("bench") / "results"
    triple = "aarch64-linux-gnu"
    start = time.time()
    rows = evaluate(budget, workers, model_path, triple, limit_per_project)
    test = [e for e in load_corpus() if e.split == "test"]
    # Uncached wall time on a spread of held-out modules (what a user of `tune` waits).
    step = max(len(test) // max(timed_modules, 1), 1)
    wall = time_uncached(test[::step][:timed_modules], budget, workers, model_path, triple)
    meta = {"budget": budget, "workers": workers, "triple": triple,
            "eval_seconds": round(time.time() - start, 1), "model": load_model(model_path).meta,
            "clang_oz_model": load_model(SHIPPED_CLANG_OZ_MODEL).meta
            if SHIPPED_CLANG_OZ_MODEL.is_file() else None}
    return write_report(rows, budget, wall, out_dir, meta)
