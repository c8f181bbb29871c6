"""The tree's shape: no import cycles between FleetForge's modules (lazy, function-level imports
count too), and no private name (`_x`) imported from another module.

Read from the source with `ast` (nothing is imported), so a cycle that only a rarely taken path
would close is caught as well.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from checkout import REPO_ROOT

PACKAGES = ("images", "fleetforge", "toolchains", "ota", "diaspec", "ml_tuner", "apps", "lowbit")
# Where private names may not be imported from another module: every package and its tests.
CHECKED = (*PACKAGES, "tests", "bench")


@dataclass(frozen=True)
class ImportOf:
    importer: str  # module name (or test file path)
    target: str  # the first-party module it imports
    name: str  # the name taken from it ("" for `import x`)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _owner(dotted: str) -> str | None:
    """The first-party module that defines `dotted` (a module, or a name inside one)."""
    while dotted and dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def _imports(path: Path, module: str) -> Iterator[ImportOf]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (target := _owner(alias.name)) is not None:
                    yield ImportOf(module, target, "")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in node.names:
                target = _owner(f"{base}.{alias.name}")
                if target is not None:
                    yield ImportOf(module, target, "" if target.endswith(alias.name) else alias.name)


def _cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_even_lazy_ones():
    edges = {module: set() for module in MODULES}
    for module, path in MODULES.items():
        edges[module] |= {i.target for i in _imports(path, module) if i.target != module}
    cycles = set(_cycles(edges))
    assert cycles == set(), "import cycles"


def _private_imports(folder: str) -> list[str]:
    found = []
    for path in sorted((REPO_ROOT / folder).rglob("*.py")):
        relative = path.relative_to(REPO_ROOT)
        module = ".".join(relative.with_suffix("").parts)
        for item in _imports(path, module):
            if item.name.startswith("_") and not item.name.startswith("__") \
                    and item.target != module:
                found.append(f"{relative}: {item.name} from {item.target}")
    return found


def test_no_private_names_imported_across_modules():
    assert [line for folder in CHECKED for line in _private_imports(folder)] == []


def test_the_checker_sees_lazy_imports_and_private_names(tmp_path):
    # The checker itself: a function-level import and a private name are both found.
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from images.assemble import _run\n")
    [item] = list(_imports(probe, "images.probe"))
    assert (item.target, item.name) == ("images.assemble", "_run")
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [frozenset({"a", "b"})]
