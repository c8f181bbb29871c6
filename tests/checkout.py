"""Paths of this source checkout, for tests that run commands in it or read its files."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYERS_DIR = REPO_ROOT / "layers"
