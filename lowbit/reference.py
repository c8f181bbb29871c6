"""The numpy integer reference: runs a compiled graph with plain integer arithmetic.

It is the oracle of the C runtime (outputs must be equal, bit for bit) and defines the integer
semantics in the clearest form: unpack bit-planes back to codes, convolve in exact integers
(float64 matrix products are exact here: every partial sum is an integer below 2^53), requantize
with v = acc*M + res*Mr + B, q = clamp(v >> shift, qmin, qmax).
"""
from __future__ import annotations

import numpy as np

from lowbit.ir import Graph, Node
from lowbit.passes import bitplanes


def unpack_planes(planes: np.ndarray, channels: int, encoding: str = "unsigned") -> np.ndarray:
    """Inverse of passes.bitplanes: uint64 (..., P, words) -> int64 codes (..., channels)."""
    as_bytes = planes.astype("<u8").view(np.uint8).reshape(*planes.shape[:-1], -1)
    bits = np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :channels].astype(np.int64)
    count = planes.shape[-2]
    if encoding == "binary":
        return 2 * bits[..., 0, :] - 1
    weights = [1 << j for j in range(count)]
    if encoding == "twos_complement":
        weights[-1] = -weights[-1]
    return sum(w * bits[..., j, :] for j, w in enumerate(weights))


def bitserial_dot(a_planes: np.ndarray, w_planes: np.ndarray, encoding: str) -> int:
    """One dot product the way the kernels compute it: sum over plane pairs (i, j) of
    coef_j * 2^i * popcount(A_i AND W_j) (+ offset * sum(a) for binary weights)."""
    total = 0
    for i in range(a_planes.shape[0]):
        for j in range(w_planes.shape[0]):
            count = sum(bin(int(x)).count("1") for x in np.bitwise_and(a_planes[i], w_planes[j]))
            coef = 1 << j
            if encoding == "twos_complement" and j == w_planes.shape[0] - 1:
                coef = -coef
            if encoding == "binary":
                coef = 2
            total += coef * (count << i)
    if encoding == "binary":
        total -= sum((sum(bin(int(x)).count("1") for x in a_planes[i]) << i)
                     for i in range(a_planes.shape[0]))
    return total


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
             pad: tuple[int, int], fill: int) -> np.ndarray:
    """(Ho, Wo, KH, KW, C) views of an (H, W, C) tensor."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    padded = np.pad(x, ((ph, ph), (pw, pw), (0, 0)), constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(0, 1))
    return view[::sh, ::sw].transpose(0, 1, 3, 4, 2)


def conv_accumulators(codes: np.ndarray, weight_codes: np.ndarray, attrs: dict) -> np.ndarray:
    """Exact int64 accumulators of an (H, W, C) code tensor and OHWI weight codes."""
    windows = _windows(codes.astype(np.float64), attrs["kernel"], attrs["stride"], attrs["pad"], 0)
    ho, wo = windows.shape[:2]
    groups = attrs["groups"]
    out_channels = weight_codes.shape[0]
    per_group = out_channels // groups
    cg = weight_codes.shape[3]
    acc = np.empty((ho, wo, out_channels), dtype=np.int64)
    for g in range(groups):
        cols = windows[..., g * cg:(g + 1) * cg].reshape(ho * wo, -1)
        w = weight_codes[g * per_group:(g + 1) * per_group].reshape(per_group, -1).astype(np.float64)
        acc[..., g * per_group:(g + 1) * per_group] = np.rint(cols @ w.T).astype(np.int64).reshape(
            ho, wo, per_group)
    return acc


def requantize(acc: np.ndarray, node: Node, index: int, residual: np.ndarray | None) -> np.ndarray:
    epilogue = node.attrs["epilogues"][index]
    if epilogue["raw"]:
        return (acc + node.consts[f"bias{index}"].astype(np.int64)).astype(np.int32)
    v = acc * node.consts[f"M{index}"].astype(np.int64) + node.consts[f"B{index}"].astype(np.int64)
    if residual is not None:
        v = v + residual.astype(np.int64) * node.consts[f"Mr{index}"].astype(np.int64)
    q = np.clip(v >> epilogue["shift"], epilogue["qmin"], epilogue["qmax"])
    return q.astype(np.int8 if epilogue["qmin"] < 0 else np.uint8)


def run(graph: Graph, input_codes: np.ndarray) -> np.ndarray:
    """Run the graph on one input (H, W, C codes); returns the output tensor (H, W, C int32)."""
    values: dict[str, np.ndarray] = {graph.input: np.asarray(input_codes)}
    for node in graph.nodes:
        x = values[node.inputs[0]]
        if node.op == "bitpack":
            values[node.outputs[0]] = bitplanes(x, node.attrs["bits"], "unsigned")
        elif node.op == "conv":
            weight = node.consts["weight"]
            if node.attrs["kind"] == "bitserial":
                channels = node.attrs["in_channels"]
                x = unpack_planes(x, channels)
                encoding = "binary" if node.attrs["weight_binary"] else "twos_complement"
                kh, kw = node.attrs["kernel"]
                weight = unpack_planes(weight, channels, encoding).reshape(-1, kh, kw, channels)
            acc = conv_accumulators(x, weight.astype(np.int64), node.attrs)
            residual = values[node.inputs[1]] if len(node.inputs) > 1 else None
            for index, out in enumerate(node.outputs):
                values[out] = requantize(acc, node, index, residual)
        elif node.op == "maxpool":
            fill = np.iinfo(x.dtype).min
            windows = _windows(x, node.attrs["kernel"], node.attrs["stride"], node.attrs["pad"], fill)
            values[node.outputs[0]] = windows.max(axis=(2, 3))
        elif node.op == "avgpool":
            acc = x.astype(np.int64).sum(axis=(0, 1), keepdims=True)
            for index, out in enumerate(node.outputs):
                values[out] = requantize(acc, node, index, None)
        else:
            raise ValueError(f"unknown op {node.op}")
    return values[graph.output]
