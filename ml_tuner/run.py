"""Run a target's program on this machine (qemu-user, QEMU's Cortex-M board) and compare runs."""
from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import toolchains
from fleetforge.errors import UserError
from fleetforge.tools import require_tool

RUN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Run:
    """What a run showed: exit status and output (stdout then stderr); `timed_out` when killed."""

    status: int
    output: str
    timed_out: bool = False

    def same_as(self, other: "Run") -> bool:
        return (self.status, self.output, self.timed_out) == (other.status, other.output,
                                                              other.timed_out)


def run_program(target: str, program: Path, args: Sequence[str] = (), *, cwd: Path | None = None,
                timeout: float = RUN_TIMEOUT) -> Run:
    """Run PROGRAM with ARGS under the target's runner (toolchains/targets.toml)."""
    command = toolchains.target(target).run_command(program, list(args))
    command[0] = require_tool(command[0], toolchains.target(target).packages.get(
        command[0], command[0]))
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as expired:
        out = (expired.stdout or b"") + (expired.stderr or b"")
        return Run(-1, out.decode("utf-8", "replace"), True)
    return Run(done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace"))


Check = Callable[[Path], Run]


def args_check(target: str, runs: Sequence[Sequence[str]], cwd: Path | None = None,
               timeout: float = RUN_TIMEOUT, name: str = "program") -> Check:
    """A check that runs the binary once per argument list of RUNS (in CWD); two binaries agree
    when every run shows the same exit status and output.

    Every binary runs under the same path (a link in one folder), so a program that prints its
    own name prints the same thing whichever build it is.
    """
    if cwd is not None and not cwd.is_dir():
        raise UserError("no such folder for the check", where=str(cwd))
    stable = Path(tempfile.mkdtemp(prefix="ml_tuner-check-")) / name

    def check(binary: Path) -> Run:
        stable.unlink(missing_ok=True)
        stable.symlink_to(binary.resolve())
        done = [run_program(target, stable, args, cwd=cwd, timeout=timeout) for args in runs]
        status = next((r.status for r in done if r.status != 0), 0)
        output = "".join(f"$ {' '.join(args)}\n{r.output}[exit {r.status}]\n"
                         for args, r in zip(runs, done))
        return Run(status, output, any(r.timed_out for r in done))

    return check
