"""Build an app for a target: run its SCons build (apps/SConstruct) and read the size report."""
from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import toolchains
from apps.description import AppDescription
from apps.sizes import SectionSizes
from apps.tuning import DEFAULT_STORE
from fleetforge.errors import UserError
from fleetforge.progress import console
from fleetforge.tools import ToolFailedError, run_tool

SCONSTRUCT = Path(__file__).with_name("SConstruct")


@dataclass(frozen=True)
class BinaryReport:
    """One program's sizes: what ships, and with the tuned path -Oz and tuned side by side."""

    program: str
    kept: str
    note: str
    shipped: SectionSizes
    oz: SectionSizes | None
    tuned: SectionSizes | None
    units: tuple[dict, ...]


@dataclass(frozen=True)
class AppBuild:
    app: AppDescription
    target: toolchains.Target
    optimize: str
    build_dir: Path
    binaries: tuple[BinaryReport, ...]
    seconds: float

    def program(self, name: str) -> Path:
        return self.build_dir / "bin" / name

    @property
    def shipped_total(self) -> SectionSizes:
        return sum((b.shipped for b in self.binaries), SectionSizes())


def app_targets(app: AppDescription, chosen: str = "") -> list[toolchains.Target]:
    """The targets to build for: `chosen` (comma-separated), else the app's own `target`, else
    this machine's."""
    names = chosen or app.target or toolchains.host_target().name
    return [toolchains.target(name) for name in names.split(",") if name]


def build_app(app: AppDescription, build_dir: Path, *, targets: Sequence[toolchains.Target],
              optimize: str | None = None, budget: int | None = None,
              store: Path = DEFAULT_STORE,
              jobs: int | None = None, verbose: bool = False,
              on_step: Callable[[str], None] | None = None) -> list[AppBuild]:
    """Build every library and program of `app` for each target into `build_dir`/TARGET
    (incrementally: SCons rebuilds what changed); `on_step` hears each step (for progress)."""
    optimize = optimize or app.optimize
    budget = budget or app.budget
    if not app.programs:  # a Python app alone: nothing to compile
        return [AppBuild(app, target, optimize, build_dir / target.name, (), 0.0)
                for target in targets]
    for target in targets:
        target.require()
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    log.write_text("")
    started = time.perf_counter()
    names = ",".join(t.name for t in targets)
    argv = [sys.executable, "-m", "SCons", "-Q", "-C", str(build_dir), "-f", str(SCONSTRUCT),
            f"-j{jobs or os.cpu_count() or 1}", f"app={app.path}", f"target={names}",
            f"optimize={optimize}", f"budget={budget}", f"store={store}"]
    if verbose:
        argv.append("verbose=1")
    def show(line: str) -> None:
        if on_step and line.startswith(("Compiling", "Tuning", "Linking", "Choosing")):
            on_step(f"{app.name}: {line}")
        elif line.startswith("warning:"):
            console.print(line, markup=False, highlight=False)

    try:
        run_tool(argv, debian_package="python3", log_file=log, on_line=show)
    except ToolFailedError as error:
        raise UserError(f"app {app.name} did not build: {_first_error(log)} "
                        f"(full log: {log})", where=str(app.path)) from error
    seconds = time.perf_counter() - started
    return [AppBuild(app, target, optimize, build_dir / target.name,
                     read_size_report(build_dir / target.name), seconds) for target in targets]


# A compiler's or linker's diagnostic: what a user fixes first.
_DIAGNOSTIC = re.compile(r"(?:\S+:\d+:\d+: (?:fatal )?error: [^;\n]*|[^;\n]*undefined reference[^;\n]*)")


def _first_error(log: Path) -> str:
    """The first compiler or linker error of a failed build, else SCons' own complaint."""
    text = log.read_text(errors="replace")
    found = _DIAGNOSTIC.search(text)
    if found:
        return found.group(0).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    complaint = next((line for line in lines if line.startswith("scons: ***")), None)
    return (complaint or (lines[-1] if lines else "no output")).strip()


def read_size_report(build_dir: Path) -> tuple[BinaryReport, ...]:
    path = build_dir / "size-report.json"
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"no size report after the build ({error})", where=str(path)) from None

    def sizes(entry: dict, key: str) -> SectionSizes | None:
        return SectionSizes.from_dict(entry[key]) if key in entry else None

    return tuple(BinaryReport(b["program"], b["kept"], b["note"], sizes(b, "shipped"),
                              sizes(b, "oz"), sizes(b, "tuned"), tuple(b["units"]))
                 for b in report["binaries"])
