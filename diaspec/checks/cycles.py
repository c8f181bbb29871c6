"""Check 11: no cycle among contexts, on the push path or through `when required`."""
from __future__ import annotations

from diaspec.checks.common import cycle_path, cycles, error
from diaspec.diagnostics import Diagnostic
from diaspec.index import DesignIndex
from diaspec.model import ContextInput, Design, WhenProvided


def check_context_cycles(design: Design, index: DesignIndex) -> list[Diagnostic]:
    edges: dict[str, list[str]] = {}
    for context in design.contexts:
        targets = []
        for contract in context.contracts:
            inputs = list(contract.gets)
            if isinstance(contract, WhenProvided):
                inputs.append(contract.input)
            targets += [g.name.text for g in inputs if isinstance(g, ContextInput) and index.context(g.name.text)]
        if targets:
            edges.setdefault(context.name.text, []).extend(targets)
    found = []
    for component in cycles(edges):
        first = min((index.context(n) for n in component), key=lambda c: c.name.pos)
        path = cycle_path(first.name.text, edges, set(component))
        found.append(error(
            first.name.pos,
            "cycle among contexts: " + " -> ".join(path) + " (a context cannot depend on itself, "
            "by push or through 'when required')",
        ))
    return found
