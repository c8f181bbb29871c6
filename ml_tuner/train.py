"""Training: measure the candidate pool on training programs, pick the coreset, fit the GNN."""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fleetforge.progress import step_progress
from ml_tuner.actions import Edit, candidate_pool, load_actions, sequence
from ml_tuner.cache import MeasureCache
from ml_tuner.corpus import CorpusEntry, load_corpus
from ml_tuner.coreset import coverage, greedy_coreset
from ml_tuner.graph import build_graph
from ml_tuner.measure import Module
from ml_tuner.model import GraphBatch, ModelConfig, ValueGNN, save_model
from ml_tuner.values import measure_table

DATA_DIR = Path(__file__).parent / "data"
CORESET_FILE = DATA_DIR / "coreset.json"
RETRAIN_COMMAND = "fleetforge tune.corpus && fleetforge tune.train"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the shipped model (the retrain command uses the defaults)."""

    triple: str = "aarch64-linux-gnu"
    pool_size: int = 64
    # Modules per training project (spread over the project); bounds the measuring time on a
    # shared 2-core machine: modules x (pool + 1) compilations.
    per_project: int = 12
    coreset_size: int = 50
    epochs: int = 40
    batch: int = 8
    learning_rate: float = 3e-3
    hidden: int = 32
    max_nodes: int = 12000
    seed: int = 0
    workers: int = 2
    # Which IR of each training program: "o0" (-O0 -disable-O0-optnone, the paper's setting)
    # or "clang-oz" (what clang -Oz optimizes; only modules with C source have it).
    ir: str = "o0"


def spread_per_project(entries: list[CorpusEntry], limit: int) -> list[CorpusEntry]:
    """At most `limit` entries of each project, evenly spread (deterministic)."""
    groups: dict[str, list[CorpusEntry]] = {}
    for entry in entries:
        groups.setdefault(f"{entry.dataset}/{entry.project}", []).append(entry)
    out = []
    for members in groups.values():
        step = max(len(members) / limit, 1.0)
        out += [members[int(i * step)] for i in range(min(limit, len(members)))]
    return out


def normalized_values(scores: np.ndarray) -> np.ndarray:
    """Per-program value of each sequence, scaled by that program's best (so sizes weigh alike).

    1 is the program's best coreset sequence, 0 is -Oz, negative is worse than -Oz (clipped at
    -1); programs where nothing beats -Oz are scaled by a small floor instead of their best.
    """
    best = np.maximum(scores.max(axis=1, keepdims=True), 0.005)
    return np.clip(scores / best, -1.0, 1.0)


def fit(graphs: list, targets: np.ndarray, config: TrainConfig) -> tuple[ValueGNN, list[float]]:
    """Train the GNN on (graph, value vector) pairs with MSE; returns the model and epoch losses."""
    torch.manual_seed(config.seed)
    # One thread: the machine is shared, and more threads were slower here, not faster.
    torch.set_num_threads(1)
    rng = random.Random(config.seed)
    model = ValueGNN(ModelConfig(targets.shape[1], hidden=config.hidden))
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


def train(config: TrainConfig = TrainConfig(), model_path: Path = DATA_DIR / "model.pt",
          coreset_file: Path = CORESET_FILE) -> dict:
    """The whole training step; writes the model and coreset.json, returns a summary."""
    start = time.time()
    space = load_actions()
    entries = spread_per_project([e for e in load_corpus() if e.split == "train"],
                                 config.per_project)
    pool: list[Edit] = candidate_pool(space, config.pool_size, config.seed)
    sequences = [sequence(e, space) for e in pool]
    if config.ir == "clang-oz":
        modules = [Module.from_file(e.clang_oz_path, e.module().name) for e in entries
                   if e.clang_oz_path is not None]
    else:
        modules = [e.module() for e in entries]
    with MeasureCache() as cache:
        table = measure_table(modules, sequences, config.triple, cache, config.workers,
                              "measure candidate pool")
    scores = table.scores()
    chosen = greedy_coreset(scores, config.coreset_size)
    targets = normalized_values(scores[:, chosen])
    graphs = [build_graph(m.path.read_text(errors="replace"), config.max_nodes)
              for m in table.modules]
    model, losses = fit(graphs, targets, config)
    labels = [pool[i].label for i in chosen]
    summary = {
        "train_modules": len(table.modules),
        "pool": len(pool),
        "coreset": len(chosen),
        "coverage_mean_score": coverage(scores, chosen) / len(table.modules),
        "best_single_mean_score": float(np.maximum(scores, 0).mean(axis=0).max()),
        "final_loss": losses[-1],
        "seconds": round(time.time() - start, 1),
        "config": config.__dict__,
        "retrain": RETRAIN_COMMAND + (" --ir clang-oz" if config.ir == "clang-oz" else ""),
    }
    save_model(model, [sequences[i] for i in chosen], labels, model_path, summary)
    coreset_file.write_text(json.dumps({
        "generated_by": f"ml_tuner.train ({summary['retrain']}); DO NOT EDIT",
        "summary": summary,
        "coreset": [{"label": pool[i].label, "dropped": sorted(pool[i].dropped),
                     "suffix": pool[i].suffix,
                     "mean_score_on_train": float(scores[:, i].mean())} for i in chosen],
    }, indent=1) + "\n")
    return summary
