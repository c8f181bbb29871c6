"""Fixtures of the DiaSpec tests."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ds_helpers import EXAMPLES

# hypothesis keeps caches in ./.hypothesis by default; keep the checkout clean
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "fleetforge-hypothesis"))


@pytest.fixture
def example_copy(tmp_path: Path):
    """Copy an example to a temporary folder (without any generated framework)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("framework", "__pycache__"))
        return target

    return copy
