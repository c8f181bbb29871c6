"""The compiler passes, in order (PIPELINE). Each takes a Graph and returns a new one.

float domain (lower) ──fold_batchnorm──fold_scales──integer_codes──insert_requantize──
fuse_epilogues──pack_bitplanes──insert_bitpack──check_overflow──▶ integer graph (artifact)

docs/lowbit.md describes what each pass guarantees; tests/lowbit/test_passes.py checks each.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fleetforge.errors import UserError
from lowbit.config import BIT_SERIAL_MAX_BITS
from lowbit.ir import Graph, Node, Tensor

ACCUMULATOR_BITS = 32  # conv accumulators: int32 in every kernel (checked statically)
EPILOGUE_BITS = 64  # requantization arithmetic: int64
MULTIPLIER_BITS = 31  # fixed-point multipliers and offsets are int32
WORD_BITS = 64  # bit-plane words (packing layout 1)
PACKING_LAYOUT = 1


def _rewire(graph: Graph, old: str, new: str) -> None:
    for node in graph.nodes:
        node.inputs = [new if t == old else t for t in node.inputs]
    if graph.output == old:
        graph.output = new
    graph.tensors.pop(old, None)


def _only_consumer(graph: Graph, tensor: str, node: Node, what: str) -> None:
    consumers = graph.consumers(tensor)
    if consumers != [node] or graph.output == tensor:
        raise UserError(f"{what}: the output of '{graph.producer(tensor).name}' must feed only "
                        f"'{node.name}'")


def fold_batchnorm(graph: Graph) -> Graph:
    """BN after a conv becomes the conv's per-channel affine epilogue (no BN node is left)."""
    graph = graph.copy()
    for bn in [n for n in graph.nodes if n.op == "bn"]:
        conv = graph.producer(bn.inputs[0])
        if conv is None or conv.op != "conv":
            raise UserError(f"batch norm '{bn.name}' must follow a conv or linear layer")
        _only_consumer(graph, bn.inputs[0], bn, f"batch norm '{bn.name}'")
        scale, shift = bn.consts["scale"], bn.consts["shift"]
        conv.consts["bn_scale"] = conv.consts.get("bn_scale", 1.0) * scale
        conv.consts["bn_shift"] = conv.consts.get("bn_shift", 0.0) * scale + shift
        graph.nodes.remove(bn)
        old = conv.outputs[0]
        conv.outputs = [bn.outputs[0]]
        graph.tensors.pop(old)
    graph.passes.append("fold_batchnorm")
    return graph


def fold_scales(graph: Graph) -> Graph:
    """Each conv's real output becomes alpha[o] * acc + beta[o] (+ residual_scale * shortcut
    codes): input step x weight step x BN scale, and bias x BN scale + BN shift. A residual add
    is folded into the conv of its main branch, whose accumulator then reads the shortcut codes."""
    graph = graph.copy()
    for conv in [n for n in graph.nodes if n.op == "conv"]:
        s_in = graph.tensors[conv.inputs[0]].scale
        bn_scale = conv.consts.pop("bn_scale", 1.0)
        conv.consts["alpha"] = s_in * conv.consts.pop("weight_step") * bn_scale
        conv.consts["beta"] = conv.consts.pop("bias") * bn_scale + conv.consts.pop("bn_shift", 0.0)
    for add in [n for n in graph.nodes if n.op == "add"]:
        main, shortcut = add.inputs
        conv = graph.producer(main)
        if conv is None or conv.op != "conv":
            raise UserError(f"add '{add.name}': its main operand must be a conv(+BN) output")
        _only_consumer(graph, main, add, f"add '{add.name}'")
        codes = graph.tensors[shortcut]
        if codes.dtype not in ("u8", "i8"):
            raise UserError(f"add '{add.name}': the shortcut must be quantized (prepare() does it)")
        if codes.shape != graph.tensors[main].shape:
            raise UserError(f"add '{add.name}': operand shapes differ")
        conv.inputs.append(shortcut)
        conv.consts["residual_scale"] = np.array(codes.scale)
        graph.nodes.remove(add)
        graph.tensors.pop(conv.outputs[0])
        conv.outputs = [add.outputs[0]]
    graph.toposort()
    graph.passes.append("fold_scales")
    return graph


