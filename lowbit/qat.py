"""Quantization-aware training: LSQ fake-quant modules and `prepare(model, config)`.

LSQ (Esser et al., "Learned Step Size Quantization", ICLR 2020): a code is
clamp(round(x / s), qmin, qmax) and the step s is a trained parameter whose gradient is scaled by
1 / sqrt(N * qmax). Weights get one step per output channel, activations one per tensor.
Signed codes are two's complement ranges [-2^(b-1), 2^(b-1)-1]; 1-bit weights are -1/+1 (sign).
Activations are unsigned [0, 2^b-1] when the graph proves them non-negative (after ReLU, or the
model input with QuantConfig's default), signed otherwise.

The compiler (lowbit.compiler) reads these modules back: `codes()` is the one definition of how a
float tensor becomes integer codes, shared by training and compilation.
"""
from __future__ import annotations

import math
import operator

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from fleetforge.errors import UserError
from lowbit.config import QuantConfig


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """(qmin, qmax) of the codes; 1-bit signed is the binary set {-1, +1}."""
    if not signed:
        return 0, (1 << bits) - 1
    if bits == 1:
        return -1, 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return (torch.round(x) - x).detach() + x


def _sign_ste(x: torch.Tensor) -> torch.Tensor:
    binary = torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))
    return (binary - x).detach() + x


def _grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    return (x - x * scale).detach() + x * scale


class LsqQuantizer(nn.Module):
    """Fake quantization with a learned step: per tensor, or per channel along dim 0."""

    def __init__(self, bits: int, signed: bool, channels: int = 1) -> None:
        super().__init__()
        self.bits = bits
        self.signed = signed
        self.qmin, self.qmax = code_range(bits, signed)
        self.step = nn.Parameter(torch.ones(channels))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @property
    def binary(self) -> bool:
        return self.signed and self.bits == 1

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}, channels={self.step.numel()}"

    def _shaped_step(self, x: torch.Tensor) -> torch.Tensor:
        step = self.step.abs() + 1e-8
        if self.step.numel() == 1:
            return step.reshape(())
        return step.reshape(-1, *([1] * (x.dim() - 1)))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """LSQ's initial step, 2 * mean|x| / sqrt(qmax) (mean|x| for binary codes)."""
        dims = tuple(range(1, x.dim())) if self.step.numel() > 1 else tuple(range(x.dim()))
        mean_abs = x.detach().abs().mean(dim=dims) if dims else x.detach().abs()
        scale = mean_abs if self.binary else 2 * mean_abs / math.sqrt(self.qmax)
        self.step.copy_(scale.clamp(min=1e-5).reshape(self.step.shape))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            self.initialize(x)
        per_step = x.numel() / self.step.numel()
        step = _grad_scale(self._shaped_step(x), 1.0 / math.sqrt(per_step * self.qmax))
        scaled = x / step
        if self.binary:
            return _sign_ste(scaled.clamp(-1, 1)) * step
        return _round_ste(scaled.clamp(self.qmin, self.qmax)) * step

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes of x (int64), exactly as forward() rounds them."""
        scaled = x / self._shaped_step(x)
        if self.binary:
            return torch.where(scaled >= 0, 1, -1).to(torch.int64)
        return torch.round(scaled.clamp(self.qmin, self.qmax)).to(torch.int64)

    def scales(self) -> torch.Tensor:
        """The step(s) as float64 (the compiler folds them into integer multipliers)."""
        return (self.step.detach().abs() + 1e-8).to(torch.float64)


class ActQuant(nn.Module):
    """A per-tensor activation quantizer placed in the graph by prepare() (before pooling and on
    residual shortcuts, where the integer graph needs codes)."""

    def __init__(self, bits: int, signed: bool) -> None:
        super().__init__()
        self.quant = LsqQuantizer(bits, signed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(x)


class QuantConv2d(nn.Conv2d):
    """nn.Conv2d reading fake-quantized inputs with fake-quantized weights (per output channel)."""

    def __init__(self, *args: object, weight_bits: int, act_bits: int, act_signed: bool,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.weight_quant = LsqQuantizer(weight_bits, True, self.out_channels)
        self.input_quant = LsqQuantizer(act_bits, act_signed)
        self.weight_quant.initialize(self.weight)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, weight_bits: int, act_bits: int,
                   act_signed: bool) -> QuantConv2d:
        if not isinstance(conv.padding, tuple) or conv.padding_mode != "zeros":
            raise UserError(f"conv {conv}: only explicit zero padding is supported")
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                  padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                  bias=conv.bias is not None, weight_bits=weight_bits, act_bits=act_bits,
                  act_signed=act_signed)
        with torch.no_grad():
            new.weight.copy_(conv.weight)
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        new.weight_quant.initialize(new.weight)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.input_quant(x), self.weight_quant(self.weight), self.bias)


class QuantLinear(nn.Linear):
    """nn.Linear with fake-quantized inputs and per-output-channel fake-quantized weights."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 weight_bits: int, act_bits: int, act_signed: bool) -> None:
        super().__init__(in_features, out_features, bias)
        self.weight_quant = LsqQuantizer(weight_bits, True, out_features)
        self.input_quant = LsqQuantizer(act_bits, act_signed)
        self.weight_quant.initialize(self.weight)

    @classmethod
    def from_float(cls, linear: nn.Linear, weight_bits: int, act_bits: int,
                   act_signed: bool) -> QuantLinear:
        new = cls(linear.in_features, linear.out_features, linear.bias is not None,
                  weight_bits=weight_bits, act_bits=act_bits, act_signed=act_signed)
        with torch.no_grad():
            new.weight.copy_(linear.weight)
            if linear.bias is not None:
                new.bias.copy_(linear.bias)
        new.weight_quant.initialize(new.weight)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.input_quant(x), self.weight_quant(self.weight), self.bias)


