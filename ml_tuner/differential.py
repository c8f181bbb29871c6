"""Differential testing with csmith: each program tuned as the tuner ships it, every build that
beat clang -Oz run on the target (qemu-user, or QEMU's Cortex-M board) and its checksum compared
with clang -Oz's build. A differing build is a miscompile found; the tuner must never ship one.

Used by bench/ml_tuner_csmith.py (200 programs per target) and the CI test (20 per target)."""
from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ml_tuner.cache import MeasureCache
from ml_tuner.corpus import CORPUS_DIR, CSMITH_FLAGS, csmith_source
from ml_tuner.program import Build, tune_program
from ml_tuner.run import args_check

# Seeds of the differential test: far from the corpus's (1..60), so never trained on.
FIRST_SEED = 100001
RUN_TIMEOUT = 20.0
LDFLAGS = ("-Wl,--gc-sections",)


@dataclass
class ProgramOutcome:
    seed: int
    baseline_flash: int
    shipped_flash: int
    candidate: str
    builds_checked: int
    miscompiles: list[str] = field(default_factory=list)  # candidates whose checksum differed
    shipped_ok: bool = True  # the shipped binary's run equals the baseline's
    skipped: str = ""  # why the program was not used (e.g. the baseline itself timed out)


def check_program(seed: int, target: str, budget: int, cache: MeasureCache | None,
                  workers: int, folder: Path) -> ProgramOutcome:
    """Tune csmith program `seed` as a whole program (as shipped), then run every build of the
    search that beat the baseline, not only the one kept."""
    source = csmith_source(seed, CORPUS_DIR / "csmith-src")
    check = args_check(target, [[]], timeout=RUN_TIMEOUT, name=f"csmith_{seed}")
    build = Build(target, (source,), CSMITH_FLAGS, LDFLAGS, True)
    expected = check(build.baseline(folder / "baseline", 1))
    if expected.timed_out or expected.status != 0:
        return ProgramOutcome(seed, 0, 0, "Oz", 0, skipped="clang -Oz's build does not finish "
                              "cleanly (csmith programs may loop for long)")
    out = folder / f"csmith_{seed}.elf"
    result = tune_program([source], target, cflags=CSMITH_FLAGS, ldflags=LDFLAGS, out=out,
                          lto=True, budget=budget, cache=cache, check=check, workers=workers,
                          keep_builds=folder / "builds")
    outcome = ProgramOutcome(seed, result.baseline.flash, result.tuned.flash, result.candidate,
                             0, [r.candidate for r in result.rejected])
    outcome.shipped_ok = check(out).same_as(expected)
    for label, flash, binary in result.builds:
        if flash >= result.baseline.flash or label in outcome.miscompiles:
            continue
        outcome.builds_checked += 1
        if not check(binary).same_as(expected):
            outcome.miscompiles.append(label)
    return outcome


def run_differential(target: str, count: int, budget: int = 45, workers: int = 2,
                     first_seed: int = FIRST_SEED, cache: MeasureCache | None = None,
                     parallel_programs: int = 1, on_done=None) -> list[ProgramOutcome]:
    """`count` csmith programs from `first_seed` on, tuned and checked for `target`."""
    with tempfile.TemporaryDirectory(prefix="ml_tuner-csmith-") as tmp:
        def one(seed: int) -> ProgramOutcome:
            folder = Path(tmp) / str(seed)
            folder.mkdir()
            outcome = check_program(seed, target, budget, cache, workers, folder)
            if on_done:
                on_done(outcome)
            return outcome

        with ThreadPoolExecutor(parallel_programs) as pool:
            return list(pool.map(one, range(first_seed, first_seed + count)))


def summary(outcomes: list[ProgramOutcome]) -> dict:
    used = [o for o in outcomes if not o.skipped]
    return {
        "programs": len(outcomes),
        "used": len(used),
        "skipped": len(outcomes) - len(used),
        "builds_checked": sum(o.builds_checked for o in used),
        "miscompiles_found": sum(len(o.miscompiles) for o in used),
        "programs_with_miscompiles": sum(bool(o.miscompiles) for o in used),
        "miscompiles_shipped": sum(not o.shipped_ok for o in used),
        "tuned_smaller": sum(o.shipped_flash < o.baseline_flash for o in used),
    }

