"""The networks FleetForge measures: a digits classifier (accuracy), a ResNet-style and a
YOLO-style (Darknet) backbone (speed, at realistic input sizes; random weights are fine there).

Each is a plain torch module the compiler can trace: convolutions, batch norm, ReLU, max/average
pooling, residual adds, a final conv or linear layer. ARCHITECTURES is the table `model.compile`
and the bench choose from.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU()]


class DigitsNet(nn.Module):
    """8x8 grey digits (scikit-learn's bundled set) -> 10 classes. Four 3x3 convolutions hold
    almost all weights, so low-bit quantization shrinks nearly the whole model."""

    input_shape = (1, 8, 8)

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn_relu(1, width), *conv_bn_relu(width, width), nn.MaxPool2d(2),
            *conv_bn_relu(width, width), *conv_bn_relu(width, width), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions and a shortcut (a 1x1 conv when the shape
    changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                         nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)


class ResNetStyle(nn.Module):
    """ResNet-18's layout (7x7 stem, max pool, four stages of two basic blocks, 64..512 wide)."""

    def __init__(self, width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2),
                 classes: int = 1000, size: int = 224) -> None:
        super().__init__()
        self.input_shape = (3, size, size)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        stages: list[nn.Module] = []
        cin = width
        for index, count in enumerate(blocks):
            cout = width << index
            for block in range(count):
                stages.append(BasicBlock(cin, cout, 2 if index > 0 and block == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


class YoloStyle(nn.Module):
    """A Darknet-19-style detection backbone (3x3 convs with 1x1 bottlenecks between max pools)
    and a 1x1 detection head: 3 anchors x (5 + classes) outputs per grid cell.
    ReLU instead of YOLO's leaky ReLU: the integer graph keeps activations unsigned."""

    def __init__(self, width: int = 32, classes: int = 20, size: int = 256) -> None:
        super().__init__()
        self.input_shape = (3, size, size)
        w = width
        layers: list[nn.Module] = [*conv_bn_relu(3, w), nn.MaxPool2d(2),
                                   *conv_bn_relu(w, 2 * w), nn.MaxPool2d(2)]
        cin = 2 * w
        for stage in range(2, 5):
            cout = w << stage
            layers += [*conv_bn_relu(cin, cout), *conv_bn_relu(cout, cout // 2, 1),
                       *conv_bn_relu(cout // 2, cout)]
            if stage < 4:
                layers.append(nn.MaxPool2d(2))
            cin = cout
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Conv2d(cin, 3 * (5 + classes), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@dataclass(frozen=True)
class Architecture:
    """A network of the table: how to build it, at the size its users run it."""

    name: str
    build: Callable[[], nn.Module]
    description: str


ARCHITECTURES = {a.name: a for a in (
    Architecture("digits", DigitsNet, "4-conv classifier for 8x8 digits (scikit-learn)"),
    Architecture("resnet18", lambda: ResNetStyle(), "ResNet-18 layout, 3x224x224, 1000 classes"),
    Architecture("yolo", lambda: YoloStyle(), "Darknet-19-style backbone + head, 3x256x256"),
)}


def input_shape(model: nn.Module) -> tuple[int, int, int]:
    """(C, H, W) of one input image of a network of this module."""
    return tuple(getattr(model, "input_shape"))  # type: ignore[return-value]


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give batch norms non-trivial statistics (random weights stand in for a trained network in
    speed measurements; untouched BNs would make every layer an identity-scaled copy)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return model
