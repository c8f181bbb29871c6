"""Compiler findings: positions, errors and warnings, sorted `file:line:col: severity: message`."""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple


class Pos(NamedTuple):
    """A place in a spec file (line and column start at 1). A tuple: designs hold hundreds of
    thousands of them, and they sort by file, line, column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One finding of the compiler about the user's design or code."""

    pos: Pos
    severity: str  # "error" or "warning"
    message: str

    def sort_key(self) -> tuple[str, int, int, int, str]:
        # errors before warnings at the same place, so the cause reads first
        return (self.pos.file, self.pos.line, self.pos.col, self.severity != "error", self.message)

    def __str__(self) -> str:
        return f"{self.pos}: {self.severity}: {self.message}"


@dataclass
class Diagnostics:
    """Collects findings; a pass never stops at the first one."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, pos: Pos, message: str) -> None:
        self.items.append(Diagnostic(pos, "error", message))

    def warning(self, pos: Pos, message: str) -> None:
        self.items.append(Diagnostic(pos, "warning", message))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self.items.extend(other)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.sorted() if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.sorted() if d.severity == "warning"]

    def sorted(self) -> list[Diagnostic]:
        unique = {(d.pos, d.severity, d.message): d for d in self.items}
        return sorted(unique.values(), key=Diagnostic.sort_key)

    def render(self) -> str:
        return "\n".join(str(d) for d in self.sorted())


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ` (did you mean 'X'?)` suffix naming the closest candidate, or nothing."""
    pool = sorted(set(candidates) - {name})
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        if name.lower() in lowered:
            matches = [lowered[name.lower()]]
    return f" (did you mean '{matches[0]}'?)" if matches else ""
