"""A numpy integer reference of TFLite's int8 kernels (the reference kernels' arithmetic:
gemmlowp-style fixed-point multipliers), run on a .tflite file read back with `tflite`.

LiteRT's reference op resolver (BUILTIN_REF) must agree with it bit for bit; XNNPACK uses its
own (fp32-scale) requantization and may differ by one code, which the tests bound.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tflite

OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
NP_TYPES = {tflite.TensorType.INT8: np.int8, tflite.TensorType.INT32: np.int32,
            tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.UINT8: np.uint8}


@dataclass
class ReadTensor:
    name: str
    shape: tuple[int, ...]
    scale: np.ndarray
    zero_point: np.ndarray
    data: np.ndarray | None


@dataclass
class ReadOp:
    op: str
    inputs: list[int]
    outputs: list[int]
    options: object


@dataclass
class ReadModel:
    tensors: list[ReadTensor]
    ops: list[ReadOp]
    input: int
    output: int


def read_model(blob: bytes) -> ReadModel:
    model = tflite.Model.GetRootAsModel(blob, 0)
    graph = model.Subgraphs(0)
    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        q = t.Quantization()
        scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else np.array([])
        zp = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else np.array([])
        buffer = model.Buffers(t.Buffer())
        data = None
        if buffer.DataLength():
            data = np.frombuffer(buffer.DataAsNumpy().tobytes(), NP_TYPES[t.Type()]).reshape(
                tuple(t.ShapeAsNumpy()))
        tensors.append(ReadTensor(t.Name().decode(), tuple(int(d) for d in t.ShapeAsNumpy()),
                                  np.asarray(scale, np.float64), np.asarray(zp, np.int64), data))
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = OP_NAMES[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        options = None
        table = op.BuiltinOptions()
        if table is not None:
            kind = {"CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
                    "MAX_POOL_2D": tflite.Pool2DOptions, "AVERAGE_POOL_2D": tflite.Pool2DOptions,
                    "FULLY_CONNECTED": tflite.FullyConnectedOptions, "ADD": tflite.AddOptions}.get(name)
            if kind is not None:
                options = kind()
                options.Init(table.Bytes, table.Pos)
        ops.append(ReadOp(name, list(op.InputsAsNumpy()), list(op.OutputsAsNumpy()), options))
    return ReadModel(tensors, ops, int(graph.Inputs(0)), int(graph.Outputs(0)))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = M0 * 2^(shift - 31), M0 in [2^30, 2^31)."""
    if real == 0:
        return 0, 0
    mantissa, shift = np.frexp(real)
    m0 = int(round(mantissa * (1 << 31)))
    if m0 == 1 << 31:
        m0 //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return m0, int(shift)


def _srdhm(a: np.ndarray, b: int) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul (int32 x int32 -> high 32 bits, rounded)."""
    a = a.astype(np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    result = np.where(total >= 0, total >> 31, -((-total) >> 31))  # C division truncates
    overflow = (a == -(1 << 31)) & (b == -(1 << 31))
    return np.where(overflow, (1 << 31) - 1, result)


def _rdbp(x: np.ndarray, exponent: int) -> np.ndarray:
    """RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, m0: int, shift: int) -> np.ndarray:
    left = max(shift, 0)
    right = max(-shift, 0)
    return _rdbp(_srdhm(x.astype(np.int64) * (1 << left), m0), right)


def _act_range(options, zp: int) -> tuple[int, int]:
    relu = options is not None and options.FusedActivationFunction() == tflite.ActivationFunctionType.RELU
    return (max(-128, zp) if relu else -128), 127


def _pad_amounts(padding: int, size: int, kernel: int, stride: int) -> tuple[int, int]:
    if padding == tflite.Padding.VALID:
        return 0, (size - kernel) // stride + 1
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, out


def _windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, pads: tuple[int, int],
             outs: tuple[int, int], fill: int) -> np.ndarray:
    (pt, pl), (oh, ow) = pads, outs
    h, w = x.shape[1:3]
    bottom = max((oh - 1) * sh + kh - h - pt, 0)
    right = max((ow - 1) * sw + kw - w - pl, 0)
    padded = np.pad(x, ((0, 0), (pt, bottom), (pl, right), (0, 0)), constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))
    return view[:, ::sh, ::sw][:, :oh, :ow]  # (1, oh, ow, C, kh, kw)


