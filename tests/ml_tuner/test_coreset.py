"""Greedy coverage on tiny instances with known answers."""
from __future__ import annotations

import itertools
import math

import numpy as np

from ml_tuner.coreset import coverage, greedy_coreset


def test_known_instance():
    # Sequence 0 helps programs 0 and 1 a little, 1 helps program 0 a lot, 2 helps program 2,
    # 3 never beats -Oz. Greedy: 1 (gain 0.5), then 2 (0.3), then 0 (0.1 on program 1).
    scores = np.array([
        [0.1, 0.5, 0.0, -0.2],
        [0.1, 0.0, 0.0, -0.2],
        [0.0, 0.0, 0.3, -0.2],
    ])
    assert greedy_coreset(scores, 3) == [1, 2, 0]
    assert math.isclose(coverage(scores, [1, 2, 0]), 0.9)
    assert coverage(scores, [3]) == 0.0  # the -Oz floor


def test_fills_to_k_after_saturation():
    scores = np.array([[0.2, 0.1, 0.05, -0.1]])
    chosen = greedy_coreset(scores, 3)
    assert chosen[0] == 0 and len(chosen) == 3 and len(set(chosen)) == 3


def test_greedy_within_guarantee_of_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.normal(0.0, 0.1, size=(8, 7))
        k = 3
        best = max(coverage(scores, list(c)) for c in itertools.combinations(range(7), k))
        assert coverage(scores, greedy_coreset(scores, k)) >= (1 - 1 / math.e) * best - 1e-12
