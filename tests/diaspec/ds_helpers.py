"""Helpers for the DiaSpec tests: write specs, check them, import generated apps."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

from diaspec.compiler import CheckedDesign, check_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "diaspec" / "examples"


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def check_text(tmp: Path, text: str, name: str = "app.diaspec") -> CheckedDesign:
    return check_spec(write(tmp, name, text))


def import_app(parent: Path, package: str):
    """Import a generated app package afresh (a test may regenerate it)."""
    for module in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[module]
    if str(parent) not in sys.path:
        sys.path.insert(0, str(parent))
    importlib.invalidate_caches()
    return importlib.import_module(package + ".framework")
