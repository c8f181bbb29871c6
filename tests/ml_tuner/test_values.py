"""The objective and the reported reduction."""
from __future__ import annotations

import math

from ml_tuner.build import Sizes
from ml_tuner.values import FAILED_SCORE, gain, geomean_reduction


def test_gain_is_flash_saved():
    assert math.isclose(gain(Sizes(100, 1000), Sizes(90, 950)), 0.05)
    assert gain(Sizes(100, 1000), Sizes(50, 1010)) < 0  # less text but more flash is worse
    assert gain(Sizes(100, 1000), None) == FAILED_SCORE


def test_geomean_reduction():
    assert math.isclose(geomean_reduction([(100, 95), (200, 190)]), 0.05)
    assert math.isclose(geomean_reduction([(100, 50), (100, 200)]), 0.0)
    assert geomean_reduction([]) == 0.0 and geomean_reduction([(0, 0)]) == 0.0
