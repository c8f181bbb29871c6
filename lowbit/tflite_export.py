"""The int8 baseline: the fp32 network as a fully-integer TFLite model (the LiteRT converter's
scheme: int8 weights per output channel, symmetric; int8 activations per tensor with zero points,
calibrated min/max; int32 biases), written with the `tflite` flatbuffer builders, no TensorFlow.

BN is folded into the conv weights and ReLU fused into the op before it, as the converter does.
PyTorch's symmetric padding is written as an explicit PAD where TFLite's SAME would pad
differently (stride 2), so the int8 model computes the same network.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite
import torch
import torch.fx as fx
from torch import nn

from fleetforge.errors import UserError
from lowbit.qat import node_kind
from lowbit.tflite_reference import read_model

OPCODES = {"CONV_2D": (3, 3), "DEPTHWISE_CONV_2D": (4, 3), "FULLY_CONNECTED": (9, 4),
           "MAX_POOL_2D": (17, 2), "AVERAGE_POOL_2D": (1, 2), "ADD": (0, 2), "RESHAPE": (22, 1),
           "PAD": (34, 2)}  # name -> (builtin code, op version for int8)
INT8, INT32 = tflite.TensorType.INT8, tflite.TensorType.INT32


@dataclass
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: int
    scale: np.ndarray
    zero_point: np.ndarray
    data: np.ndarray | None = None
    quantized_dimension: int = 0


@dataclass
class OpSpec:
    op: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Int8Model:
    tensors: list[TensorSpec]
    ops: list[OpSpec]
    input: int
    output: int


def _act_quant(low: float, high: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) covering [low, high] and 0, as the converter does."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255.0 if high > low else 1.0
    zero_point = int(np.clip(round(-128 - low / scale), -128, 127))
    return scale, zero_point


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    w = conv.weight.detach().double().numpy()
    b = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(w.shape[0])
    if bn is not None:
        scale = bn.weight.detach().double().numpy() / np.sqrt(bn.running_var.double().numpy() + bn.eps)
        b = (b - bn.running_mean.double().numpy()) * scale + bn.bias.detach().double().numpy()
        w = w * scale[:, None, None, None]
    return w, b


class _Calibrator(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.ranges: dict[str, tuple[float, float]] = {}

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            low, high = float(out.min()), float(out.max())
            old = self.ranges.get(n.name, (low, high))
            self.ranges[n.name] = (min(old[0], low), max(old[1], high))
        return out


def _kind(gm: fx.GraphModule, node: fx.Node) -> str:
    return node_kind(gm, node)


class _Builder:
    def __init__(self, gm: fx.GraphModule, ranges: dict[str, tuple[float, float]]) -> None:
        self.gm, self.ranges = gm, ranges
        self.tensors: list[TensorSpec] = []
        self.ops: list[OpSpec] = []
        self.of: dict[str, int] = {}

    def add_tensor(self, spec: TensorSpec) -> int:
        self.tensors.append(spec)
        return len(self.tensors) - 1

    def activation(self, name: str, shape: tuple[int, ...], low: float, high: float) -> int:
        scale, zp = _act_quant(low, high)
        return self.add_tensor(TensorSpec(name, shape, INT8, np.array([scale]), np.array([zp])))

    def like(self, name: str, shape: tuple[int, ...], source: int) -> int:
        s = self.tensors[source]
        return self.add_tensor(TensorSpec(name, shape, INT8, s.scale.copy(), s.zero_point.copy()))

    def range_after(self, node: fx.Node) -> tuple[fx.Node, bool]:
        """The node whose output this op produces (itself, or a ReLU fused into it)."""
        users = list(node.users)
        if len(users) == 1 and _kind(self.gm, users[0]) == "relu":
            return users[0], True
        return node, False

    def padded(self, source: int, pad: tuple[int, int], kernel: tuple[int, int],
               stride: tuple[int, int], name: str) -> tuple[int, str]:
        """(input, padding) for a conv/pool: SAME or VALID when they match PyTorch's symmetric
        padding, else an explicit PAD op (filled with the zero point) and VALID."""
        _, h, w, c = self.tensors[source].shape
        if pad == (0, 0):
            return source, "VALID"
        same = all(p == k // 2 and s == 1 and k % 2 == 1 for p, k, s in zip(pad, kernel, stride))
        if same:
            return source, "SAME"
        shape = (1, h + 2 * pad[0], w + 2 * pad[1], c)
        paddings = self.add_tensor(TensorSpec(f"{name}/paddings", (4, 2), INT32, np.array([]),
                                              np.array([]), np.array([[0, 0], [pad[0], pad[0]],
                                                                      [pad[1], pad[1]], [0, 0]],
                                                                     dtype=np.int32)))
        out = self.like(f"{name}/padded", shape, source)
        self.ops.append(OpSpec("PAD", [source, paddings], [out]))
        return out, "VALID"

    def conv(self, node: fx.Node, conv: nn.Conv2d) -> None:
        users = list(node.users)
        bn = None
        last = node
        if len(users) == 1 and _kind(self.gm, users[0]) == "bn":
            bn = self.gm.get_submodule(users[0].target)
            last = users[0]
        result, relu = self.range_after(last)
        w, b = _fold_bn(conv, bn)
        source = self.of[node.args[0].name]
        x = self.tensors[source]
        depthwise = conv.groups > 1
        if depthwise and not (conv.groups == conv.in_channels == conv.out_channels):
            raise UserError(f"conv '{node.target}': TFLite has only dense and depthwise convs")
        w_scale = np.maximum(np.abs(w).reshape(w.shape[0], -1).max(axis=1), 1e-12) / 127.0
        w_codes = np.clip(np.round(w / w_scale[:, None, None, None]), -127, 127).astype(np.int8)
        if depthwise:  # TFLite depthwise filters are (1, KH, KW, C)
            w_codes = w_codes.transpose(1, 2, 3, 0)
            quant_dim = 3
        else:
            w_codes = w_codes.transpose(0, 2, 3, 1)
            quant_dim = 0
        name = str(node.target)
        weights = self.add_tensor(TensorSpec(f"{name}/weights", w_codes.shape, INT8, w_scale,
                                             np.zeros(len(w_scale), dtype=np.int64), w_codes,
                                             quant_dim))
        bias_scale = x.scale[0] * w_scale
        bias = self.add_tensor(TensorSpec(f"{name}/bias", (len(b),), INT32, bias_scale,
                                          np.zeros(len(b), dtype=np.int64),
                                          np.round(b / bias_scale).astype(np.int32)))
        kernel, stride = conv.kernel_size, conv.stride
        source, padding = self.padded(source, tuple(conv.padding), kernel, stride, name)
        shape = result.meta["tensor_meta"].shape
        out = self.activation(name, (1, shape[2], shape[3], shape[1]), *self.ranges[result.name])
        options = {"padding": padding, "stride": stride, "relu": relu}
        if depthwise:
            options["depth_multiplier"] = 1
        self.ops.append(OpSpec("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
                               [source, weights, bias], [out], options))
        self.of[result.name] = out
        if bn is not None:
            self.of[last.name] = out

    def linear(self, node: fx.Node, linear: nn.Linear) -> None:
        result, relu = self.range_after(node)
        source = self.of[node.args[0].name]
        x = self.tensors[source]
        w = linear.weight.detach().double().numpy()
        b = linear.bias.detach().double().numpy() if linear.bias is not None else np.zeros(w.shape[0])
        w_scale = max(float(np.abs(w).max()), 1e-12) / 127.0
        name = str(node.target)
        weights = self.add_tensor(TensorSpec(f"{name}/weights", w.shape, INT8, np.array([w_scale]),
                                             np.array([0]), np.clip(np.round(w / w_scale), -127,
                                                                    127).astype(np.int8)))
        bias = self.add_tensor(TensorSpec(f"{name}/bias", (len(b),), INT32,
                                          np.array([x.scale[0] * w_scale]), np.array([0]),
                                          np.round(b / (x.scale[0] * w_scale)).astype(np.int32)))
        out = self.activation(name, (1, w.shape[0]), *self.ranges[result.name])
        self.ops.append(OpSpec("FULLY_CONNECTED", [source, weights, bias], [out], {"relu": relu}))
        self.of[result.name] = out

    def run(self, input_shape: tuple[int, int, int]) -> Int8Model:
        gm = self.gm
        c, h, w = input_shape
        for node in gm.graph.nodes:
            if node.name in self.of:
                continue
            kind = _kind(gm, node)
            module = gm.get_submodule(node.target) if node.op == "call_module" else None
            if kind == "input":
                self.of[node.name] = self.activation("input", (1, h, w, c), *self.ranges[node.name])
            elif kind == "conv":
                self.conv(node, module)
            elif kind == "linear":
                self.linear(node, module)
            elif kind == "maxpool":
                k = module.kernel_size if module else node.args[1]
                s = module.stride if module else node.kwargs.get("stride", k)
                p = module.padding if module else node.kwargs.get("padding", 0)
                k, s, p = (tuple(v) if isinstance(v, (tuple, list)) else (v, v) for v in (k, s, p))
                source = self.of[node.args[0].name]
                source, padding = self.padded(source, p, k, s, node.name)
                shape = node.meta["tensor_meta"].shape
                out = self.like(node.name, (1, shape[2], shape[3], shape[1]), source)
                self.ops.append(OpSpec("MAX_POOL_2D", [source], [out],
                                       {"padding": padding, "stride": s, "filter": k}))
                self.of[node.name] = out
            elif kind == "avgpool":
                source = self.of[node.args[0].name]
                _, ih, iw, ch = self.tensors[source].shape
                out = self.like(node.name, (1, 1, 1, ch), source)
                self.ops.append(OpSpec("AVERAGE_POOL_2D", [source], [out],
                                       {"padding": "VALID", "stride": (1, 1), "filter": (ih, iw)}))
                self.of[node.name] = out
            elif kind == "flatten":
                source = self.of[node.args[0].name]
                size = int(np.prod(self.tensors[source].shape))
                shape_t = self.add_tensor(TensorSpec(f"{node.name}/shape", (2,), INT32, np.array([]),
                                                     np.array([]), np.array([1, size], np.int32)))
                out = self.like(node.name, (1, size), source)
                self.ops.append(OpSpec("RESHAPE", [source, shape_t], [out], {"shape": (1, size)}))
                self.of[node.name] = out
            elif kind == "add":
                result, relu = self.range_after(node)
                a, b = (self.of[x.name] for x in node.args[:2])
                out = self.activation(node.name, self.tensors[a].shape, *self.ranges[result.name])
                self.ops.append(OpSpec("ADD", [a, b], [out], {"relu": relu}))
                self.of[result.name] = out
            elif kind == "relu":
                raise UserError(f"ReLU '{node.name}' does not follow a conv, linear or add")
            elif kind == "output":
                return Int8Model(self.tensors, self.ops, 0, self.of[node.args[0].name])
            else:
                raise UserError(f"node '{node.name}' has no TFLite int8 export")
        raise UserError("the model has no output")


def to_int8_model(model: nn.Module, calibration: torch.Tensor) -> Int8Model:
    """The int8 graph of an fp32 model, calibrated on a batch of inputs (N, C, H, W)."""
    from torch.fx.passes.shape_prop import ShapeProp

    gm = fx.symbolic_trace(model.eval())
    with torch.no_grad():
        ShapeProp(gm).propagate(calibration[:1])
        calibrator = _Calibrator(gm)
        for batch in calibration.split(64):
            calibrator.run(batch)
    return _Builder(gm, calibrator.ranges).run(tuple(calibration.shape[1:]))


def _byte_vector(b: flatbuffers.Builder, data: bytes) -> int:
    b.StartVector(1, len(data), 16)  # TFLite wants buffers 16-byte aligned
    b.head -= len(data)
    b.Bytes[b.head:b.head + len(data)] = data
    return b.EndVector()


def _offsets(b: flatbuffers.Builder, start, items: list[int]) -> int:
    start(b, len(items))
    for item in reversed(items):
        b.PrependUOffsetTRelative(item)
    return b.EndVector()


def _options(b: flatbuffers.Builder, op: OpSpec) -> tuple[int, int]:
    o = op.options
    act = tflite.ActivationFunctionType.RELU if o.get("relu") else tflite.ActivationFunctionType.NONE
    padding = {"SAME": tflite.Padding.SAME, "VALID": tflite.Padding.VALID}.get(o.get("padding"), 0)
    if op.op == "CONV_2D":
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, padding)
        tflite.Conv2DOptionsAddStrideH(b, o["stride"][0])
        tflite.Conv2DOptionsAddStrideW(b, o["stride"][1])
        tflite.Conv2DOptionsAddDilationHFactor(b, 1)
        tflite.Conv2DOptionsAddDilationWFactor(b, 1)
        tflite.Conv2DOptionsAddFusedActivationFunction(b, act)
        return tflite.BuiltinOptions.Conv2DOptions, tflite.Conv2DOptionsEnd(b)
    if op.op == "DEPTHWISE_CONV_2D":
        tflite.DepthwiseConv2DOptionsStart(b)
        tflite.DepthwiseConv2DOptionsAddPadding(b, padding)
        tflite.DepthwiseConv2DOptionsAddStrideH(b, o["stride"][0])
        tflite.DepthwiseConv2DOptionsAddStrideW(b, o["stride"][1])
        tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
        tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, 1)
        tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, 1)
        tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, act)
        return tflite.BuiltinOptions.DepthwiseConv2DOptions, tflite.DepthwiseConv2DOptionsEnd(b)
    if op.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        tflite.Pool2DOptionsStart(b)
        tflite.Pool2DOptionsAddPadding(b, padding)
        tflite.Pool2DOptionsAddStrideH(b, o["stride"][0])
        tflite.Pool2DOptionsAddStrideW(b, o["stride"][1])
        tflite.Pool2DOptionsAddFilterHeight(b, o["filter"][0])
        tflite.Pool2DOptionsAddFilterWidth(b, o["filter"][1])
        tflite.Pool2DOptionsAddFusedActivationFunction(b, act)
        return tflite.BuiltinOptions.Pool2DOptions, tflite.Pool2DOptionsEnd(b)
    if op.op == "FULLY_CONNECTED":
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, act)
        return tflite.BuiltinOptions.FullyConnectedOptions, tflite.FullyConnectedOptionsEnd(b)
    if op.op == "ADD":
        tflite.AddOptionsStart(b)
        tflite.AddOptionsAddFusedActivationFunction(b, act)
        return tflite.BuiltinOptions.AddOptions, tflite.AddOptionsEnd(b)
    if op.op == "RESHAPE":
        shape = b.CreateNumpyVector(np.array(o["shape"], dtype=np.int32))
        tflite.ReshapeOptionsStart(b)
        tflite.ReshapeOptionsAddNewShape(b, shape)
        return tflite.BuiltinOptions.ReshapeOptions, tflite.ReshapeOptionsEnd(b)
    if op.op == "PAD":
        tflite.PadOptionsStart(b)
        return tflite.BuiltinOptions.PadOptions, tflite.PadOptionsEnd(b)
    raise ValueError(op.op)


def to_flatbuffer(model: Int8Model, description: str = "FleetForge int8 baseline") -> bytes:
    """Serialize as a .tflite flatbuffer (schema version 3)."""
    b = flatbuffers.Builder(1 << 20)
    buffers = [(tflite.BufferStart(b), tflite.BufferEnd(b))[1]]  # buffer 0: empty, by convention
    tensor_offsets = []
    for spec in model.tensors:
        buffer_index = 0
        if spec.data is not None:
            data = _byte_vector(b, np.ascontiguousarray(spec.data).tobytes())
            tflite.BufferStart(b)
            tflite.BufferAddData(b, data)
            buffers.append(tflite.BufferEnd(b))
            buffer_index = len(buffers) - 1
        quant = 0
        if len(spec.scale):
            scale = b.CreateNumpyVector(spec.scale.astype(np.float32))
            zero = b.CreateNumpyVector(spec.zero_point.astype(np.int64))
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zero)
            tflite.QuantizationParametersAddQuantizedDimension(b, spec.quantized_dimension)
            quant = tflite.QuantizationParametersEnd(b)
        name = b.CreateString(spec.name)
        shape = b.CreateNumpyVector(np.array(spec.shape, dtype=np.int32))
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, spec.dtype)
        tflite.TensorAddBuffer(b, buffer_index)
        tflite.TensorAddName(b, name)
        if quant:
            tflite.TensorAddQuantization(b, quant)
        tensor_offsets.append(tflite.TensorEnd(b))
    used = sorted({op.op for op in model.ops}, key=lambda n: OPCODES[n][0])
    codes = []
    for name in used:
        code, version = OPCODES[name]
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, version)
        codes.append(tflite.OperatorCodeEnd(b))
    ops = []
    for op in model.ops:
        inputs = b.CreateNumpyVector(np.array(op.inputs, dtype=np.int32))
        outputs = b.CreateNumpyVector(np.array(op.outputs, dtype=np.int32))
        options_type, options = _options(b, op)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, used.index(op.op))
        tflite.OperatorAddInputs(b, inputs)
        tflite.OperatorAddOutputs(b, outputs)
        tflite.OperatorAddBuiltinOptionsType(b, options_type)
        tflite.OperatorAddBuiltinOptions(b, options)
        ops.append(tflite.OperatorEnd(b))
    tensors_vec = _offsets(b, tflite.SubGraphStartTensorsVector, tensor_offsets)
    ops_vec = _offsets(b, tflite.SubGraphStartOperatorsVector, ops)
    inputs = b.CreateNumpyVector(np.array([model.input], dtype=np.int32))
    outputs = b.CreateNumpyVector(np.array([model.output], dtype=np.int32))
    graph_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_vec)
    tflite.SubGraphAddInputs(b, inputs)
    tflite.SubGraphAddOutputs(b, outputs)
    tflite.SubGraphAddOperators(b, ops_vec)
    tflite.SubGraphAddName(b, graph_name)
    subgraph = tflite.SubGraphEnd(b)
    codes_vec = _offsets(b, tflite.ModelStartOperatorCodesVector, codes)
    subgraphs = _offsets(b, tflite.ModelStartSubgraphsVector, [subgraph])
    buffers_vec = _offsets(b, tflite.ModelStartBuffersVector, buffers)
    text = b.CreateString(description)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes_vec)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddDescription(b, text)
    tflite.ModelAddBuffers(b, buffers_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def export_int8(model: nn.Module, calibration: torch.Tensor) -> bytes:
    """fp32 torch model + calibration inputs -> .tflite bytes (int8 in, int8 out)."""
    return to_flatbuffer(to_int8_model(model, calibration))


def quantize_input(model_bytes: bytes, images: np.ndarray) -> np.ndarray:
    """NCHW float images -> the int8 NHWC input codes of the exported model."""
    parsed = read_model(model_bytes)
    spec = parsed.tensors[parsed.input]
    x = np.asarray(images, dtype=np.float64).transpose(0, 2, 3, 1)
    return np.clip(np.round(x / spec.scale[0]) + spec.zero_point[0], -128, 127).astype(np.int8)
