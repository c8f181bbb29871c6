"""Training, per target: measure a candidate pool on the training units, pick the coreset, fit the GNN.

Writes data/models/<target>.npz (numpy weights + coreset + summary) and
data/models/<target>.coreset.json (the coreset, readable). Needs torch (requirements/ml_tuner.txt).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fleetforge.progress import step_progress
from ml_tuner.cache import MeasureCache
from ml_tuner.corpus import CorpusEntry, load_corpus
from ml_tuner.coreset import coverage, greedy_coreset
from ml_tuner.graph import build_graph
from ml_tuner.knobs import OZ, Candidate, load_knobs
from ml_tuner.measure import Job, measure_many
from ml_tuner.model import GRAPH_MAX_NODES, model_path, save_model
from ml_tuner.values import score_matrix

RETRAIN_COMMAND = "fleetforge tune.corpus --target {t} && fleetforge tune.train --target {t}"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a shipped model (the retrain command uses the defaults)."""

    target: str = "aarch64-linux-gnu"
    # Combinations of the single settings that won, measured after the singles (see train()).
    combinations: int = 16
    # Units per training project (spread over it), csmith programs, and their largest size:
    # bounds the measuring time on a shared 2-core machine (units x pool builds).
    per_project: int = 5
    csmith: int = 5
    max_instructions: int = 4000
    coreset_size: int = 24
    epochs: int = 60
    batch: int = 8
    learning_rate: float = 3e-3
    hidden: int = 32
    rounds: int = 3
    seed: int = 0
    workers: int = 2


def training_units(config: TrainConfig) -> list[CorpusEntry]:
    """The training split: `per_project` units of each Debian project, `csmith` programs."""
    from ml_tuner.corpus import spread

    groups: dict[str, list[CorpusEntry]] = {}
    for entry in load_corpus(config.target):
        if entry.split == "train" and entry.instructions <= config.max_instructions:
            groups.setdefault(entry.project, []).append(entry)
    out: list[CorpusEntry] = []
    for name, members in sorted(groups.items()):
        out += spread(members, config.csmith if name == "csmith" else config.per_project)
    return out


def measure_pool(entries: list[CorpusEntry], candidates: list[Candidate], config: TrainConfig,
                 cache: MeasureCache) -> tuple[list[CorpusEntry], np.ndarray]:
    """Gain of every candidate on every unit that builds at -Oz (units x candidates)."""
    space = load_knobs().for_target(config.target)
    jobs = [Job(e.subject(), c, space) for e in entries for c in [OZ, *candidates]]
    with step_progress() as progress:
        task = progress.add_task(f"measure pool ({config.target})", total=len(jobs))
        results = measure_many(jobs, cache=cache, workers=config.workers,
                               on_done=lambda _: progress.advance(task))
    cache.flush()
    width = len(candidates) + 1
    kept, baselines, rows = [], [], []
    for i, entry in enumerate(entries):
        row = results[i * width:(i + 1) * width]
        if row[0].sizes is None:
            continue
        kept.append(entry)
        baselines.append(row[0].sizes)
        rows.append([r.sizes for r in row[1:]])
    return kept, score_matrix(baselines, rows)


@dataclass(frozen=True)
class Row:
    """One training sample: a unit or a whole training program, its IR and its gains."""

    name: str
    ir: Path
    program: bool


def measure_programs(candidates: list[Candidate], config: TrainConfig, cache: MeasureCache,
                     scratch: Path) -> tuple[list[Row], np.ndarray]:
    """Gain of every candidate on every training program, built as the bench builds held-out
    ones: clang -Oz -flto ... --gc-sections as the baseline, tuned as the merged whole program."""
    from ml_tuner.build import elf_sizes
    from ml_tuner.measure import Subject
    from ml_tuner.program import Build
    from ml_tuner.programs import programs_for

    space = load_knobs().for_target(config.target)
    rows, baselines, sizes = [], [], []
    chosen = programs_for(config.target, "train")
    with step_progress() as progress:
        task = progress.add_task(f"training programs ({config.target})",
                                 total=len(chosen) * len(candidates))
        for program in chosen:
            folder = scratch / program.name
            build = Build(config.target, tuple(program.unit_files()), program.cflags(config.target),
                          program.ldflags(config.target), lto=True)
            baseline = elf_sizes(build.baseline(folder, config.workers))
            merged = build.merged_module(folder, config.workers)
            subject = Subject.program(program.name, merged, config.target, build.cflags,
                                      build.link_flags)
            results = measure_many([Job(subject, c, space) for c in candidates], cache=cache,
                                   workers=config.workers, on_done=lambda _: progress.advance(task))
            rows.append(Row(program.name, merged, True))
            baselines.append(baseline)
            sizes.append([r.sizes for r in results])
    cache.flush()
    return rows, score_matrix(baselines, sizes)


def measure_rows(entries: list[CorpusEntry], candidates: list[Candidate], config: TrainConfig,
                 cache: MeasureCache, scratch: Path) -> tuple[list[Row], np.ndarray]:
    """Gains of `candidates` on the training units (those that build at -Oz) and programs."""
    kept, unit_scores = measure_pool(entries, [c for c in candidates if c != OZ], config, cache)
    if OZ in candidates:  # clang -Oz on a unit is the baseline itself
        at = candidates.index(OZ)
        unit_scores = np.insert(unit_scores, at, 0.0, axis=1)
    programs, program_scores = measure_programs(candidates, config, cache, scratch)
    rows = [Row(e.name, e.ir, False) for e in kept] + programs
    return rows, np.vstack([unit_scores, program_scores])


