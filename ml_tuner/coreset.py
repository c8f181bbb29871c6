"""Greedy maximisation of the submodular coverage objective that picks the coreset."""
from __future__ import annotations

import numpy as np


def coverage(scores: np.ndarray, chosen: list[int], weights: np.ndarray | None = None) -> float:
    """Weighted sum over programs of the best (non-negative) score any chosen sequence achieves.

    Clipping at zero encodes the -Oz floor: a program is never worse off than -Oz. The function
    is monotone and submodular in `chosen`, so greedy is within (1 - 1/e) of the optimum.
    """
    if not chosen:
        return 0.0
    best = np.maximum(scores[:, chosen].max(axis=1), 0.0)
    return float(best.sum() if weights is None else (weights * best).sum())


def greedy_coreset(scores: np.ndarray, k: int, weights: np.ndarray | None = None) -> list[int]:
    """Pick up to k columns of `scores` (programs x sequences) greedily by marginal coverage
    (each program's gain counted `weights` times, default once).

    Once no remaining sequence adds coverage, the rest are filled by mean clipped score, so
    unseen programs still get alternatives; ties go to the lower index.
    """
    n_programs, n_sequences = scores.shape
    best = np.zeros(n_programs)
    chosen: list[int] = []
    weight = np.ones(n_programs) if weights is None else weights
    clipped = np.maximum(scores, 0.0) * weight[:, None]
    for _ in range(min(k, n_sequences)):
        gains = np.maximum(clipped - best[:, None], 0.0).sum(axis=0)
        gains[chosen] = -1.0
        pick = int(np.argmax(gains))
        if gains[pick] <= 0.0:
            fill = clipped.mean(axis=0)
            fill[chosen] = -1.0
            pick = int(np.argmax(fill))
        chosen.append(pick)
        best = np.maximum(best, clipped[:, pick])
    return chosen
