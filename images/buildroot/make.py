"""Run Buildroot's make for one workspace: defconfig, show-info, the build with progress, savedefconfig."""
from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.progress import step_progress
from fleetforge.tools import ToolFailedError, require_tool, run_tool
from images.buildroot.tree import BuildrootTree

# Buildroot announces each package step as ">>> busybox 1.37.0 Building" (maybe with colour codes).
_STEP = re.compile(r">>> (\S+) (\S+) (.+?)\s*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\x1b\(B")


class BuildrootMakeError(UserError):
    """Buildroot's make failed; the message names the target, the cause line and the full log."""


@dataclass(frozen=True)
class BuildrootBuild:
    """Where one workspace's Buildroot build lives."""

    tree: BuildrootTree
    output: Path  # make O=
    external: Path  # BR2_EXTERNAL
    defconfig: Path  # the generated defconfig inside the external tree
    log: Path  # the full make log

    @property
    def dotconfig(self) -> Path:
        return self.output / ".config"

    @property
    def layers_dotconfig(self) -> Path:
        """The .config exactly as the layers resolved it (before any menuconfig change)."""
        return self.output / ".config.fleetforge"

    @property
    def images_dir(self) -> Path:
        return self.output / "images"


@dataclass(frozen=True)
class PackageStep:
    """One `>>> package version step` line of Buildroot's output."""

    package: str
    version: str
    step: str


def parse_step(line: str) -> PackageStep | None:
    found = _STEP.search(_ANSI.sub("", line))
    return PackageStep(*found.groups()) if found else None


_MAKE_OWN = re.compile(r"^make(\[\d+\])?: ")


def _cause(output: str) -> str:
    """The line that says why make failed: the tool's own error, not make's "Error 1" summary."""
    lines = [_ANSI.sub("", line).strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not _MAKE_OWN.match(line)][-20:]
    for line in reversed(lines):
        if any(marker in line for marker in ("*** ", "error:", "Error", "ERROR", "No rule to")):
            return line
    # Buildroot's checks print a short paragraph (e.g. "Distribution toolchains are unsuitable
    # ..."): give its last lines, joined.
    return " ".join(lines[-4:]) if lines else "no output"


def run_make(
    build: BuildrootBuild,
    targets: list[str],
    *,
    variables: dict[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    interactive: bool = False,
) -> str:
    """`make -C <tree> O=<output> BR2_EXTERNAL=<external> <targets>`; errors are one line."""
    build.output.mkdir(parents=True, exist_ok=True)
    build.log.parent.mkdir(parents=True, exist_ok=True)
    argv: list[str | Path] = ["make", "-C", build.tree.path, f"O={build.output}",
                              f"BR2_EXTERNAL={build.external}"]
    argv += [f"{key}={value}" for key, value in (variables or {}).items()] + targets
    env = dict(os.environ)
    # Buildroot refuses to run with these set (they change what the host tools do).
    for name in ("PERL_MM_OPT", "CDPATH", "GREP_OPTIONS"):
        env.pop(name, None)
    if os.geteuid() == 0:  # configure scripts (tar, coreutils) refuse root without it
        env.setdefault("FORCE_UNSAFE_CONFIGURE", "1")
    if interactive:  # menuconfig needs the terminal, so no capture and no log
        code = subprocess.call([require_tool("make", "make"), *map(str, argv[1:])], env=env)
        if code != 0:
            raise BuildrootMakeError(f"make {' '.join(targets)} failed with exit code {code}")
        return ""
    with open(build.log, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(map(str, argv))}\n")
    captured: list[str] = []

    def collect(line: str) -> None:
        captured.append(line)
        if on_line:
            on_line(line)

    try:
        return run_tool(argv, debian_package="make", env=env, log_file=build.log, on_line=collect)
    except ToolFailedError:
        raise BuildrootMakeError(
            f"Buildroot `make {' '.join(targets)}` failed: {_cause(chr(10).join(captured))} "
            f"(full log: {build.log})") from None


def show_info(build: BuildrootBuild, variables: dict[str, str] | None = None) -> dict[str, dict]:
    """`make show-info`: every package of the configured build with version and dependencies."""
    output = run_make(build, ["show-info"], variables=variables)
    start = output.find("{")
    try:
        # make prints its "Leaving directory" line after the JSON document.
        return json.JSONDecoder().raw_decode(output[start:])[0] if start >= 0 else {}
    except json.JSONDecodeError as error:
        raise BuildrootMakeError(f"`make show-info` printed no valid JSON ({error}; full log: "
                                 f"{build.log})") from None


def build_with_progress(build: BuildrootBuild, packages: list[str]) -> None:
    """`make` with a progress bar advanced as each package of `packages` starts."""
    with step_progress() as progress:
        task = progress.add_task("buildroot", total=max(len(packages), 1))
        seen: set[str] = set()

        def on_line(line: str) -> None:
            step = parse_step(line)
            if step is None:
                return
            if step.package not in seen:
                seen.add(step.package)
                progress.update(task, completed=min(len(seen), len(packages)))
            progress.update(task, description=f"{step.package} {step.version}: {step.step}")

        run_make(build, [], on_line=on_line)
        progress.update(task, completed=len(packages), description="buildroot: done")
