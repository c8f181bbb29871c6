"""ota-receive, the device's segment writer (ota/device_src/ota-receive.c): built for the board's
target and installed by feature/ota, used by the agent when it runs (else the agent's shell path).

    python -m ota.receiver --target aarch64-linux-gnu --install ROOT/usr/libexec/fleetforge/ota-receive
"""
from __future__ import annotations

import functools
from pathlib import Path

import toolchains
from fleetforge.errors import exit_on_user_error
from toolchains.cprogram import build_program, install_command

SOURCE = Path(__file__).resolve().parent / "device_src" / "ota-receive.c"
# Statically linked: the agent runs it for every state change, and under emulation (or on a slow
# board) loading libc takes three times as long as the commit itself. libcrypto is still the
# device's own, loaded at run time (dlopen); where that fails (another C library than the one
# linked here), --probe fails and the agent writes segments with its shell path instead.
FLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-s", "-static", "-D_FILE_OFFSET_BITS=64")


@functools.cache
def build(target_name: str | None = None) -> Path:
    target = toolchains.target(target_name) if target_name else toolchains.host_target()
    return build_program(target, [SOURCE], "ota-receive", (*FLAGS, "-ldl"))


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """Build ota-receive for a target and copy it to --install (the feature/ota layer's hook)."""
    install_command(argv, prog="python -m ota.receiver", name="ota-receive", build=build)


if __name__ == "__main__":
    main()
