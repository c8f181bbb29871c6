"""The accuracy data set and training: scikit-learn's bundled 8x8 digits (1797 images, shipped
inside the package, nothing downloaded), an fp32 run, then QAT of the prepared model."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fleetforge.progress import step_progress


@dataclass(frozen=True)
class Digits:
    """Train/test split (fixed seed): images (N, 1, 8, 8) in [0, 1], labels (N,)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Digits:
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    data = sklearn_digits()
    images = (data.images / 16.0).astype(np.float32)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, data.target, test_size=test_fraction, random_state=seed, stratify=data.target)
    return Digits(torch.from_numpy(x_train), torch.from_numpy(y_train).long(),
                  torch.from_numpy(x_test), torch.from_numpy(y_test).long())


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shifts by up to one pixel (the digits are small; this is most of the regularizer)."""
    padded = F.pad(x, (1, 1, 1, 1))
    dy, dx = torch.randint(0, 3, (2,), generator=generator).tolist()
    return padded[:, :, dy:dy + 8, dx:dx + 8]


def train(model: nn.Module, data: Digits, *, epochs: int, lr: float, seed: int = 0,
          label: str = "training", batch: int = 64) -> nn.Module:
    """Adam with a cosine schedule; shows progress per epoch."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
    n = len(data.train_y)
    with step_progress() as progress:
        task = progress.add_task(label, total=epochs)
        for _ in range(epochs):
            model.train()
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch):
                index = order[start:start + batch]
                x = _augment(data.train_x[index], generator)
                loss = F.cross_entropy(model(x), data.train_y[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            schedule.step()
            progress.advance(task)
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(dim=1) == y).float().mean())
