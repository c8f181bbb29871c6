"""Shared fixtures for the ml_tuner tests: data files and a private measurement cache."""
from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def add_ll() -> Path:
    return DATA / "add.ll"


@pytest.fixture
def pid_c() -> Path:
    return DATA / "pid.c"


@pytest.fixture
def cache(tmp_path):
    from ml_tuner.cache import MeasureCache

    with MeasureCache(tmp_path / "m.sqlite") as c:
        yield c