def run(model: ReadModel, x: np.ndarray) -> np.ndarray:
    """Run on int8 input codes (1, H, W, C); returns the int8 output codes."""
    values: dict[int, np.ndarray] = {model.input: np.asarray(x, np.int8)}
    T = model.tensors
    for op in model.ops:
        a = values[op.inputs[0]].astype(np.int64)
        ti, to = T[op.inputs[0]], T[op.outputs[0]]
        zi, zo = int(ti.zero_point[0]), int(to.zero_point[0])
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w, bias = T[op.inputs[1]], T[op.inputs[2]]
            o = op.options
            sh, sw = o.StrideH(), o.StrideW()
            if op.op == "CONV_2D":
                cout, kh, kw, _ = w.shape
            else:
                _, kh, kw, cout = w.shape
            ph, oh = _pad_amounts(o.Padding(), a.shape[1], kh, sh)
            pw, ow = _pad_amounts(o.Padding(), a.shape[2], kw, sw)
            win = _windows(a - zi, kh, kw, sh, sw, (ph, pw), (oh, ow), 0).astype(np.float64)
            if op.op == "CONV_2D":
                cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(oh * ow, -1)
                acc = np.rint(cols @ w.data.reshape(cout, -1).T.astype(np.float64)).astype(np.int64)
            else:
                filt = w.data[0].transpose(2, 0, 1).astype(np.float64)  # (C, kh, kw)
                acc = np.rint((win[0] * filt).sum(axis=(-1, -2))).astype(np.int64).reshape(oh * ow, cout)
            acc += bias.data.astype(np.int64)
            out = np.empty_like(acc)
            for c in range(cout):
                m0, shift = quantize_multiplier(ti.scale[0] * w.scale[c] / to.scale[0])
                out[:, c] = multiply_by_quantized_multiplier(acc[:, c], m0, shift)
            lo, hi = _act_range(o, zo)
            values[op.outputs[0]] = np.clip(out + zo, lo, hi).astype(np.int8).reshape(1, oh, ow, cout)
        elif op.op == "FULLY_CONNECTED":
            w, bias = T[op.inputs[1]], T[op.inputs[2]]
            acc = (a.reshape(1, -1) - zi) @ w.data.astype(np.int64).T + bias.data.astype(np.int64)
            m0, shift = quantize_multiplier(ti.scale[0] * w.scale[0] / to.scale[0])
            out = multiply_by_quantized_multiplier(acc, m0, shift)
            lo, hi = _act_range(op.options, zo)
            values[op.outputs[0]] = np.clip(out + zo, lo, hi).astype(np.int8)
        elif op.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            o = op.options
            kh, kw, sh, sw = o.FilterHeight(), o.FilterWidth(), o.StrideH(), o.StrideW()
            ph, oh = _pad_amounts(o.Padding(), a.shape[1], kh, sh)
            pw, ow = _pad_amounts(o.Padding(), a.shape[2], kw, sw)
            lo, hi = _act_range(o, zo)
            if op.op == "MAX_POOL_2D":
                win = _windows(a, kh, kw, sh, sw, (ph, pw), (oh, ow), -(1 << 40))
                out = win.max(axis=(-1, -2))
            else:
                win = _windows(a, kh, kw, sh, sw, (ph, pw), (oh, ow), 0)
                count = _windows(np.ones_like(a), kh, kw, sh, sw, (ph, pw), (oh, ow), 0).sum(axis=(-1, -2))
                total = win.sum(axis=(-1, -2))
                out = np.where(total > 0, (total + count // 2) // count,
                               -((-(total - count // 2)) // count))
            values[op.outputs[0]] = np.clip(out, lo, hi).astype(np.int8)
        elif op.op == "ADD":
            b = values[op.inputs[1]].astype(np.int64)
            tb = T[op.inputs[1]]
            left = 20
            twice = 2 * max(ti.scale[0], tb.scale[0])
            m1, s1 = quantize_multiplier(ti.scale[0] / twice)
            m2, s2 = quantize_multiplier(tb.scale[0] / twice)
            mo, so = quantize_multiplier(twice / ((1 << left) * to.scale[0]))
            x1 = multiply_by_quantized_multiplier((a - zi) * (1 << left), m1, s1)
            x2 = multiply_by_quantized_multiplier((b - int(tb.zero_point[0])) * (1 << left), m2, s2)
            out = multiply_by_quantized_multiplier(x1 + x2, mo, so) + zo
            lo, hi = _act_range(op.options, zo)
            values[op.outputs[0]] = np.clip(out, lo, hi).astype(np.int8)
        elif op.op == "RESHAPE":
            values[op.outputs[0]] = values[op.inputs[0]].reshape(to.shape)
        elif op.op == "PAD":
            pads = T[op.inputs[1]].data
            values[op.outputs[0]] = np.pad(values[op.inputs[0]], [tuple(p) for p in pads],
                                           constant_values=zi).astype(np.int8)
        else:
            raise ValueError(f"no reference for {op.op}")
    return values[model.output]
