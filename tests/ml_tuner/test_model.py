"""The graph, the GNN (torch, for training) and its numpy twin (for tuning), the shipped models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml_tuner.graph import CONTROL, DATA, VOCAB, build_graph
from ml_tuner.knobs import Candidate, load_knobs
from ml_tuner.model import Model, load_model, model_path, save_model
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


def test_large_module_graph_covers_functions_across_the_module():
    body = "".join(f"define i32 @f{i}(i32 %a) {{\nentry:\n" + "  %x = add i32 %a, 1\n" * 50 +
                   "  ret i32 %x\n}\n" for i in range(100))
    full, capped = build_graph(body, 10**6), build_graph(body, 3000)
    assert capped.num_nodes < full.num_nodes / 5
    assert capped.size == full.size  # the model still sees the whole module's size


def test_numpy_forward_equals_torch_forward(pid_c: Path, add_ll: Path, tmp_path: Path):
    torch = pytest.importorskip("torch")
    from ml_tuner.gnn import GraphBatch, ModelConfig, ValueGNN, export_weights

    torch.manual_seed(1)
    net = ValueGNN(ModelConfig(outputs=5, hidden=16, rounds=2))
    weights = export_weights(net)
    # Compare against the same float16-rounded weights the file keeps.
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items()})
    coreset = [Candidate.of({"inline": s}) for s in list(
        load_knobs().knob("inline").settings)[:5]]
    save_model(tmp_path / "m.npz", weights, 2, coreset, {"test": True})
    loaded = load_model(tmp_path / "m.npz")
    graph = build_graph(add_ll.read_text())
    with torch.no_grad():
        expected = net(GraphBatch([graph]))[0].numpy()
    assert np.allclose(loaded.predict(graph), expected, atol=1e-4)
    assert [r.candidate for r in loaded.rank(add_ll.read_text())][0] in coreset
    assert loaded.coreset == tuple(coreset) and loaded.meta == {"test": True}


def test_tiny_fit_lowers_loss(add_ll: Path):
    pytest.importorskip("torch")
    graphs = [build_graph(add_ll.read_text())] * 4
    targets = np.tile(np.linspace(-1, 1, 5), (4, 1))
    _, losses = fit(graphs, targets, TrainConfig(epochs=40, batch=4, hidden=8,
                                                 learning_rate=1e-2))
    assert losses[-1] < losses[0] / 2


def test_normalized_values_floor_and_scale():
    values = normalized_values(np.array([[0.02, 0.01, -0.5], [0.0, -0.01, 0.0]]))
    assert values[0].tolist() == [1.0, 0.5, -1.0]
    assert values[1].tolist() == [0.0, -1.0, 0.0]  # nothing wins: scaled by the 0.005 floor


@pytest.mark.parametrize("target", ["aarch64-linux-gnu", "thumbv7em-none-eabi"])
def test_shipped_models_are_small_and_rank_their_coreset(target: str, pid_c: Path):
    path = model_path(target)
    if not path.is_file():
        pytest.skip(f"no model trained for {target} yet (fleetforge tune.train)")
    assert path.stat().st_size < 1_000_000
    model: Model = load_model(path)
    space = load_knobs().for_target(target)
    assert len(model.coreset) >= 10 and all(space.flags(c) for c in model.coreset)
    assert model.meta["target"] == target and model.meta["train_units"] >= 50
    # Its training projects are not the held-out ones.
    assert not set(model.meta["projects"]) & {"lz4", "lua5.4", "mbedtls", "libyaml"}
