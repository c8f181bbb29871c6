"""Fixtures of the low-bit tests: the small models of lowbit_testlib, compiled once per session."""
from __future__ import annotations

import pytest
import torch

from lowbit_testlib import SMALL, Compiled, make


@pytest.fixture(scope="session")
def small_models() -> dict[str, Compiled]:
    torch.manual_seed(0)
    return {name: make(name, *build()) for name, build in SMALL.items()}
