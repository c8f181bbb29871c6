"""The compiler's graph: tensors with (H, W, C) shapes, nodes in execution order, numpy constants.

Between `lower` and the last pass the graph goes from the float domain (values, `quantize`
nodes, BN, ReLU) to the integer domain the runtimes execute (see docs/lowbit.md, "Integer graph"):
  bitpack        u8 codes -> bit-planes (packing layout 1)
  conv           codes -> requantized codes (one or more epilogues) or raw int32; `kind` is
                 "bitserial" (AND + popcount over planes) or "int8"
  maxpool        codes -> codes
  avgpool        global average of codes, requantized
Every pass takes a Graph and returns a new one; none edits its input.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

# Tensor element types (the artifact stores the same numbers).
DTYPES = {"u8": 0, "i8": 1, "i32": 2, "planes": 3, "f32": 4, "f64": 5, "value": 6}


@dataclass
class Tensor:
    """An activation: (H, W, C), its element type, and for codes their bits and step."""

    name: str
    shape: tuple[int, int, int]
    dtype: str = "value"  # "value" = a float tensor of the fake-quant model (before lowering ends)
    bits: int = 0
    signed: bool = False
    scale: float = 0.0


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, object] = field(default_factory=dict)
    consts: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Graph:
    nodes: list[Node]
    tensors: dict[str, Tensor]
    input: str
    output: str
    passes: list[str] = field(default_factory=list)

    def copy(self) -> Graph:
        return copy.deepcopy(self)

    def producer(self, tensor: str) -> Node | None:
        for node in self.nodes:
            if tensor in node.outputs:
                return node
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def toposort(self) -> None:
        """Reorder nodes so every input is produced before it is read (stable otherwise)."""
        ready = {self.input}
        pending = list(self.nodes)
        ordered: list[Node] = []
        while pending:
            for node in pending:
                if all(t in ready for t in node.inputs):
                    ordered.append(node)
                    ready.update(node.outputs)
                    pending.remove(node)
                    break
            else:
                raise ValueError(f"graph has a cycle or a dangling input at {pending[0].name}")
        self.nodes = ordered

    def ops(self) -> list[str]:
        return [n.op for n in self.nodes]

    def fresh(self, base: str, *, node: bool = False) -> str:
        """A tensor name (or with node=True a node name) not used yet."""
        taken = {n.name for n in self.nodes} if node else set(self.tensors)
        if base not in taken:
            return base
        index = 1
        while f"{base}.{index}" in taken:
            index += 1
        return f"{base}.{index}"