QUANT_MODULES = (QuantConv2d, QuantLinear, ActQuant)


class LowbitTracer(fx.Tracer):
    """torch.fx tracer that keeps the quantized modules whole (leaves), as it does nn modules."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, QUANT_MODULES) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    """The model as a torch.fx GraphModule (quantized modules as leaves)."""
    try:
        graph = LowbitTracer().trace(model)
    except Exception as error:  # fx raises many types; the user needs the one line
        raise UserError(f"torch.fx cannot trace {type(model).__name__}: {error} "
                        f"(data-dependent control flow must be removed)") from None
    return fx.GraphModule(model, graph, type(model).__name__)


ADD_TARGETS = (operator.add, operator.iadd, torch.add)
AVGPOOL_FUNCTIONS = (F.adaptive_avg_pool2d, F.avg_pool2d)
RELU_FUNCTIONS = (F.relu, torch.relu)
MAXPOOL_FUNCTIONS = (F.max_pool2d,)
FLATTEN_FUNCTIONS = (torch.flatten,)


def module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None  # type: ignore[arg-type]


def node_kind(gm: fx.GraphModule, node: fx.Node) -> str:
    """A node's kind in the terms the quantizer and the compiler use: input, conv, linear, bn,
    relu, maxpool, avgpool, flatten, add, actquant, output, or other."""
    if node.op == "placeholder":
        return "input"
    if node.op == "output":
        return "output"
    module = module_of(gm, node)
    if module is not None:
        for kinds, name in (((nn.Conv2d,), "conv"), ((nn.Linear,), "linear"),
                            ((nn.BatchNorm2d,), "bn"), ((nn.ReLU,), "relu"),
                            ((nn.MaxPool2d,), "maxpool"),
                            ((nn.AdaptiveAvgPool2d, nn.AvgPool2d), "avgpool"),
                            ((nn.Flatten,), "flatten"), ((ActQuant,), "actquant")):
            if isinstance(module, kinds):
                return name
        return "other"
    if node.op == "call_function":
        for functions, name in ((ADD_TARGETS, "add"), (RELU_FUNCTIONS, "relu"),
                                (MAXPOOL_FUNCTIONS, "maxpool"), (AVGPOOL_FUNCTIONS, "avgpool"),
                                (FLATTEN_FUNCTIONS, "flatten")):
            if node.target in functions:
                return name
    if node.op == "call_method" and node.target in ("flatten", "view", "reshape"):
        return "flatten"
    if node.op == "call_method" and node.target == "relu":
        return "relu"
    return "other"


def is_non_negative(gm: fx.GraphModule, node: fx.Node, signed_input: bool) -> bool:
    """Whether the graph proves a tensor is >= 0 (so unsigned codes lose nothing)."""
    kind = node_kind(gm, node)
    if kind == "input":
        return not signed_input
    if kind == "relu":
        return True
    if kind in ("maxpool", "avgpool", "flatten"):
        return is_non_negative(gm, node.args[0], signed_input)  # type: ignore[arg-type]
    if kind == "actquant":
        return not module_of(gm, node).quant.signed  # type: ignore[union-attr]
    return False


def layer_roles(gm: fx.GraphModule, node: fx.Node) -> tuple[str, ...]:
    """Roles of a conv/linear node (see config.ROLES)."""
    module = module_of(gm, node)
    roles: list[str] = []
    source = node.args[0]
    while isinstance(source, fx.Node) and node_kind(gm, source) in ("flatten", "actquant"):
        source = source.args[0]
    if isinstance(source, fx.Node) and source.op == "placeholder":
        roles.append("first")
    users = list(node.users)
    if any(u.op == "output" for u in users):
        roles.append("last")
    if isinstance(module, nn.Linear):
        roles.append("linear")
    elif isinstance(module, nn.Conv2d):
        if module.groups > 1:
            roles.append("grouped")
        elif module.kernel_size == (1, 1):
            roles.append("pointwise")
        else:
            roles.append("dense")
    return tuple(roles)


def conv_producer(gm: fx.GraphModule, node: fx.Node) -> nn.Conv2d | None:
    """The conv whose (batch-normalized) output this node is, if it is one."""
    if node_kind(gm, node) == "bn":
        node = node.args[0]  # type: ignore[assignment]
    module = module_of(gm, node)
    return module if isinstance(module, nn.Conv2d) else None


def residual_operands(gm: fx.GraphModule, add: fx.Node) -> tuple[fx.Node, fx.Node]:
    """(main, shortcut) of a residual add: the main branch is a conv(+BN) whose accumulator the
    compiler extends with the shortcut's codes; with two conv branches, the larger kernel (the
    3x3 of the block, not its 1x1 downsample) is the main one."""
    a, b = add.args[0], add.args[1]
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)):
        raise UserError(f"add '{add.name}': only tensor + tensor residual adds are supported")
    conv_a, conv_b = conv_producer(gm, a), conv_producer(gm, b)
    if conv_a is None and conv_b is None:
        raise UserError(f"add '{add.name}': neither operand is a conv(+BN) output; the integer "
                        f"graph fuses a residual add into the conv that produces one operand")
    if conv_b is not None and (conv_a is None or conv_b.kernel_size > conv_a.kernel_size):
        return b, a
    return a, b


def prepare(model: nn.Module, config: QuantConfig | None = None, *,
            signed_input: bool = False) -> fx.GraphModule:
    """A fake-quantized copy of `model` for QAT: convs and linears become QuantConv2d/QuantLinear
    at the widths `config` gives their roles, and ActQuant nodes go where the integer graph needs
    codes (before average pooling, on residual shortcuts). `signed_input`: the model input can be
    negative (default: images in [0, 1])."""
    config = config or QuantConfig()
    gm = trace(model)
    for node in list(gm.graph.nodes):
        kind = node_kind(gm, node)
        if kind not in ("conv", "linear"):
            continue
        module = module_of(gm, node)
        bits = config.bits_for(str(node.target), layer_roles(gm, node))
        signed = not is_non_negative(gm, node.args[0], signed_input)
        swap = (QuantConv2d if kind == "conv" else QuantLinear).from_float(
            module, bits.weight, bits.activation, signed)  # type: ignore[arg-type]
        swap.train(module.training)  # type: ignore[union-attr]
        _set_submodule(gm, str(node.target), swap)
    count = 0
    for node in list(gm.graph.nodes):
        kind = node_kind(gm, node)
        if kind == "avgpool":
            targets = [node.args[0]]
        elif kind == "add":
            targets = [residual_operands(gm, node)[1]]
        else:
            continue
        for source in targets:
            name = f"lowbit_quant{count}"
            count += 1
            gm.add_submodule(name, ActQuant(config.high_bits,
                                            not is_non_negative(gm, source, signed_input)))
            with gm.graph.inserting_before(node):
                quantized = gm.graph.call_module(name, (source,))
            node.replace_input_with(source, quantized)
    gm.graph.lint()
    gm.recompile()
    return gm


@torch.no_grad()
def calibrate(prepared: nn.Module, images: torch.Tensor) -> nn.Module:
    """Initialize every quantizer's step from one batch (LSQ's init; with no QAT epochs this is
    post-training quantization). Batch norms keep their statistics (eval mode); returns the
    model in eval mode."""
    prepared.eval()
    for module in prepared.modules():
        if isinstance(module, LsqQuantizer) and not bool(module.initialized):
            module.train()
    prepared(images)
    return prepared.eval()


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, module)
