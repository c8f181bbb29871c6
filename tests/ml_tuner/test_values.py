"""Scores, the -Oz floor rule and the reported reduction."""
from __future__ import annotations

import math

from ml_tuner.measure import Sizes
from ml_tuner.values import acceptable, geomean_reduction, improvement, score


def test_improvement_and_score():
    oz = Sizes(100, 200, 300)
    assert improvement(oz, Sizes(90, 190, 0)) == (0.1, 0.05)
    assert math.isclose(score(oz, Sizes(90, 190, 0)), 0.075)
    assert score(oz, None) == -1.0


def test_floor_needs_both_metrics_no_worse():
    oz = Sizes(100, 200, 300)
    assert acceptable(oz, Sizes(90, 200, 1))
    assert not acceptable(oz, Sizes(90, 204, 1))  # fewer IR instructions but more bytes
    assert not acceptable(oz, Sizes(101, 150, 1))
    assert not acceptable(oz, None)


def test_geomean_reduction():
    assert math.isclose(geomean_reduction([(100, 95), (200, 190)]), 0.05)
    assert math.isclose(geomean_reduction([(100, 50), (100, 200)]), 0.0)
    assert geomean_reduction([]) == 0.0 and geomean_reduction([(0, 0)]) == 0.0
