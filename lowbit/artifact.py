"""The model artifact (.lbit): header, metadata with provenance, tensor table, graph, constants.

Little-endian throughout; docs/lowbit.md has the byte layout. Writing is deterministic (sorted
JSON, fixed order, zero padding, no time stamps), so one input always gives the same bytes.
The C runtime (runtime/lowbit.c) reads the same layout; FORMAT_VERSION changes with it.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleetforge.errors import UserError
from lowbit.ir import DTYPES, Graph, Node, Tensor
from lowbit.passes import PACKING_LAYOUT

MAGIC = b"FFLOWBIT"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sIIIIIIIIQ")  # magic, format, layout, tensors, nodes, meta, graph, in, out, data
TENSOR = struct.Struct("<BBBB4IQQ")  # dtype, is_const, ndim, bits, dims[4], offset, nbytes
ALIGN = 8
NO_TENSOR = 0xFFFF

OPS = {"bitpack": 1, "conv": 2, "maxpool": 3, "avgpool": 4}
OP_NAMES = {v: k for k, v in OPS.items()}
NP_DTYPES = {"u8": np.uint8, "i8": np.int8, "i32": np.int32, "planes": np.uint64,
             "f32": np.float32}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
CONV_PARAMS = ("kernel_h", "kernel_w", "stride_h", "stride_w", "pad_h", "pad_w", "groups",
               "in_channels", "out_channels", "wbits", "weight_binary", "bitserial")
EPILOGUE_PARAMS = ("raw", "shift", "qmin", "qmax")


@dataclass(frozen=True)
class Artifact:
    """A compiled model: its integer graph and its metadata (input quantization, provenance)."""

    graph: Graph
    meta: dict

    @property
    def provenance(self) -> dict:
        return self.meta["provenance"]


def _params(node: Node) -> list[int]:
    a = node.attrs
    if node.op == "bitpack":
        return [a["bits"]]
    if node.op == "maxpool":
        return [*a["kernel"], *a["stride"], *a["pad"]]
    head: list[int] = []
    if node.op == "conv":
        head = [*a["kernel"], *a["stride"], *a["pad"], a["groups"], a["in_channels"],
                a["out_channels"], a["wbits"], int(a["weight_binary"]),
                int(a["kind"] == "bitserial")]
    epilogues = [int(e.get(k, 0)) for e in a["epilogues"] for k in EPILOGUE_PARAMS]
    return [*head, len(a["epilogues"]), *epilogues]


def const_names(node: Node) -> list[str]:
    """A node's constants in artifact order."""
    if node.op not in ("conv", "avgpool"):
        return []
    names = ["weight"] if node.op == "conv" else []
    for index, epilogue in enumerate(node.attrs["epilogues"]):
        if epilogue["raw"]:
            names += [f"bias{index}", "output_scale"]
        else:
            names += [f"M{index}", f"B{index}"]
            if f"Mr{index}" in node.consts:
                names.append(f"Mr{index}")
    return names


def _tensor_dtype(array: np.ndarray) -> str:
    for name, dtype in NP_DTYPES.items():
        if array.dtype == dtype:
            return name
    raise TypeError(f"cannot store {array.dtype}")


def to_bytes(graph: Graph, meta: dict) -> bytes:
    """Serialize a compiled graph (activation tensors first, then constants in node order)."""
    tensor_ids: dict[str, int] = {}
    table: list[tuple] = []
    data = bytearray()
    for name in _activation_order(graph):
        tensor = graph.tensors[name]
        tensor_ids[name] = len(table)
        dims = [*tensor.shape, 0]
        table.append((DTYPES[tensor.dtype], 0, 3, tensor.bits, *dims, 0, 0))
    node_words: list[bytes] = []
    for node in graph.nodes:
        consts = []
        for key in const_names(node):
            array = np.ascontiguousarray(node.consts[key])
            offset = len(data)
            data += array.astype(array.dtype.newbyteorder("<")).tobytes()
            data += bytes(-len(data) % ALIGN)
            dims = [*array.shape, *([0] * (4 - array.ndim))][:4] if array.ndim <= 4 else None
            if dims is None:
                raise TypeError("constants have at most 4 dimensions")
            consts.append(len(table))
            table.append((DTYPES[_tensor_dtype(array)], 1, array.ndim, 0, *dims, offset,
                          array.nbytes))
        ins = [tensor_ids[t] for t in node.inputs]
        outs = [tensor_ids[t] for t in node.outputs]
        params = _params(node)
        record = struct.pack("<BBBBB", OPS[node.op], len(ins), len(outs), len(consts), len(params))
        record += struct.pack(f"<{len(ins) + len(outs) + len(consts)}H", *ins, *outs, *consts)
        record += struct.pack(f"<{len(params)}i", *params)
        node_words.append(record)
    graph_bytes = b"".join(node_words)
    meta_bytes = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    body = meta_bytes + bytes(-len(meta_bytes) % ALIGN)
    body += b"".join(TENSOR.pack(*row) for row in table)
    body += bytes(-len(body) % ALIGN)
    body += graph_bytes + bytes(-len(graph_bytes) % ALIGN)
    header = HEADER.pack(MAGIC, FORMAT_VERSION, PACKING_LAYOUT, len(table), len(graph.nodes),
                         len(meta_bytes), len(graph_bytes), tensor_ids[graph.input],
                         tensor_ids[graph.output], HEADER.size + len(body))
    return header + body + bytes(data)


def _activation_order(graph: Graph) -> list[str]:
    order = [graph.input]
    for node in graph.nodes:
        for name in node.outputs:
            if name not in order:
                order.append(name)
    return order