def integer_codes(graph: Graph) -> Graph:
    """Weights become int8 codes in OHWI order; the model input becomes the input quantizer's
    codes (the runtimes take codes); the model's output layer gives raw int32 accumulators plus
    a rounded integer bias, with its per-channel dequantization scale kept for the host."""
    graph = graph.copy()
    for conv in [n for n in graph.nodes if n.op == "conv"]:
        codes = conv.consts.pop("weight_codes")
        if codes.min() < -128 or codes.max() > 127:
            raise UserError(f"layer '{conv.name}': weight codes exceed 8 bits")
        conv.consts["weight"] = np.ascontiguousarray(codes.transpose(0, 2, 3, 1)).astype(np.int8)
    first = graph.consumers(graph.input)
    if len(first) != 1 or first[0].op != "quantize":
        raise UserError("the model input must feed exactly one quantized layer")
    quantize = first[0]
    graph.nodes.remove(quantize)
    graph.tensors.pop(graph.input)
    graph.input = quantize.outputs[0]
    last = graph.producer(graph.output)
    if last is None or last.op != "conv":
        raise UserError("the model must end with a conv or linear layer (no BN, ReLU or pooling "
                        "after it): its int32 accumulators are the output")
    alpha, beta = last.consts["alpha"], last.consts["beta"]
    if "residual_scale" in last.consts:
        raise UserError(f"layer '{last.name}': the output layer cannot have a residual add")
    last.attrs["epilogues"] = [{"raw": True}]
    last.consts["bias0"] = np.round(beta / alpha).astype(np.int32)
    last.consts["output_scale"] = alpha.astype(np.float32)
    out = graph.tensors[graph.output]
    out.dtype, out.bits, out.signed = "i32", 32, True
    graph.passes.append("integer_codes")
    return graph


