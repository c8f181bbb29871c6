"""Choose the Buildroot toolchain so a build skips compiling its own cross compiler where it can.

Debian's cross compilers (gcc-aarch64-linux-gnu, ...) cannot be used: Buildroot's external-toolchain
check rejects every distribution toolchain ("Distribution toolchains are unsuitable for use by
Buildroot", toolchain/helpers.mk check_unusable_toolchain; verified against Buildroot 2026.02.3
with Debian bookworm's aarch64-linux-gnu-gcc 12). FleetForge therefore selects Bootlin's prebuilt
glibc toolchain, as Buildroot's own raspberrypi4_64_defconfig does: downloaded once into
Buildroot's dl/ directory, never built.
"""
from __future__ import annotations

from dataclasses import dataclass

import toolchains

DEBIAN_REJECTED = ("Debian's cross compilers are not used: Buildroot rejects distribution "
                   "toolchains")


@dataclass(frozen=True)
class ToolchainChoice:
    """What the defconfig says about the toolchain (symbol, value) and why (shown to the user)."""

    symbols: tuple[tuple[str, str], ...]  # empty: Buildroot's default (it builds its own)
    note: str


def choose_toolchain(target: str) -> ToolchainChoice:
    """Bootlin's prebuilt toolchain for compile target `target` (toolchains/targets.toml
    buildroot_toolchain), or Buildroot's internal one with the reason."""
    variant = toolchains.target(target).buildroot_toolchain
    if not variant:
        return ToolchainChoice((), f"Buildroot builds its own toolchain (no prebuilt Bootlin "
                                   f"toolchain known for {target}; {DEBIAN_REJECTED})")
    return ToolchainChoice(
        (("BR2_TOOLCHAIN_EXTERNAL", "y"), ("BR2_TOOLCHAIN_EXTERNAL_BOOTLIN", "y"), (variant, "y")),
        f"Bootlin's prebuilt glibc toolchain, downloaded once, no toolchain build "
        f"({DEBIAN_REJECTED})",
    )


def chosen_by_layers() -> ToolchainChoice:
    return ToolchainChoice((), "chosen by the layers' BR2_TOOLCHAIN_* symbols")
