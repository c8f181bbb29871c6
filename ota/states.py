"""The device agent's state table, read from the agent script itself (its one home).

The agent checks every transition against this block; the host code and the tests read it here, so
a transition added to the table is known everywhere at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fleetforge.paths import SHIPPED_LAYERS_DIR

AGENT_SCRIPT = SHIPPED_LAYERS_DIR / "feature" / "ota" / "root_overlay" / "usr" / "sbin" / "fleetforge-ota"
IDLE = "Idle"  # the one state where no update is under way


@dataclass(frozen=True)
class StateRow:
    """One row: where the machine goes from `state` on success and on failure."""

    state: str
    on_success: str
    on_failure: str


@cache
def load_state_table(script: Path = AGENT_SCRIPT) -> tuple[StateRow, ...]:
    lines = script.read_text().splitlines()
    start = lines.index("# BEGIN STATE TABLE")
    end = lines.index("# END STATE TABLE")
    rows = []
    for line in lines[start + 1:end]:
        fields = line.split()
        if len(fields) == 3 and not line.startswith(("STATE_TABLE", "'", "#")):
            rows.append(StateRow(*fields))
    return tuple(rows)


def states(table: tuple[StateRow, ...] | None = None) -> tuple[str, ...]:
    """Every state, in table order."""
    return tuple(dict.fromkeys(row.state for row in table or load_state_table()))


def allowed_transitions(table: tuple[StateRow, ...] | None = None) -> frozenset[tuple[str, str]]:
    rows = table or load_state_table()
    return frozenset({(r.state, r.on_success) for r in rows} | {(r.state, r.on_failure) for r in rows})


def chain_is_valid(history: list[str], start: str = IDLE) -> bool:
    """True when every step of a reported state chain is a transition the table allows."""
    allowed = allowed_transitions()
    previous = start
    for state in history:
        if (previous, state) not in allowed:
            return False
        previous = state
    return True
