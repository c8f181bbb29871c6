"""Fixtures of the DiaSpec tests."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from ds_helpers import EXAMPLES


@pytest.fixture
def example_copy(tmp_path: Path):
    """Copy an example to a temporary folder (without any generated framework)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("framework", "__pycache__"))
        return target

    yield copy
    for entry in list(sys.path):
        if entry.startswith(str(tmp_path)):
            sys.path.remove(entry)
