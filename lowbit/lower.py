"""From a prepared (fake-quantized) torch model to the compiler's float-domain graph."""
from __future__ import annotations

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from fleetforge.errors import UserError
from lowbit.ir import Graph, Node, Tensor
from lowbit.qat import (ActQuant, LsqQuantizer, QuantConv2d, QuantLinear, module_of, node_kind,
                        residual_operands, trace)

SUPPORTED = ("QuantConv2d", "QuantLinear", "ActQuant", "BatchNorm2d", "ReLU", "MaxPool2d",
             "AdaptiveAvgPool2d(1)", "flatten", "residual add")


def _pair(value: object) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value), int(value))  # type: ignore[return-value]


def _hwc(meta_shape: torch.Size) -> tuple[int, int, int]:
    if len(meta_shape) == 4:
        return int(meta_shape[2]), int(meta_shape[3]), int(meta_shape[1])
    if len(meta_shape) == 2:
        return 1, 1, int(meta_shape[1])
    raise UserError(f"tensor of shape {tuple(meta_shape)}: only NCHW images and (N, C) vectors "
                    f"are supported")


def _f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy().copy()


class _Lowering:
    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.graph = Graph(nodes=[], tensors={}, input="", output="")
        self.value_of: dict[str, str] = {}  # fx node name -> tensor name

    def tensor(self, name: str, shape: tuple[int, int, int], **kwargs: object) -> str:
        name = self.graph.fresh(name)
        self.graph.tensors[name] = Tensor(name, shape, **kwargs)  # type: ignore[arg-type]
        return name

    def emit(self, op: str, name: str, inputs: list[str], outputs: list[str],
             attrs: dict | None = None, consts: dict | None = None) -> None:
        self.graph.nodes.append(Node(op, self.graph.fresh(name, node=True), inputs, outputs,
                                     attrs or {}, consts or {}))

    def quantize(self, quant: LsqQuantizer, source: str, name: str) -> str:
        shape = self.graph.tensors[source].shape
        codes = self.tensor(f"{name}.codes", shape, dtype="i8" if quant.signed else "u8",
                            bits=quant.bits, signed=quant.signed, scale=float(quant.scales()[0]))
        self.emit("quantize", f"{name}.quantize", [source], [codes],
                  {"bits": quant.bits, "signed": quant.signed, "qmin": quant.qmin,
                   "qmax": quant.qmax})
        return codes

    def layer(self, node: fx.Node, module: nn.Module, source: str, out_shape) -> str:
        name = str(node.target)
        codes = self.quantize(module.input_quant, source, name)  # type: ignore[arg-type]
        wq: LsqQuantizer = module.weight_quant  # type: ignore[assignment]
        weight = module.weight
        if isinstance(module, QuantLinear):
            if self.graph.tensors[source].shape[:2] != (1, 1):
                raise UserError(f"layer '{name}': a linear layer must read a pooled (1x1) tensor")
            weight = weight[:, :, None, None]
            attrs = {"kernel": (1, 1), "stride": (1, 1), "pad": (0, 0), "groups": 1}
        else:
            if module.dilation != (1, 1):
                raise UserError(f"layer '{name}': dilated convolutions are not supported")
            attrs = {"kernel": module.kernel_size, "stride": module.stride,
                     "pad": _pair(module.padding), "groups": module.groups}
        out_channels = weight.shape[0]
        bias = module.bias if module.bias is not None else torch.zeros(out_channels)
        attrs.update({"wbits": wq.bits, "abits": module.input_quant.bits,  # type: ignore[union-attr]
                      "weight_binary": wq.binary, "in_channels": weight.shape[1] * attrs["groups"],
                      "out_channels": out_channels, "layer": name})
        out = self.tensor(name, out_shape)
        self.emit("conv", name, [codes], [out], attrs,
                  {"weight_codes": wq.codes(weight).numpy().astype(np.int64),
                   "weight_step": _f64(wq.scales()), "bias": _f64(bias)})
        return out

    def run(self) -> Graph:
        gm = self.gm
        for node in gm.graph.nodes:
            kind = node_kind(gm, node)
            module = module_of(gm, node)
            shape = node.meta.get("tensor_meta")
            out_shape = _hwc(shape.shape) if shape is not None and hasattr(shape, "shape") else None
            args = [self.value_of[a.name] for a in node.args if isinstance(a, fx.Node)]
            if kind == "input":
                if self.graph.input:
                    raise UserError("the model must have exactly one input")
                self.graph.input = self.value_of[node.name] = self.tensor("input", out_shape)
            elif kind == "conv" and isinstance(module, QuantConv2d) or \
                    kind == "linear" and isinstance(module, QuantLinear):
                self.value_of[node.name] = self.layer(node, module, args[0], out_shape)
            elif kind in ("conv", "linear"):
                raise UserError(f"layer '{node.target}' is not quantized: compile the model "
                                f"returned by lowbit.qat.prepare()")
            elif kind == "actquant":
                assert isinstance(module, ActQuant)
                self.value_of[node.name] = self.quantize(module.quant, args[0], str(node.target))
            elif kind == "bn":
                assert isinstance(module, nn.BatchNorm2d)
                scale = _f64(module.weight) / np.sqrt(_f64(module.running_var) + module.eps)
                shift = _f64(module.bias) - _f64(module.running_mean) * scale
                out = self.tensor(str(node.target), out_shape)
                self.emit("bn", str(node.target), args, [out], {},
                          {"scale": scale, "shift": shift})
                self.value_of[node.name] = out
            elif kind == "relu":
                out = self.tensor(node.name, out_shape)
                self.emit("relu", node.name, args, [out])
                self.value_of[node.name] = out
            elif kind == "maxpool":
                if module is not None:
                    k, s, p = module.kernel_size, module.stride, module.padding
                    ceil, dil = module.ceil_mode, module.dilation
                else:
                    k = node.args[1]
                    s = node.kwargs.get("stride") or (node.args[2] if len(node.args) > 2 else k)
                    p = node.kwargs.get("padding", node.args[3] if len(node.args) > 3 else 0)
                    ceil, dil = node.kwargs.get("ceil_mode", False), node.kwargs.get("dilation", 1)
                if ceil or _pair(dil) != (1, 1):
                    raise UserError(f"max pool '{node.name}': ceil_mode and dilation are not supported")
                out = self.tensor(node.name, out_shape)
                self.emit("maxpool", node.name, args, [out],
                          {"kernel": _pair(k), "stride": _pair(s), "pad": _pair(p)})
                self.value_of[node.name] = out
            elif kind == "avgpool":
                if out_shape[:2] != (1, 1):
                    raise UserError(f"average pool '{node.name}': only global pooling to 1x1 "
                                    f"is supported")
                out = self.tensor(node.name, out_shape)
                self.emit("avgpool", node.name, args, [out])
                self.value_of[node.name] = out
            elif kind == "flatten":
                self.value_of[node.name] = args[0]
            elif kind == "add":
                main, shortcut = residual_operands(gm, node)
                out = self.tensor(node.name, out_shape)
                self.emit("add", node.name, [self.value_of[main.name], self.value_of[shortcut.name]],
                          [out])
                self.value_of[node.name] = out
            elif kind == "output":
                self.graph.output = args[0]
            else:
                raise UserError(f"node '{node.name}' ({node.op} {node.target}) has no integer "
                                f"lowering; supported: {', '.join(SUPPORTED)}")
        return self.graph


def lower(model: nn.Module, input_shape: tuple[int, int, int]) -> Graph:
    """The prepared model as a float-domain graph (shapes from one traced run on zeros)."""
    gm = model if isinstance(model, fx.GraphModule) else trace(model)
    gm = trace(gm)  # a fresh trace, so the quantized modules are leaves of this graph
    gm.eval()
    for name, module in gm.named_modules():
        if isinstance(module, LsqQuantizer) and not bool(module.initialized):
            raise UserError(f"quantizer '{name}' has never seen data: run a training or "
                            f"calibration batch through the prepared model before compiling")
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    graph = _Lowering(gm).run()
    graph.passes.append("lower")
    return graph
