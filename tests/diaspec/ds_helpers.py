"""Helpers for the DiaSpec tests: write specs, check them, import generated apps."""
from __future__ import annotations

import importlib
import importlib.util
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


def load_package(parent: Path, name: str):
    """Import the package `name` (dotted names too) from the folder `parent` afresh, without
    touching sys.path: its top package is registered in sys.modules from its folder, and Python
    finds the rest through that package's own path (a test may regenerate it)."""
    top = name.split(".")[0]
    for module in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        del sys.modules[module]
    folder = Path(parent) / top
    spec = importlib.util.spec_from_file_location(top, folder / "__init__.py", submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[top] = package
    spec.loader.exec_module(package)
    importlib.invalidate_caches()
    return importlib.import_module(name)


def import_app(parent: Path, package: str):
    """The framework of a generated app package in `parent`, imported afresh."""
    load_package(parent, package)
    return importlib.import_module(package + ".framework")
