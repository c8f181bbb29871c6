"""The objective (flash bytes saved against clang -Oz) and the figures built on it."""
from __future__ import annotations

import math

import numpy as np

from ml_tuner.build import Sizes

# A candidate that fails to build scores as this (much worse than any real outcome).
FAILED_SCORE = -1.0


def gain(baseline: Sizes, tuned: Sizes | None) -> float:
    """Flash saved against the baseline, as a fraction of it; positive is smaller."""
    if tuned is None:
        return FAILED_SCORE
    return (baseline.flash - tuned.flash) / max(baseline.flash, 1)


def score_matrix(baselines: list[Sizes], sizes: list[list[Sizes | None]]) -> np.ndarray:
    """gain of every (module, candidate) pair."""
    return np.array([[gain(base, s) for s in row] for base, row in zip(baselines, sizes)])


def geomean_reduction(pairs: list[tuple[int, int]]) -> float:
    """Size reduction versus a baseline: 1 - geomean(tuned / baseline) over (baseline, tuned).

    +5% means 5% smaller on (geometric) average; bounded by 100%. Empty sizes count as 1.
    """
    if not pairs:
        return 0.0
    logs = [math.log(max(tuned, 1) / max(base, 1)) for base, tuned in pairs]
    return 1.0 - math.exp(sum(logs) / len(logs))
