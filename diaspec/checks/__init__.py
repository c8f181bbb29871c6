"""The checks a good DiaSpec compiler makes (LANGUAGE.md, checks 1 to 12), as independent passes.

Each pass is a function `(design, index) -> list[Diagnostic]`: it reads the model and the symbol
table (both left unchanged) and returns its findings; no pass sees another's state, so they can
be read, tested and reordered one by one. Adding a check is one function and one entry in PASSES.
"""
from __future__ import annotations

from collections.abc import Callable

from diaspec.checks import contexts, controllers, cycles, devices, names, types, usage
from diaspec.diagnostics import Diagnostic, Diagnostics
from diaspec.index import DesignIndex
from diaspec.model import Design

Pass = Callable[[Design, DesignIndex], list[Diagnostic]]

PASSES: tuple[tuple[str, Pass], ...] = (
    ("1 names", names.check_names),
    ("2, 5 types", types.check_types),
    ("3, 4 devices", devices.check_devices),
    ("6 to 9 contexts", contexts.check_contexts),
    ("10 controllers", controllers.check_controllers),
    ("11 cycles among contexts", cycles.check_context_cycles),
    ("12 unused", usage.check_unused),
)


def check_design(design: Design, diags: Diagnostics) -> DesignIndex:
    """Run every pass; findings go to `diags`. Returns the index the generators reuse."""
    index = DesignIndex(design)
    for _, run in PASSES:
        diags.extend(run(design, index))
    return index
