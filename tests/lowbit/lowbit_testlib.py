"""Helpers of the low-bit tests: small prepared models (random weights, calibrated quantizers)
of each architecture family."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lowbit import artifact
from lowbit.architectures import DigitsNet, ResNetStyle, YoloStyle, randomize_batchnorm
from lowbit.compiler import compile_model
from lowbit.config import QuantConfig
from lowbit.qat import calibrate, prepare


@dataclass
class Compiled:
    name: str
    fp32: nn.Module
    prepared: nn.Module
    shape: tuple[int, int, int]
    blob: bytes

    @property
    def model(self) -> artifact.Artifact:
        return artifact.from_bytes(self.blob)


def calibrated(model: nn.Module, shape: tuple[int, int, int], config: QuantConfig | None = None,
               seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return calibrate(prepare(model, config), torch.rand(4, *shape))


def make(name: str, model: nn.Module, shape: tuple[int, int, int],
         config: QuantConfig | None = None) -> Compiled:
    model = randomize_batchnorm(model).eval()
    prepared = calibrated(model, shape, config)
    return Compiled(name, model, prepared, shape, compile_model(prepared, shape, name=name))


# Small members of each family: every operator, residual adds with and without a 1x1
# downsample, stride 2, channel counts that are not multiples of 64, 8-bit and low-bit layers.
SMALL = {
    "digits": lambda: (DigitsNet(width=16), (1, 8, 8)),
    "resnet": lambda: (ResNetStyle(width=8, blocks=(1, 1), classes=10, size=24), (3, 24, 24)),
    "yolo": lambda: (YoloStyle(width=8, classes=2, size=32), (3, 32, 32)),
}