def winning_combinations(scores: np.ndarray, singles: list[Candidate], count: int,
                         is_program: list[bool]) -> list[Candidate]:
    """Candidates made of the settings that won alone: for each sample its best 2, 3 and 4
    winning settings of different knobs; programs' first, then the most frequent."""
    from collections import Counter

    found: Counter[Candidate] = Counter()
    for row, program in sorted(zip(scores, is_program), key=lambda pair: not pair[1]):
        winners: dict[str, str] = {}
        for i in np.argsort(-row):
            if row[i] <= 0:
                break
            for knob, setting in singles[i].settings:
                winners.setdefault(knob, setting)
        items = list(winners.items())
        for size in (2, 3, 4):
            if len(items) >= size:
                found[Candidate.of(items[:size])] += 1000 if program else 1
    return [c for c, _ in found.most_common(count)]


def normalized_values(scores: np.ndarray) -> np.ndarray:
    """Per-unit value of each candidate scaled by that unit's best (so sizes weigh alike).

    1 is the unit's best coreset candidate, 0 is clang -Oz, negative is worse (clipped at -1);
    units where nothing beats -Oz are scaled by a small floor instead of their best.
    """
    best = np.maximum(scores.max(axis=1, keepdims=True), 0.005)
    return np.clip(scores / best, -1.0, 1.0)


def fit(graphs: list, targets: np.ndarray, config: TrainConfig):
    """Train the GNN on (graph, value vector) pairs with MSE; returns the model and epoch losses."""
    import torch

    from ml_tuner.gnn import GraphBatch, ModelConfig, ValueGNN

    torch.manual_seed(config.seed)
    # One thread: the machine is shared, and more threads were slower here, not faster.
    torch.set_num_threads(1)
    rng = random.Random(config.seed)
    model = ValueGNN(ModelConfig(targets.shape[1], hidden=config.hidden, rounds=config.rounds))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs)
    target = torch.tensor(targets, dtype=torch.float32)
    losses = []
    order = list(range(len(graphs)))
    with step_progress() as progress:
        task = progress.add_task("train", total=config.epochs)
        for _ in range(config.epochs):
            rng.shuffle(order)
            total = 0.0
            for start in range(0, len(order), config.batch):
                index = order[start:start + config.batch]
                prediction = model(GraphBatch([graphs[i] for i in index]))
                loss = torch.nn.functional.mse_loss(prediction, target[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(index)
            scheduler.step()
            losses.append(total / len(order))
            progress.update(task, advance=1, description=f"train loss {losses[-1]:.4f}")
    model.eval()
    return model, losses


def train(config: TrainConfig = TrainConfig(), out: Path | None = None) -> dict:
    """The whole training step for one target; writes the model file, returns a summary."""
    import tempfile

    from ml_tuner.gnn import export_weights

    start = time.time()
    out = out or model_path(config.target)
    space = load_knobs().for_target(config.target)
    # clang -Oz itself is a candidate too: for a whole program it is a second, whole-program -Oz.
    singles = [OZ, *space.singles()]
    entries = training_units(config)
    with MeasureCache() as cache, tempfile.TemporaryDirectory(prefix="ml_tuner-train-") as tmp:
        rows, scores = measure_rows(entries, singles, config, cache, Path(tmp))
        combos = winning_combinations(scores, singles, config.combinations,
                                      [r.program for r in rows])
        rows, more = measure_rows(entries, combos, config, cache, Path(tmp))
        candidates, scores = singles + combos, np.hstack([scores, more])
        graphs = [build_graph(r.ir.read_text(encoding="utf-8", errors="replace"),
                              GRAPH_MAX_NODES) for r in rows]
    kept = [r for r in rows if not r.program]
    programs = [r for r in rows if r.program]
    # Units and programs count alike in the coreset: what each gets of its own best, clipped at
    # -Oz; the few programs weigh as much as the many units together.
    weights = np.array([1.0] * len(kept) + [len(kept) / max(len(programs), 1)] * len(programs))
    values = normalized_values(scores)
    chosen = greedy_coreset(values, config.coreset_size, weights)
    model, losses = fit(graphs, normalized_values(scores[:, chosen]), config)
    coreset = [candidates[i] for i in chosen]
    n_units = len(kept)
    summary = {
        "target": config.target,
        "train_units": n_units,
        "train_programs": [r.name for r in programs],
        "projects": sorted({e.project for e in entries}),
        "pool": len(candidates),
        "coreset": len(chosen),
        "units_coreset_mean_gain": coverage(scores[:n_units], chosen) / max(n_units, 1),
        "units_pool_oracle_mean_gain": float(np.maximum(scores[:n_units], 0).max(axis=1).mean()),
        "programs_coreset_gain": {r.name: float(max(scores[n_units + i, chosen].max(), 0))
                                  for i, r in enumerate(programs)},
        "programs_pool_oracle_gain": {r.name: float(max(scores[n_units + i].max(), 0))
                                      for i, r in enumerate(programs)},
        "final_loss": losses[-1],
        "seconds": round(time.time() - start, 1),
        "config": asdict(config),
        "retrain": RETRAIN_COMMAND.format(t=config.target),
    }
    save_model(out, export_weights(model), config.rounds, coreset, summary)
    out.with_suffix(".coreset.json").write_text(json.dumps({
        "generated_by": f"ml_tuner.train ({summary['retrain']}); DO NOT EDIT",
        "summary": summary,
        "coreset": [{"label": c.label, "flags": list(space.flags(c)),
                     "mean_gain_units": float(scores[:n_units, i].mean()),
                     "units_won": int((scores[:n_units, i] > 0).sum()),
                     "mean_gain_programs": float(scores[n_units:, i].mean()),
                     "programs_won": int((scores[n_units:, i] > 0).sum())}
                    for c, i in zip(coreset, chosen)],
    }, indent=1) + "\n")
    return summary
