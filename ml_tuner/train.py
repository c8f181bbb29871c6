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
from ml_tuner.knobs import OZ, Candidate, load_knobs, pool
from ml_tuner.measure import Job, measure_many
from ml_tuner.model import GRAPH_MAX_NODES, model_path, save_model
from ml_tuner.values import score_matrix

RETRAIN_COMMAND = "fleetforge tune.corpus --target {t} && fleetforge tune.train --target {t}"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a shipped model (the retrain command uses the defaults)."""

    target: str = "aarch64-linux-gnu"
    pool_size: int = 72
    # Units per training project (spread over it) and csmith programs: bounds the measuring time
    # on a shared 2-core machine (units x pool builds).
    per_project: int = 10
    csmith: int = 16
    coreset_size: int = 40
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
        if entry.split == "train":
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
    from ml_tuner.gnn import export_weights

    start = time.time()
    out = out or model_path(config.target)
    space = load_knobs().for_target(config.target)
    candidates = [c for c in pool(space, config.pool_size, config.seed) if c != OZ]
    entries = training_units(config)
    with MeasureCache() as cache:
        kept, scores = measure_pool(entries, candidates, config, cache)
    chosen = greedy_coreset(scores, config.coreset_size)
    targets = normalized_values(scores[:, chosen])
    graphs = [build_graph(e.ir.read_text(encoding="utf-8", errors="replace"), GRAPH_MAX_NODES)
              for e in kept]
    model, losses = fit(graphs, targets, config)
    coreset = [candidates[i] for i in chosen]
    summary = {
        "target": config.target,
        "train_units": len(kept),
        "projects": sorted({e.project for e in kept}),
        "pool": len(candidates),
        "coreset": len(chosen),
        "coverage_mean_gain": coverage(scores, chosen) / len(kept),
        "oracle_pool_mean_gain": float(np.maximum(scores, 0).max(axis=1).mean()),
        "best_single_mean_gain": float(np.maximum(scores, 0).mean(axis=0).max()),
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
                     "mean_gain_on_train": float(scores[:, i].mean()),
                     "wins_on_train": int((scores[:, i] > 0).sum())}
                    for c, i in zip(coreset, chosen)],
    }, indent=1) + "\n")
    return summary
