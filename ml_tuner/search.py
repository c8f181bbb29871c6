"""Try ranked candidates on one subject within a compilation budget and a time limit.

The floor is the baseline (clang's own build): a candidate is kept only when it is strictly
smaller in flash. Candidates are measured `workers` at a time; each has a timeout derived from
the baseline's build time (a timeout is a failure); the search stops early when the budget or the
time limit is spent, or when the model expects nothing more from the rest.
"""
from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ml_tuner.build import Sizes
from ml_tuner.cache import MeasureCache
from ml_tuner.knobs import Candidate, KnobSpace
from ml_tuner.measure import Job, Result, Subject, measure_many
from ml_tuner.values import gain

# A candidate may take this many times the baseline's build time before it counts as failed
# (slow outliers exist: the IR outliner is quadratic), and never less than MIN_TIMEOUT seconds.
TIMEOUT_FACTOR = 4.0
MIN_TIMEOUT = 3.0


@dataclass(frozen=True)
class Ranked:
    """A candidate and the model's predicted value for it (1: the best it expects, 0: as -Oz)."""

    candidate: Candidate
    value: float = 1.0


@dataclass
class SearchOutcome:
    """What a search measured and kept."""

    baseline: Sizes
    best: Candidate | None = None  # None: nothing beat the baseline
    best_sizes: Sizes | None = None
    best_artifact: Path | None = None
    tried: list[Result] = field(default_factory=list)
    stop_reason: str = "budget"
    compile_seconds: float = 0.0  # summed build seconds of the candidates tried

    @property
    def sizes(self) -> Sizes:
        return self.best_sizes or self.baseline

    @property
    def failures(self) -> int:
        return sum(r.sizes is None for r in self.tried)

    def ordered(self) -> list[Result]:
        """Candidates that beat the baseline, smallest first (the next choices after a rejection)."""
        good = [r for r in self.tried if r.sizes is not None and r.sizes.flash < self.baseline.flash]
        return sorted(good, key=lambda r: (r.sizes.flash, r.sizes.text))  # type: ignore[union-attr]


def search(subject: Subject, space: KnobSpace, ranked: Sequence[Ranked], baseline: Sizes, *,
           budget: int, baseline_seconds: float, cache: MeasureCache | None = None,
           workers: int = 2, keep_dir: Path | None = None, time_limit: float | None = None,
           min_value: float = 0.0) -> SearchOutcome:
    """Measure ranked candidates in order; `budget` counts the baseline's own build too."""
    outcome = SearchOutcome(baseline)
    started = time.monotonic()
    timeout = max(TIMEOUT_FACTOR * baseline_seconds, MIN_TIMEOUT)
    queue = [r for r in ranked][:max(budget - 1, 0)]
    while queue:
        if queue[0].value <= min_value and outcome.tried:
            outcome.stop_reason = "model expects no further gain"
            break
        batch = queue[:max(workers, 1)]
        if time_limit is not None:
            left = time_limit - (time.monotonic() - started)
            # One round of builds takes about the baseline's time: start it only if it fits.
            if left < baseline_seconds * 1.1:
                outcome.stop_reason = "time limit"
                break
            round_timeout = max(min(timeout, left), MIN_TIMEOUT)
        else:
            round_timeout = timeout
        queue = queue[len(batch):]
        results = measure_many([Job(subject, r.candidate, space) for r in batch], cache=cache,
                               workers=workers, keep_dir=keep_dir, timeout=round_timeout)
        for result in results:
            outcome.tried.append(result)
            outcome.compile_seconds += result.seconds
            if result.sizes is None:
                continue
            current = outcome.best_sizes or baseline
            if (result.sizes.flash, result.sizes.text) < (current.flash, current.text) and \
                    result.sizes.flash < baseline.flash:
                outcome.best, outcome.best_sizes = result.job.candidate, result.sizes
                outcome.best_artifact = result.artifact
    return outcome


def random_ranking(space: KnobSpace, count: int, seed: str) -> list[Ranked]:
    """`count` distinct random candidates (the baseline every method must beat in the bench)."""
    rng = random.Random(seed)
    out: list[Candidate] = []
    tries = 0
    while len(out) < count and tries < 100 * count:
        tries += 1
        candidate = space.random_candidate(rng)
        if candidate not in out:
            out.append(candidate)
    return [Ranked(c) for c in out]


def best_gain(outcome: SearchOutcome) -> float:
    return gain(outcome.baseline, outcome.sizes)
