"""Strategies that pick a pass sequence for one module within a compile budget.

All of them only call the measurement interface; -Oz is always measured first and is the floor.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from fleetforge.errors import UserError
from ml_tuner.actions import ActionSpace, Edit, neighbours, random_edit, sequence
from ml_tuner.cache import MeasureCache
from ml_tuner.measure import Job, Module, Sizes, measure_many
from ml_tuner.values import acceptable, score

OZ = ("default<Oz>",)


@dataclass(frozen=True)
class Choice:
    """A strategy's answer: the sequence kept, its sizes, -Oz's sizes and the cost."""

    passes: tuple[str, ...]
    label: str
    sizes: Sizes
    oz: Sizes
    compilations: int
    compile_seconds: float  # summed time of the compilations (as first measured, if cached)


class Budgeted:
    """Measures candidates for one module, counting compilations and keeping the best result."""

    def __init__(self, module: Module, triple: str, cache: MeasureCache | None, workers: int):
        self.module, self.triple, self.cache, self.workers = module, triple, cache, workers
        self.compilations = 0
        self.seconds = 0.0
        self.oz: Sizes | None = None  # set by the first measurement, the floor for the rest
        first = self.measure([OZ], ["Oz"])[0]
        if first is None:
            raise UserError("opt/llc failed on the module under -Oz", where=module.name)
        self.oz = first
        self.best = (OZ, "Oz", first, 0.0)

    def measure(self, sequences: list[tuple[str, ...]], labels: list[str] | None = None
                ) -> list[Sizes | None]:
        jobs = [Job(self.module, s, self.triple) for s in sequences]
        results = measure_many(jobs, cache=self.cache, workers=self.workers)
        self.compilations += len(jobs)
        self.seconds += sum(r.seconds if not r.cached else self._cached_seconds(r) for r in results)
        sizes = [r.sizes for r in results]
        if self.oz is not None:
            for seq, label, s in zip(sequences, labels or [""] * len(sequences), sizes):
                if acceptable(self.oz, s) and score(self.oz, s) > self.best[3]:
                    self.best = (seq, label, s, score(self.oz, s))
        return sizes

    def _cached_seconds(self, result) -> float:
        hit = self.cache.get(result.job.key) if self.cache is not None else None
        return hit.seconds if hit else 0.0

    def choice(self) -> Choice:
        passes, label, sizes, _ = self.best
        assert self.oz is not None
        return Choice(passes, label, sizes, self.oz, self.compilations, self.seconds)


def try_ranked(module: Module, triple: str, ranked: list[tuple[tuple[str, ...], str]],
               budget: int, cache: MeasureCache | None, workers: int) -> Choice:
    """-Oz, then the first `budget - 1` ranked sequences (the model's and the oracle's way)."""
    run = Budgeted(module, triple, cache, workers)
    chosen = ranked[:max(budget - 1, 0)]
    run.measure([s for s, _ in chosen], [label for _, label in chosen])
    return run.choice()


def random_search(module: Module, triple: str, space: ActionSpace, budget: int,
                  cache: MeasureCache | None, workers: int, seed: int = 0) -> Choice:
    """-Oz, then random -Oz edits (same space as the coreset candidates) up to the budget."""
    rng = random.Random(f"{seed}:{module.digest}")
    edits: list[Edit] = []
    while len(edits) < budget - 1:
        edit = random_edit(rng, space)
        if edit.dropped or edit.suffix != "none":
            edits.append(edit)
    run = Budgeted(module, triple, cache, workers)
    run.measure([sequence(e, space) for e in edits], [e.label for e in edits])
    return run.choice()


def greedy_search(module: Module, triple: str, space: ActionSpace, budget: int,
                  cache: MeasureCache | None, workers: int, seed: int = 0) -> Choice:
    """Hill climbing from -Oz over one-step edits until the budget is spent."""
    rng = random.Random(f"{seed}:{module.digest}")
    run = Budgeted(module, triple, cache, workers)
    current, current_score = Edit(frozenset(), "none"), 0.0
    seen = {current}
    while run.compilations < budget:
        options = [e for e in neighbours(current, space) if e not in seen]
        rng.shuffle(options)
        options = options[: budget - run.compilations]
        if not options:
            break
        seen.update(options)
        sizes = run.measure([sequence(e, space) for e in options], [e.label for e in options])
        scored = [(score(run.oz, s), e) for e, s in zip(options, sizes) if s is not None]
        if not scored:
            break
        top_score, top = max(scored, key=lambda t: t[0])
        if top_score <= current_score:
            break
        current, current_score = top, top_score
    return run.choice()
