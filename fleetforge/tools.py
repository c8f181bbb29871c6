"""The one way to run external programs: find them, run them, fail with a clear message."""
from __future__ import annotations

import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fleetforge.errors import UserError


class MissingToolError(UserError):
    """A host program is not installed; the message names the Debian package that provides it."""


class ToolFailedError(UserError):
    """A host program ran and failed; the message carries the tail of its output."""


def require_tool(name: str, debian_package: str) -> str:
    """Return the path of host program `name`, or raise naming the package to install."""
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(
            f"host tool '{name}' is not installed (Debian package: {debian_package}; "
            f"run: apt-get install {debian_package})"
        )
    return path


def run_tool(
    args: Sequence[str | Path],
    *,
    debian_package: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float | None = None,
    log_file: Path | None = None,
    on_line: Callable[[str], None] | None = None,
) -> str:
    """Run a host program and return its combined stdout+stderr as text.

    Output is streamed line by line to `on_line` (for progress displays) and `log_file` (the full
    log a user reads after a failure). On a non-zero exit a ToolFailedError carries the last lines.
    """
    argv = [str(a) for a in args]
    argv[0] = require_tool(argv[0], debian_package)
    tail: deque[str] = deque(maxlen=15)
    lines: list[str] = []
    log = open(log_file, "a", encoding="utf-8") if log_file else None
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        if stdin is not None:
            assert process.stdin is not None
            process.stdin.write(stdin)
            process.stdin.close()
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            tail.append(line)
            if log:
                log.write(line + "\n")
            if on_line:
                on_line(line)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise ToolFailedError(f"{Path(argv[0]).name} timed out after {timeout:.0f} s") from None
    finally:
        if log:
            log.close()
    if code != 0:
        detail = "; ".join(line.strip() for line in tail if line.strip())[-600:]
        where = f" (full log: {log_file})" if log_file else ""
        raise ToolFailedError(f"{Path(argv[0]).name} failed with exit code {code}: {detail}{where}")
    return "\n".join(lines)


def start_tool(
    args: Sequence[str | Path],
    *,
    debian_package: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    interactive: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a long-running host program (e.g. a virtual machine) and return its process.

    With `interactive` it shares this terminal (the caller waits for it); otherwise its stdout and
    stderr come back merged on a pipe for the caller to read while it runs.
    """
    argv = [str(a) for a in args]
    argv[0] = require_tool(argv[0], debian_package)
    if interactive:
        return subprocess.Popen(argv, cwd=cwd, env=env)
    return subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
