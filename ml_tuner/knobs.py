"""The search space: knobs of clang's own -Oz (data/knobs.toml) and candidates made of them.

A candidate is clang -Oz plus one setting of some knobs. Every candidate runs clang's whole -Oz
pipeline, so what clang always runs (the always-inliner first of all) is in every one of them;
the empty candidate is clang -Oz itself.
"""
from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError

KNOBS_FILE = Path(__file__).parent / "data" / "knobs.toml"
STAGES = ("ir", "codegen")


@dataclass(frozen=True)
class Knob:
    """One knob: named settings, each a list of clang flags; `stage` says where it acts."""

    name: str
    stage: str
    settings: dict[str, tuple[str, ...]]
    targets: tuple[str, ...]  # empty: every target

    def applies_to(self, target: str) -> bool:
        return not self.targets or target in self.targets


@dataclass(frozen=True)
class Candidate:
    """clang -Oz with these (knob, setting) pairs, kept sorted so equal candidates compare equal."""

    settings: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, pairs) -> "Candidate":
        return cls(tuple(sorted(dict(pairs).items())))

    @classmethod
    def parse(cls, label: str) -> "Candidate":
        """The inverse of `label` ("Oz" or "inline=25+slp=off")."""
        if label == "Oz":
            return cls()
        return cls.of(item.split("=", 1) for item in label.split("+"))

    @property
    def label(self) -> str:
        return "+".join(f"{k}={v}" for k, v in self.settings) or "Oz"

    def with_setting(self, knob: str, setting: str | None) -> "Candidate":
        pairs = dict(self.settings)
        if setting is None:
            pairs.pop(knob, None)
        else:
            pairs[knob] = setting
        return Candidate.of(pairs)


OZ = Candidate()


@dataclass(frozen=True)
class KnobSpace:
    """All knobs of the table, in table order (which fixes the order of their flags)."""

    knobs: tuple[Knob, ...]

    def for_target(self, target: str) -> "KnobSpace":
        return KnobSpace(tuple(k for k in self.knobs if k.applies_to(target)))

    def knob(self, name: str) -> Knob:
        for knob in self.knobs:
            if knob.name == name:
                return knob
        raise UserError(f"unknown knob '{name}' (known: {', '.join(k.name for k in self.knobs)})",
                        where=str(KNOBS_FILE))

    def flags(self, candidate: Candidate, stage: str | None = None) -> tuple[str, ...]:
        """clang flags of a candidate (of one stage only, when given), in table order."""
        chosen = dict(candidate.settings)
        out: list[str] = []
        for knob in self.knobs:
            if knob.name in chosen and (stage is None or knob.stage == stage):
                if chosen[knob.name] not in knob.settings:
                    raise UserError(f"knob {knob.name} has no setting '{chosen[knob.name]}'",
                                    where=str(KNOBS_FILE))
                out += knob.settings[chosen[knob.name]]
        unknown = set(chosen) - {k.name for k in self.knobs}
        if unknown:
            raise UserError(f"unknown knob(s) {', '.join(sorted(unknown))}", where=str(KNOBS_FILE))
        return tuple(out)

    def singles(self) -> list[Candidate]:
        """Every knob setting on its own."""
        return [Candidate.of({k.name: s}) for k in self.knobs for s in k.settings]

    def random_candidate(self, rng: random.Random, max_knobs: int = 4) -> Candidate:
        """1..max_knobs knobs, each at a random setting."""
        count = rng.randint(1, min(max_knobs, len(self.knobs)))
        chosen = rng.sample(self.knobs, count)
        return Candidate.of({k.name: rng.choice(sorted(k.settings)) for k in chosen})


def load_knobs(path: Path = KNOBS_FILE) -> KnobSpace:
    """Read the knob table; a bad entry is one line naming the file and the knob."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UserError(f"cannot read the knob table: {error}", where=str(path)) from None
    knobs = []
    for item in table.get("knob", []):
        name = item.get("name", "?")
        try:
            knob = Knob(name, item["stage"], {str(k): tuple(v) for k, v in item["settings"].items()},
                        tuple(item.get("targets", ())))
        except (KeyError, AttributeError, TypeError) as error:
            raise UserError(f"knob {name}: bad or missing field ({error})", where=str(path)) from None
        if knob.stage not in STAGES:
            raise UserError(f"knob {name}: stage must be one of {', '.join(STAGES)}",
                            where=str(path))
        if knob.stage == "codegen":
            # Code-generation knobs also reach the linker's LTO code generator (-Wl,-mllvm,...),
            # so they must be -mllvm options.
            for flags in knob.settings.values():
                if len(flags) % 2 or any(f != "-mllvm" for f in flags[::2]):
                    raise UserError(f"knob {name}: codegen settings must be -mllvm pairs",
                                    where=str(path))
        knobs.append(knob)
    return KnobSpace(tuple(knobs))


def pool(space: KnobSpace, size: int, seed: int = 0) -> list[Candidate]:
    """Training candidates: clang -Oz, every single setting, then seeded random mixes."""
    out: list[Candidate] = [OZ, *space.singles()]
    seen = set(out)
    rng = random.Random(seed)
    while len(out) < size:
        candidate = space.random_candidate(rng)
        if candidate not in seen:
            seen.add(candidate)
            out.append(candidate)
    return out[:max(size, 1)]