def from_bytes(blob: bytes, where: str = "artifact") -> Artifact:
    """Parse an artifact; a wrong magic, version or truncated file is a one-line UserError."""
    if len(blob) < HEADER.size:
        raise UserError("not a FleetForge low-bit model (too short)", where=where)
    (magic, version, layout, n_tensors, n_nodes, meta_len, graph_len, input_id, output_id,
     data_offset) = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise UserError("not a FleetForge low-bit model (bad magic)", where=where)
    if version != FORMAT_VERSION or layout != PACKING_LAYOUT:
        raise UserError(f"artifact format {version}/layout {layout}; this FleetForge reads "
                        f"{FORMAT_VERSION}/{PACKING_LAYOUT} (recompile the model)", where=where)
    try:
        cursor = HEADER.size
        meta = json.loads(blob[cursor:cursor + meta_len])
        cursor += meta_len + (-meta_len % ALIGN)
        rows = [TENSOR.unpack_from(blob, cursor + i * TENSOR.size) for i in range(n_tensors)]
        cursor += n_tensors * TENSOR.size
        cursor += -cursor % ALIGN
        graph_end = cursor + graph_len
        data = blob[data_offset:]
        tensors: dict[int, Tensor | np.ndarray] = {}
        for index, (dtype, is_const, ndim, bits, d0, d1, d2, d3, offset, nbytes) in enumerate(rows):
            name = DTYPE_NAMES[dtype]
            if is_const:
                dims = (d0, d1, d2, d3)[:ndim]
                if offset + nbytes > len(data):
                    raise ValueError("constant past the end of the file")
                tensors[index] = np.frombuffer(data, NP_DTYPES[name], count=nbytes //
                                               np.dtype(NP_DTYPES[name]).itemsize,
                                               offset=offset).reshape(dims).copy()
            else:
                tensors[index] = Tensor(f"t{index}", (d0, d1, d2), name, bits,
                                        name in ("i8", "i32"))
        nodes = []
        while cursor < graph_end:
            op, n_in, n_out, n_const, n_params = struct.unpack_from("<BBBBB", blob, cursor)
            cursor += 5
            ids = struct.unpack_from(f"<{n_in + n_out + n_const}H", blob, cursor)
            cursor += 2 * len(ids)
            params = list(struct.unpack_from(f"<{n_params}i", blob, cursor))
            cursor += 4 * n_params
            nodes.append(_node(OP_NAMES[op], len(nodes), ids[:n_in], ids[n_in:n_in + n_out],
                               ids[n_in + n_out:], params, tensors))
    except (ValueError, KeyError, struct.error, json.JSONDecodeError, IndexError) as error:
        raise UserError(f"corrupted low-bit model ({error})", where=where) from None
    graph = Graph(nodes=nodes, tensors={t.name: t for t in tensors.values() if isinstance(t, Tensor)},
                  input=f"t{input_id}", output=f"t{output_id}", passes=list(meta["provenance"]["passes"]))
    graph.tensors[graph.input].scale = meta["input"]["scale"]
    graph.tensors[graph.input].signed = meta["input"]["signed"]
    return Artifact(graph, meta)


def _node(op: str, index: int, ins, outs, consts, params: list[int], tensors) -> Node:
    attrs: dict = {}
    if op == "bitpack":
        attrs["bits"] = params[0]
    elif op == "maxpool":
        attrs.update(kernel=tuple(params[0:2]), stride=tuple(params[2:4]), pad=tuple(params[4:6]))
    else:
        if op == "conv":
            values = dict(zip(CONV_PARAMS, params))
            attrs.update(kernel=(values["kernel_h"], values["kernel_w"]),
                         stride=(values["stride_h"], values["stride_w"]),
                         pad=(values["pad_h"], values["pad_w"]), groups=values["groups"],
                         in_channels=values["in_channels"], out_channels=values["out_channels"],
                         wbits=values["wbits"], weight_binary=bool(values["weight_binary"]),
                         kind="bitserial" if values["bitserial"] else "int8")
            params = params[len(CONV_PARAMS):]
        count, rest = params[0], params[1:]
        attrs["epilogues"] = [dict(zip(EPILOGUE_PARAMS, rest[i * 4:i * 4 + 4])) for i in range(count)]
        for epilogue in attrs["epilogues"]:
            epilogue["raw"] = bool(epilogue["raw"])
    node = Node(op, f"{op}{index}", [f"t{i}" for i in ins], [f"t{i}" for i in outs], attrs)
    names = _const_layout(node, len(consts))
    node.consts = {name: tensors[i] for name, i in zip(names, consts)}
    return node


def _const_layout(node: Node, count: int) -> list[str]:
    if node.op not in ("conv", "avgpool"):
        if count:
            raise ValueError(f"node {node.name}: {node.op} takes no constants")
        return []
    has_residual = len(node.inputs) > 1
    names = ["weight"] if node.op == "conv" else []
    for index, epilogue in enumerate(node.attrs["epilogues"]):
        if epilogue["raw"]:
            names += [f"bias{index}", "output_scale"]
        else:
            names += [f"M{index}", f"B{index}"] + ([f"Mr{index}"] if has_residual else [])
    if len(names) != count:
        raise ValueError(f"node {node.name}: {count} constants, expected {len(names)}")
    return names


def save(artifact_bytes: bytes, path: Path) -> None:
    """Write an artifact atomically (a half-written model never has the final name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(artifact_bytes)
    tmp.replace(path)


def load(path: Path) -> Artifact:
    try:
        blob = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read the model: {error.strerror}", where=str(path)) from None
    return from_bytes(blob, where=str(path))
