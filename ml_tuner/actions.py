"""The action space: -Oz edits (dropped elements + a suffix) as concrete pass sequences."""
from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from ml_tuner.pipeline import drop, expand, render

ACTIONS_FILE = Path(__file__).parent / "data" / "actions.toml"


@dataclass(frozen=True)
class ActionSpace:
    """What may be dropped from -Oz, the suffixes that may follow, and the single passes."""

    droppable: tuple[str, ...]
    suffixes: dict[str, tuple[str, ...]]
    passes: tuple[str, ...]


@dataclass(frozen=True)
class Edit:
    """One point of the space: -Oz minus `dropped`, then the named suffix."""

    dropped: frozenset[str]
    suffix: str

    @property
    def label(self) -> str:
        body = "Oz" + "".join(f"-{d.split('<')[0]}" for d in sorted(self.dropped))
        return body + (f"+{self.suffix}" if self.suffix != "none" else "")


def load_actions(path: Path = ACTIONS_FILE) -> ActionSpace:
    """Read the action table."""
    try:
        table = tomllib.loads(path.read_text())
        return ActionSpace(
            tuple(table["drop"]),
            {k: tuple(v) for k, v in table["suffix"].items()},
            tuple(table["passes"]["names"]),
        )
    except (tomllib.TOMLDecodeError, KeyError) as error:
        raise UserError(f"bad action table: {error}", where=str(path)) from None


def sequence(edit: Edit, space: ActionSpace) -> tuple[str, ...]:
    """The concrete opt pass sequence of an edit (-Oz itself is kept as `default<Oz>`)."""
    if not edit.dropped:
        head: tuple[str, ...] = ("default<Oz>",)
    else:
        head = render(drop(expand("Oz"), edit.dropped))
    return head + space.suffixes[edit.suffix]


def random_edit(rng: random.Random, space: ActionSpace, max_drops: int = 4) -> Edit:
    """A random point: 0..max_drops dropped elements and a random suffix."""
    count = rng.randint(0, max_drops)
    return Edit(frozenset(rng.sample(space.droppable, count)), rng.choice(sorted(space.suffixes)))


def neighbours(edit: Edit, space: ActionSpace) -> list[Edit]:
    """Edits one step away: toggle one dropped element or change the suffix."""
    out = [Edit(edit.dropped ^ {d}, edit.suffix) for d in space.droppable]
    out += [Edit(edit.dropped, s) for s in space.suffixes if s != edit.suffix]
    return out


def candidate_pool(space: ActionSpace, size: int, seed: int = 0) -> list[Edit]:
    """Candidates for the coreset: -Oz, every single drop, every suffix, then random mixes.

    Structured first so each knob is represented; the rest random, biased to the drops that
    help most often (unrolling) since those combine with the others.
    """
    pool: list[Edit] = [Edit(frozenset(), s) for s in space.suffixes]
    pool += [Edit(frozenset({d}), "none") for d in space.droppable]
    unroll = frozenset(d for d in space.droppable if d.startswith("loop-unroll"))
    pool += [Edit(unroll | {d}, s) for d in space.droppable[2:6] for s in ("none", "outline")]
    rng = random.Random(seed)
    seen = set(pool)
    while len(pool) < size:
        edit = random_edit(rng, space)
        if rng.random() < 0.5:
            edit = Edit(edit.dropped | unroll, edit.suffix)
        if edit not in seen:
            seen.add(edit)
            pool.append(edit)
    return pool[:size]
