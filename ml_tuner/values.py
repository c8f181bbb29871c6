"""Measured outcomes of many sequences on many modules, and the improvement score over -Oz."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ml_tuner.cache import MeasureCache
from ml_tuner.measure import Job, Module, Sizes, measure_many
from fleetforge.progress import step_progress

# A sequence that fails to compile scores as this (much worse than any real outcome).
FAILED_SCORE = -1.0


def improvement(oz: Sizes, tuned: Sizes | None) -> tuple[float, float]:
    """Relative reduction vs -Oz in (IR instructions, .text bytes); positive is better."""
    if tuned is None:
        return FAILED_SCORE, FAILED_SCORE
    ir = (oz.ir_instructions - tuned.ir_instructions) / max(oz.ir_instructions, 1)
    text = (oz.text_bytes - tuned.text_bytes) / max(oz.text_bytes, 1)
    return ir, text


def score(oz: Sizes, tuned: Sizes | None) -> float:
    """The one number search, coreset and model optimize: mean of IR and .text improvement.

    Both count because the paper's metric is IR instructions while flash is .text bytes.
    """
    ir, text = improvement(oz, tuned)
    return 0.5 * (ir + text)


def acceptable(oz: Sizes, tuned: Sizes | None) -> bool:
    """A result may replace -Oz only if it is no worse in IR count and in .text bytes."""
    return (tuned is not None and tuned.ir_instructions <= oz.ir_instructions
            and tuned.text_bytes <= oz.text_bytes)


@dataclass
class ValueTable:
    """sizes[i][j]: module i under sequence j; oz[i]: module i under -Oz."""

    modules: list[Module]
    sequences: list[tuple[str, ...]]
    sizes: list[list[Sizes | None]]
    oz: list[Sizes]

    def scores(self) -> np.ndarray:
        """Score matrix (modules x sequences)."""
        return np.array([[score(self.oz[i], s) for s in row] for i, row in enumerate(self.sizes)])


def measure_table(
    modules: list[Module], sequences: list[tuple[str, ...]], triple: str, cache: MeasureCache,
    workers: int, label: str = "measure",
) -> ValueTable:
    """Measure every module under -Oz and every sequence (cached, on the process pool)."""
    oz_seq = ("default<Oz>",)
    jobs = [Job(m, oz_seq, triple) for m in modules]
    jobs += [Job(m, s, triple) for m in modules for s in sequences]
    with step_progress() as progress:
        task = progress.add_task(label, total=len(jobs))
        results = measure_many(jobs, cache=cache, workers=workers,
                               on_done=lambda: progress.advance(task))
    cache.flush()
    by_key = {r.job.key: r.sizes for r in results}
    oz = []
    keep = []
    for m in modules:
        base = by_key[Job(m, oz_seq, triple).key]
        if base is not None:
            oz.append(base)
            keep.append(m)
    sizes = [[by_key[Job(m, s, triple).key] for s in sequences] for m in keep]
    return ValueTable(keep, sequences, sizes, oz)


def geomean_reduction(pairs: list[tuple[int, int]]) -> float:
    """Size reduction versus a baseline: 1 - geomean(tuned / baseline) over (baseline, tuned).

    +5% means 5% smaller on (geometric) average; bounded by 100%, unlike geomean(oz/tuned) - 1
    which reads +165% for a 2.65x reduction. Empty sizes count as 1 to stay defined.
    """
    if not pairs:
        return 0.0
    logs = [math.log(max(tuned, 1) / max(base, 1)) for base, tuned in pairs]
    return 1.0 - math.exp(sum(logs) / len(logs))
