"""The IR graph and the GNN: shapes, gradients, a tiny fit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ml_tuner.graph import CONTROL, DATA, VOCAB, build_graph
from ml_tuner.model import GraphBatch, ModelConfig, ValueGNN, load_model, save_model
from ml_tuner.train import TrainConfig, fit, normalized_values


def test_graph_of_hand_written_module(add_ll: Path):
    g = build_graph(add_ll.read_text())
    # 3 instructions, 4 variables (2 arguments, 2 results), 1 constant (the 7).
    assert g.num_nodes == 8
    assert sorted(g.tokens.tolist()).count(VOCAB["op:add"]) == 1
    kinds = g.edges[:, 2].tolist()
    assert kinds.count(CONTROL) == 2  # mul -> add -> ret
    # defs: mul->%dead, add->%s; uses: %a->mul, %a->add, %b->add, %s->ret; const->mul.
    assert kinds.count(DATA) == 7


def test_forward_backward_shapes(add_ll: Path, pid_c: Path):
    graphs = [build_graph(add_ll.read_text()), build_graph(add_ll.read_text())]
    model = ValueGNN(ModelConfig(outputs=50, hidden=16, rounds=2))
    out = model(GraphBatch(graphs))
    assert out.shape == (2, 50)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_normalized_values_floor_and_scale():
    scores = np.array([[0.02, 0.01, -0.5], [0.0, -0.01, 0.0]])
    values = normalized_values(scores)
    assert values[0].tolist() == [1.0, 0.5, -1.0]
    assert values[1, 0] == 0.0 and values[1, 1] == -1.0 * 0.01 / 0.005 or values[1, 1] == -1.0


def test_tiny_fit_lowers_loss_and_saves_small(add_ll: Path, tmp_path: Path):
    graphs = [build_graph(add_ll.read_text())] * 4
    targets = np.tile(np.linspace(-1, 1, 5), (4, 1))
    model, losses = fit(graphs, targets, TrainConfig(epochs=60, batch=4, hidden=8, learning_rate=1e-2))
    assert losses[-1] < losses[0] / 2
    path = tmp_path / "m.pt"
    save_model(model, [("default<Oz>",)] * 5, ["Oz"] * 5, path, {"test": True})
    loaded = load_model(path)
    with torch.no_grad():
        again = loaded.model(GraphBatch(graphs[:1]))
    assert again.shape == (1, 5) and path.stat().st_size < 100_000
