"""Choose the Buildroot toolchain, so a build never compiles its own cross compiler where it can help it.

- `bootlin` (the default, needs internet once): Bootlin's prebuilt glibc toolchain, as Buildroot's
  own raspberrypi4_64_defconfig does; downloaded into Buildroot's dl/ directory, never built.
- `debian` (offline): Debian's cross gcc, relocated into a Buildroot external toolchain by
  toolchains/buildroot_debian.py (made once from the installed packages, cached).
The symbols and packages of each come from toolchains/targets.toml.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import toolchains
from fleetforge.errors import UserError
from fleetforge.paths import CACHE_DIR
from toolchains.buildroot_debian import debian_toolchain

TOOLCHAINS = ("bootlin", "debian")
DEFAULT_TOOLCHAIN = "bootlin"


@dataclass(frozen=True)
class ToolchainChoice:
    """What the defconfig says about the toolchain (symbol, value) and why (shown to the user)."""

    symbols: tuple[tuple[str, str], ...]  # empty: Buildroot's default (it builds its own)
    note: str
    kind: str = ""  # "bootlin", "debian", "" (Buildroot's own or the layers')


def choose_toolchain(target: str, kind: str = DEFAULT_TOOLCHAIN,
                     cache_dir: Path = CACHE_DIR) -> ToolchainChoice:
    """The `kind` toolchain for compile target `target` (a board's [board] target)."""
    if kind not in TOOLCHAINS:
        raise UserError(f"unknown toolchain '{kind}' (choose one of: {', '.join(TOOLCHAINS)})")
    entry = toolchains.target(target)
    if kind == "debian":
        if entry.bare_metal:
            raise UserError(f"{target} is bare metal: Buildroot builds Linux systems "
                            f"(use a Linux target such as aarch64-linux-gnu)")
        made = debian_toolchain(entry, cache_dir)
        return ToolchainChoice(
            tuple(made.buildroot_symbols()),
            f"Debian's cross gcc {made.gcc_version} ({', '.join(made.packages)}) relocated to "
            f"{made.prefix}: no download, no toolchain build", "debian")
    if not entry.buildroot_toolchain:
        return ToolchainChoice((), f"Buildroot builds its own toolchain (no prebuilt Bootlin "
                                   f"toolchain known for {target}; offline: --toolchain debian)")
    return ToolchainChoice(
        (("BR2_TOOLCHAIN_EXTERNAL", "y"), ("BR2_TOOLCHAIN_EXTERNAL_BOOTLIN", "y"),
         (entry.buildroot_toolchain, "y")),
        "Bootlin's prebuilt glibc toolchain, downloaded once, no toolchain build "
        "(offline: --toolchain debian)", "bootlin")


def chosen_by_layers() -> ToolchainChoice:
    return ToolchainChoice((), "chosen by the layers' BR2_TOOLCHAIN_* symbols")
