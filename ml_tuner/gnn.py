"""The GNN in torch, for training only (ml_tuner.model runs the same network in numpy).

It predicts the normalized value of every coreset candidate from a program graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ml_tuner.graph import EDGE_KINDS, VOCAB_SIZE, ProgramGraph


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the network; stored with the weights so a checkpoint rebuilds itself."""

    outputs: int
    hidden: int = 32
    rounds: int = 3


class GraphBatch:
    """Several graphs as one disjoint graph, with each node's graph index for pooling."""

    def __init__(self, graphs: list[ProgramGraph]) -> None:
        offsets = np.cumsum([0] + [g.num_nodes for g in graphs[:-1]])
        self.tokens = torch.from_numpy(np.concatenate([g.tokens for g in graphs]))
        edges = np.concatenate([g.edges + [o, o, 0] for g, o in zip(graphs, offsets)])
        self.edges = torch.from_numpy(edges.reshape(-1, 3))
        self.graph_index = torch.from_numpy(np.concatenate(
            [np.full(g.num_nodes, i, dtype=np.int64) for i, g in enumerate(graphs)]))
        self.num_graphs = len(graphs)
        sizes = torch.tensor([g.size for g in graphs], dtype=torch.float32)
        # Module size matters to which passes pay off; give it to the readout directly.
        self.log_size = torch.log1p(sizes).unsqueeze(1) / 10.0


class ValueGNN(nn.Module):
    """Embeddings, `rounds` of typed message passing (both directions), mean+max readout, MLP."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.embed = nn.Embedding(VOCAB_SIZE, h)
        # One linear map per edge kind and direction (control/data/call, forward/backward),
        # computed as a single node-level matmul and gathered per edge: far cheaper on CPU
        # than transforming every edge.
        self.messages = nn.ModuleList(
            nn.Linear(h, 2 * EDGE_KINDS * h, bias=False) for _ in range(config.rounds))
        self.updates = nn.ModuleList(nn.Linear(2 * h, h) for _ in range(config.rounds))
        self.head = nn.Sequential(nn.Linear(2 * h + 1, 2 * h), nn.ReLU(),
                                  nn.Linear(2 * h, config.outputs))

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        x = self.embed(batch.tokens)
        src, dst, kind = batch.edges[:, 0], batch.edges[:, 1], batch.edges[:, 2]
        degree = torch.zeros(x.shape[0]).index_add_(0, dst, torch.ones(len(dst)))
        degree = degree.index_add_(0, src, torch.ones(len(src))).clamp(min=1).unsqueeze(1)
        h = x.shape[1]
        for maps, update in zip(self.messages, self.updates):
            transformed = maps(x).view(x.shape[0], 2 * EDGE_KINDS, h)
            incoming = torch.zeros_like(x)
            incoming.index_add_(0, dst, transformed[src, 2 * kind])
            incoming.index_add_(0, src, transformed[dst, 2 * kind + 1])
            x = x + torch.relu(update(torch.cat([x, incoming / degree], dim=1)))
        n = batch.num_graphs
        counts = torch.zeros(n).index_add_(0, batch.graph_index, torch.ones(x.shape[0]))
        mean = torch.zeros(n, x.shape[1]).index_add_(0, batch.graph_index, x) / counts.clamp(
            min=1).unsqueeze(1)
        maxed = torch.full((n, x.shape[1]), -1e9).scatter_reduce(
            0, batch.graph_index.unsqueeze(1).expand_as(x), x, reduce="amax")
        return self.head(torch.cat([mean, maxed, batch.log_size], dim=1))


def export_weights(model: ValueGNN) -> dict[str, np.ndarray]:
    """The trained weights as the arrays ml_tuner.model reads (float16 keeps the file small)."""
    return {name: tensor.detach().numpy().astype(np.float16)
            for name, tensor in model.state_dict().items()}
