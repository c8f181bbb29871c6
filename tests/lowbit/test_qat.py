"""QAT: LSQ quantizers (ranges, codes, gradients) and prepare()'s DeepliteRT defaults."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fleetforge.errors import UserError
from lowbit.architectures import ResNetStyle
from lowbit.config import QuantConfig
from lowbit.qat import ActQuant, LsqQuantizer, QuantConv2d, QuantLinear, code_range, prepare


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_weight_codes_stay_in_range_and_match_forward(bits: int) -> None:
    torch.manual_seed(bits)
    quant = LsqQuantizer(bits, signed=True, channels=6)
    w = torch.randn(6, 5, 3, 3)
    quant.initialize(w)
    codes = quant.codes(w)
    qmin, qmax = code_range(bits, True)
    assert codes.min() >= qmin and codes.max() <= qmax
    if bits == 1:
        assert set(codes.unique().tolist()) == {-1, 1}  # binary weights: never 0
    step = quant.scales().reshape(-1, 1, 1, 1).float()
    assert torch.allclose(quant(w), codes.float() * step, atol=1e-6)


def test_lsq_step_learns_with_scaled_gradient() -> None:
    quant = LsqQuantizer(2, signed=False)
    x = torch.rand(64) * 3
    quant.initialize(x)
    (quant(x) - x).pow(2).sum().backward()
    assert quant.step.grad is not None and quant.step.grad.abs().item() > 0


def test_activation_ranges() -> None:
    assert code_range(2, False) == (0, 3)
    assert code_range(2, True) == (-2, 1)
    assert code_range(8, True) == (-128, 127)


def test_prepare_uses_deeplite_defaults() -> None:
    prepared = prepare(ResNetStyle(width=8, blocks=(1, 1), classes=10, size=24).eval())
    bits = {name: (m.weight_quant.bits, m.input_quant.bits, m.input_quant.signed)
            for name, m in prepared.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))}
    assert bits["stem.0"] == (8, 8, False)            # first layer
    assert bits["stages.0.conv1"] == (2, 2, False)    # dense 3x3 after ReLU: unsigned 2-bit
    assert bits["stages.1.downsample.0"] == (8, 8, False)  # 1x1
    assert bits["fc"] == (8, 8, False)                # linear / last
    shortcut_quants = [m.quant for m in prepared.modules() if isinstance(m, ActQuant)]
    assert len(shortcut_quants) == 3  # two residual shortcuts and the average pool's input
    assert any(q.signed for q in shortcut_quants)     # the downsample's BN output can be negative


def test_overrides_and_grouped_convs() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    prepared = prepare(model, QuantConfig(low_bits=4, overrides=(("0", 2),)))
    widths = [m.weight_quant.bits for m in prepared.modules() if isinstance(m, QuantConv2d)]
    assert widths == [2, 8, 4, 8]  # override, depthwise, dense, last 1x1


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(UserError, match="bits must be one of"):
        QuantConfig(low_bits=9)
    with pytest.raises(UserError, match="unknown layer role"):
        QuantConfig(low_bit_roles=("everything",))