def fixed_point(multipliers: list[np.ndarray], offset: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Integers M_k, B and a shift with v = sum_k x_k*M_k + B; q = v >> shift approximating
    round(sum_k x_k*m_k + offset) (B holds the rounding half)."""
    limit = (1 << (MULTIPLIER_BITS - 1)) - 1
    peak = max(float(np.abs(m).max()) for m in multipliers)
    shift = 62 if peak == 0 else int(math.floor(math.log2(limit / peak)))
    shift = max(0, min(shift, 46))
    while shift > 0 and float(np.abs(offset).max()) * 2.0 ** shift + 2.0 ** (shift - 1) >= limit:
        shift -= 1
    ints = [np.round(m * 2.0 ** shift).astype(np.int64) for m in multipliers]
    bias = np.round(offset * 2.0 ** shift).astype(np.int64) + ((1 << (shift - 1)) if shift else 0)
    if any(np.abs(i).max() > limit for i in ints) or np.abs(bias).max() > limit:
        raise UserError("requantization multipliers do not fit in int32 (scales too far apart)")
    return [i.astype(np.int32) for i in ints], bias.astype(np.int32), shift


def _chain_to_base(graph: Graph, quantize: Node) -> tuple[Node, list[Node], bool]:
    """From a quantize node back through ReLU and max pool to the node whose accumulator it
    requantizes: (base, maxpools from base outwards, whether a ReLU is on the way)."""
    pools: list[Node] = []
    relu = False
    tensor = quantize.inputs[0]
    while True:
        node = graph.producer(tensor)
        if node is None:
            raise UserError(f"quantizer '{quantize.name}' reads the model input twice")
        if node.op == "relu":
            relu = True
        elif node.op == "maxpool":
            pools.insert(0, node)
        elif node.op in ("conv", "avgpool"):
            return node, pools, relu
        else:
            raise UserError(f"quantizer '{quantize.name}': cannot requantize the output of "
                            f"'{node.name}' ({node.op})")
        tensor = node.inputs[0]


def insert_requantize(graph: Graph) -> Graph:
    """Every quantizer becomes a `requantize` node on the int32 accumulator of the conv (or the
    sum of the average pool) it reads, with fixed-point multipliers; ReLU becomes the clamp at
    zero, and max pools move after it to work on codes (both commute with a non-decreasing
    quantizer, so this is exact)."""
    graph = graph.copy()
    for quantize in [n for n in graph.nodes if n.op == "quantize"]:
        base, pools, relu = _chain_to_base(graph, quantize)
        out = graph.tensors[quantize.outputs[0]]
        s_out = out.scale
        acc = base.outputs[0]
        accumulator = graph.tensors[acc]
        accumulator.dtype, accumulator.bits, accumulator.signed = "i32", 32, True
        if base.op == "conv":
            multipliers = [base.consts["alpha"] / s_out]
            if "residual_scale" in base.consts:
                multipliers.append(np.full_like(multipliers[0],
                                                float(base.consts["residual_scale"]) / s_out))
            offset = base.consts["beta"] / s_out
        else:
            codes = graph.tensors[base.inputs[0]]
            h, w, _ = codes.shape
            multipliers = [np.array([codes.scale / (h * w * s_out)])]
            offset = np.array([0.0])
        ints, bias, shift = fixed_point(multipliers, offset)
        consts = {"M": ints[0], "B": bias}
        if len(ints) > 1:
            consts["Mr"] = ints[1]
        qmin = max(quantize.attrs["qmin"], 0) if relu else quantize.attrs["qmin"]
        attrs = {"shift": shift, "qmin": qmin, "qmax": quantize.attrs["qmax"]}
        tensor = out.name
        if pools:
            tensor = graph.fresh(f"{out.name}.requantized")
            graph.tensors[tensor] = Tensor(tensor, accumulator.shape, out.dtype, out.bits,
                                           out.signed, out.scale)
        index = graph.nodes.index(quantize)
        graph.nodes.remove(quantize)
        new_nodes = [Node("requantize", graph.fresh(f"{quantize.name}.requantize", node=True), [acc],
                          [tensor], attrs, consts)]
        for position, pool in enumerate(pools):
            last = position == len(pools) - 1
            pooled = out.name if last else graph.fresh(f"{out.name}.{pool.name}")
            if not last:
                shape = graph.tensors[pool.outputs[0]].shape
                graph.tensors[pooled] = Tensor(pooled, shape, out.dtype, out.bits, out.signed,
                                               out.scale)
            new_nodes.append(Node("maxpool", graph.fresh(f"{out.name}.{pool.name}", node=True), [tensor],
                                  [pooled], dict(pool.attrs)))
            tensor = pooled
        graph.nodes[index:index] = new_nodes
    # The float-domain ReLUs and max pools are now unused.
    used = {t for n in graph.nodes for t in n.inputs} | {graph.output}
    changed = True
    while changed:
        changed = False
        for node in list(graph.nodes):
            if node.op in ("relu", "maxpool") and graph.tensors[node.outputs[0]].dtype == "value" \
                    and node.outputs[0] not in used:
                graph.nodes.remove(node)
                graph.tensors.pop(node.outputs[0])
                used = {t for n in graph.nodes for t in n.inputs} | {graph.output}
                changed = True
    for node in graph.nodes:
        node.consts.pop("residual_scale", None)
    graph.toposort()
    graph.passes.append("insert_requantize")
    return graph


def fuse_epilogues(graph: Graph) -> Graph:
    """Requantize nodes merge into the conv or average pool that produces their accumulator:
    one pass over the accumulators writes every consumer's codes (no int32 tensor in memory)."""
    graph = graph.copy()
    for node in [n for n in graph.nodes if n.op in ("conv", "avgpool")]:
        if node.outputs[0] == graph.output:
            continue
        acc = node.outputs[0]
        requants = graph.consumers(acc)
        if not requants or any(r.op != "requantize" for r in requants):
            raise UserError(f"'{node.name}': its output must be requantized before any other use")
        epilogues = []
        node.outputs = []
        for index, requant in enumerate(requants):
            epilogues.append({"raw": False, **requant.attrs})
            node.consts[f"M{index}"] = requant.consts["M"]
            node.consts[f"B{index}"] = requant.consts["B"]
            if "Mr" in requant.consts:
                node.consts[f"Mr{index}"] = requant.consts["Mr"]
            node.outputs.append(requant.outputs[0])
            graph.nodes.remove(requant)
        node.attrs["epilogues"] = epilogues
        for key in ("alpha", "beta"):
            node.consts.pop(key, None)
        graph.tensors.pop(acc)
    for node in graph.nodes:
        if node.op == "conv" and node.outputs[0] == graph.output:
            node.consts.pop("alpha", None)
            node.consts.pop("beta", None)
    graph.passes.append("fuse_epilogues")
    return graph


def bitplanes(codes: np.ndarray, planes: int, encoding: str) -> np.ndarray:
    """Packing layout 1: codes (..., C) -> uint64 (..., planes, ceil(C/64)).
    Plane j holds bit j of each code (two's complement for signed weights, (w+1)/2 for binary
    -1/+1 weights); channel c is bit c % 64 of word c // 64 (least significant bit first);
    channels past C are zero."""
    codes = codes.astype(np.int64)
    if encoding == "binary":
        codes = (codes + 1) // 2
    channels = codes.shape[-1]
    words = -(-channels // WORD_BITS)
    padded = np.zeros((*codes.shape[:-1], words * WORD_BITS), dtype=np.int64)
    padded[..., :channels] = codes
    out = np.empty((*codes.shape[:-1], planes, words), dtype=np.uint64)
    for plane in range(planes):
        bits = ((padded >> plane) & 1).astype(np.uint8)
        packed = np.packbits(bits, axis=-1, bitorder="little")
        out[..., plane, :] = packed.view("<u8").reshape(*codes.shape[:-1], words)
    return out


def pack_bitplanes(graph: Graph) -> Graph:
    """Convs with at most 4-bit weights and unsigned activations, and no groups, run bit-serial:
    their weights are packed offline into bit-planes along the input channels (layout 1), stored
    as (O, KH*KW, planes, words).
    The others run on the int8 kernels."""
    graph = graph.copy()
    for conv in [n for n in graph.nodes if n.op == "conv"]:
        codes = graph.tensors[conv.inputs[0]]
        serial = (conv.attrs["wbits"] <= BIT_SERIAL_MAX_BITS and codes.bits <= BIT_SERIAL_MAX_BITS
                  and conv.attrs["groups"] == 1 and not codes.signed)
        conv.attrs["kind"] = "bitserial" if serial else "int8"
        if serial:
            encoding = "binary" if conv.attrs["weight_binary"] else "twos_complement"
            conv.attrs["weight_encoding"] = encoding
            o, kh, kw, _ = conv.consts["weight"].shape
            planes = bitplanes(conv.consts["weight"], conv.attrs["wbits"], encoding)
            conv.consts["weight"] = planes.reshape(o, kh * kw, *planes.shape[-2:])
    graph.passes.append("pack_bitplanes")
    return graph


def insert_bitpack(graph: Graph) -> Graph:
    """A `bitpack` node before each bit-serial conv turns its input codes into bit-planes
    (shared when several convs read the same codes)."""
    graph = graph.copy()
    packed: dict[str, str] = {}
    for conv in [n for n in graph.nodes if n.op == "conv" and n.attrs["kind"] == "bitserial"]:
        source = conv.inputs[0]
        if source not in packed:
            codes = graph.tensors[source]
            name = graph.fresh(f"{source}.planes")
            graph.tensors[name] = Tensor(name, codes.shape, "planes", codes.bits, False, codes.scale)
            producer = graph.producer(source)
            index = graph.nodes.index(producer) + 1 if producer else 0
            graph.nodes.insert(index, Node("bitpack", graph.fresh(f"{source}.bitpack", node=True), [source],
                                           [name], {"bits": codes.bits}))
            packed[source] = name
        conv.inputs[0] = packed[source]
    graph.passes.append("insert_bitpack")
    return graph


def accumulator_bound(graph: Graph, conv: Node) -> int:
    """The largest |accumulator| a conv can reach: C*K^2/groups * max|w| * max|a|."""
    kh, kw = conv.attrs["kernel"]
    codes = graph.tensors[conv.inputs[0]]
    a_max = (1 << codes.bits) - 1 if not codes.signed else 1 << (codes.bits - 1)
    w_max = 1 if conv.attrs["weight_binary"] else 1 << (conv.attrs["wbits"] - 1)
    return kh * kw * conv.attrs["in_channels"] // conv.attrs["groups"] * w_max * a_max


def check_overflow(graph: Graph) -> Graph:
    """Static proof that no accumulator overflows: C*K^2*(2^a-1)*2^(w-1) fits int32 for every
    conv, and every requantization's acc*M + res*Mr + B fits int64."""
    graph = graph.copy()
    acc_limit = (1 << (ACCUMULATOR_BITS - 1)) - 1
    epi_limit = (1 << (EPILOGUE_BITS - 1)) - 1
    for node in graph.nodes:
        if node.op == "conv":
            bound = accumulator_bound(graph, node)
            if bound > acc_limit:
                raise UserError(f"layer '{node.name}': accumulator may overflow int32 "
                                f"(bound {bound} > {acc_limit}); use fewer activation or weight "
                                f"bits, or split the layer")
        elif node.op == "avgpool":
            h, w, _ = graph.tensors[node.inputs[0]].shape
            bound = h * w * 255
        else:
            continue
        node.attrs["accumulator_bound"] = bound
        for index, epilogue in enumerate(node.attrs.get("epilogues", [])):
            if epilogue["raw"]:
                worst = bound + int(np.abs(node.consts[f"bias{index}"].astype(np.int64)).max())
                limit = acc_limit
            else:
                worst = bound * int(np.abs(node.consts[f"M{index}"].astype(np.int64)).max()) + \
                    int(np.abs(node.consts[f"B{index}"].astype(np.int64)).max())
                if f"Mr{index}" in node.consts:
                    worst += 255 * int(np.abs(node.consts[f"Mr{index}"].astype(np.int64)).max())
                limit = epi_limit
            if worst > limit:
                raise UserError(f"layer '{node.name}': requantization may overflow "
                                f"(bound {worst} > {limit})")
    graph.passes.append("check_overflow")
    return graph


# The pass list, in order; the artifact records these names (provenance).
PIPELINE: tuple[tuple[str, Callable[[Graph], Graph]], ...] = (
    ("fold_batchnorm", fold_batchnorm),
    ("fold_scales", fold_scales),
    ("integer_codes", integer_codes),
    ("insert_requantize", insert_requantize),
    ("fuse_epilogues", fuse_epilogues),
    ("pack_bitplanes", pack_bitplanes),
    ("insert_bitpack", insert_bitpack),
    ("check_overflow", check_overflow),
)


def run_pipeline(graph: Graph) -> Graph:
    for _, run in PIPELINE:
        graph = run(graph)
    leftover = [n.name for n in graph.nodes
                if n.op not in ("conv", "maxpool", "avgpool", "bitpack")]
    if leftover:
        raise UserError(f"nodes left without an integer form: {', '.join(leftover)}")
    return graph
