"""Contract B (team/CONTRACTS.md): the tuner as a build step, for SCons and other build tools.

    from ml_tuner.api import tune_unit, tune_program
    r = tune_unit(Path("motor.c"), "thumbv7em-none-eabi", cflags=["-Iinc"], out=Path("motor.o"))
    r.baseline.flash, r.tuned.flash, r.flags, r.cached, r.fell_back, r.seconds

Both write their output through a temporary file (nothing half-written), never larger than
clang -Oz with the same flags (they fall back to clang's own output and say so in `reason`).
Decisions are cached by (IR, target, LLVM version, flags, model): an unchanged unit is rebuilt
with its kept settings, never re-tuned. Pass `cache=MeasureCache()` (the shared cache in
$FLEETFORGE_CACHE) or your own; None measures afresh. Errors are fleetforge UserErrors (one line,
naming the file).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ml_tuner.cache import MeasureCache
from ml_tuner.program import DEFAULT_MODE, ProgramResult, Rejection
from ml_tuner.program import tune_program as _tune_program
from ml_tuner.run import Check, Run, args_check
from ml_tuner.tune import DEFAULT_TIME_LIMIT, UnitResult
from ml_tuner.tune import tune_unit as _tune_unit

__all__ = ["tune_unit", "tune_program", "UnitResult", "ProgramResult", "Rejection", "MeasureCache",
           "Check", "Run", "args_check"]


def tune_unit(source: Path, target: str, *, cflags: Sequence[str] = (), out: Path,
              budget: int = 45, cache: MeasureCache | None = None,
              time_limit: float | None = DEFAULT_TIME_LIMIT) -> UnitResult:
    """Compile one C/C++ unit for `target` (toolchains table) into the smallest object found.

    The object at `out` is never larger than `clang -Oz CFLAGS -c` (UnitResult.fell_back says
    when it is clang's own). UnitResult carries both sizes (flash: every stored allocated byte;
    text), the kept knob settings and their clang flags, whether the decision came from the
    cache, and the seconds taken.
    """
    return _tune_unit(Path(source), target, cflags=cflags, out=Path(out), budget=budget,
                      cache=cache, time_limit=time_limit)


def tune_program(units: Sequence[Path], target: str, *, cflags: Sequence[str] = (),
                 ldflags: Sequence[str] = (), out: Path, lto: bool, budget: int = 45,
                 cache: MeasureCache | None = None, check: Check | None = None,
                 mode: str = DEFAULT_MODE) -> ProgramResult:
    """Build a program from `units` into the smallest binary found, never larger than the
    user's own build (clang -Oz CFLAGS per unit, -flto when `lto`, linked by lld with CFLAGS and
    LDFLAGS). ProgramResult.mode says whether the whole program was tuned as one module (the
    default, which won on held-out programs) or unit by unit. With `check` (e.g.
    `args_check(target, [["--selftest"]])`), a binary whose run differs from the baseline's is
    rejected, reported in ProgramResult.rejected, and never written.
    """
    return _tune_program([Path(u) for u in units], target, cflags=cflags, ldflags=ldflags,
                         out=Path(out), lto=lto, budget=budget, cache=cache, check=check,
                         mode=mode)
