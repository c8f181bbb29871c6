"""The shipped models: per target, a coreset of candidates and a small GNN that ranks them.

Inference is numpy only (the network of ml_tuner/gnn.py, written out), so `tune` starts in a
fraction of a second instead of importing torch. A model file (data/models/<target>.npz) holds
the weights (float16) and, as JSON, the network's sizes, the coreset labels and the training
summary.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleetforge.errors import UserError
from ml_tuner.graph import EDGE_KINDS, ProgramGraph, build_graph
from ml_tuner.knobs import Candidate
from ml_tuner.search import Ranked

MODELS_DIR = Path(__file__).parent / "data" / "models"
GRAPH_MAX_NODES = 40000  # as in training (TrainConfig.max_nodes)


def model_path(target: str) -> Path:
    return MODELS_DIR / f"{target}.npz"


@dataclass(frozen=True)
class Model:
    """Weights, the network's sizes, the coreset it scores (in output order) and its metadata."""

    weights: dict[str, np.ndarray]
    rounds: int
    coreset: tuple[Candidate, ...]
    meta: dict

    def predict(self, graph: ProgramGraph) -> np.ndarray:
        """The predicted normalized value of every coreset candidate for one program graph."""
        w = self.weights
        x = w["embed.weight"][graph.tokens]
        n, h = x.shape
        src, dst, kind = graph.edges[:, 0], graph.edges[:, 1], graph.edges[:, 2]
        degree = (np.bincount(dst, minlength=n) + np.bincount(src, minlength=n)).clip(min=1)
        for r in range(self.rounds):
            transformed = (x @ w[f"messages.{r}.weight"].T).reshape(n, 2 * EDGE_KINDS, h)
            incoming = np.zeros_like(x)
            np.add.at(incoming, dst, transformed[src, 2 * kind])
            np.add.at(incoming, src, transformed[dst, 2 * kind + 1])
            both = np.concatenate([x, incoming / degree[:, None]], axis=1)
            x = x + np.maximum(both @ w[f"updates.{r}.weight"].T + w[f"updates.{r}.bias"], 0.0)
        size = np.log1p(np.array([graph.size], dtype=np.float32)) / 10.0
        pooled = np.concatenate([x.mean(axis=0), x.max(axis=0), size])
        hidden = np.maximum(pooled @ w["head.0.weight"].T + w["head.0.bias"], 0.0)
        return hidden @ w["head.2.weight"].T + w["head.2.bias"]

    def rank(self, ll_text: str) -> list[Ranked]:
        """The coreset ordered by predicted value, best first."""
        values = self.predict(build_graph(ll_text, GRAPH_MAX_NODES))
        order = np.argsort(-values, kind="stable")
        return [Ranked(self.coreset[i], float(values[i])) for i in order]


def save_model(path: Path, weights: dict[str, np.ndarray], rounds: int,
               coreset: list[Candidate], meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"rounds": rounds, "coreset": [c.label for c in coreset], "meta": meta}
    np.savez_compressed(path, __header__=np.array(json.dumps(header)), **weights)


@functools.cache
def load_model(path: Path) -> Model:
    """Read a model file; a missing or damaged one names the command that makes it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["__header__"]))
            weights = {k: data[k].astype(np.float32) for k in data.files if k != "__header__"}
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"cannot read the tuner's model ({error}); retrain it with "
                        f"`fleetforge tune.train --target TARGET`", where=str(path)) from None
    return Model(weights, int(header["rounds"]),
                 tuple(Candidate.parse(label) for label in header["coreset"]), header["meta"])


def shipped_model(target: str) -> Model | None:
    """The model trained for `target`, if one ships."""
    path = model_path(target)
    return load_model(path) if path.is_file() else None
