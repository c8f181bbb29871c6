"""The pinned LLVM toolchain: tool names, the Debian packages providing them, target settings."""
from __future__ import annotations

from dataclasses import dataclass

LLVM_VERSION = "16"
OPT = f"opt-{LLVM_VERSION}"
LLC = f"llc-{LLVM_VERSION}"
CLANG = f"clang-{LLVM_VERSION}"
LLVM_STRESS = f"llvm-stress-{LLVM_VERSION}"
LLVM_PACKAGE = f"llvm-{LLVM_VERSION}"
CLANG_PACKAGE = f"clang-{LLVM_VERSION}"


@dataclass(frozen=True)
class Target:
    """How to produce IR (clang) and code (llc) for one target triple."""

    triple: str
    clang_flags: tuple[str, ...]
    llc_flags: tuple[str, ...]


# Why these two: the robots' application processors are aarch64 Linux, their motor controllers
# Cortex-M (thumbv7em, bare metal with newlib headers).
TARGETS: dict[str, Target] = {
    "aarch64-linux-gnu": Target(
        "aarch64-linux-gnu", ("--sysroot=/usr/aarch64-linux-gnu",), ()
    ),
    "thumbv7em-none-eabi": Target(
        "thumbv7em-none-eabi",
        ("-isystem", "/usr/lib/arm-none-eabi/include", "-mcpu=cortex-m4", "-mfloat-abi=soft"),
        ("-mcpu=cortex-m4", "-float-abi=soft"),
    ),
}


def target_for(triple: str) -> Target:
    """Settings for a known triple; other triples get plain clang/llc defaults."""
    return TARGETS.get(triple, Target(triple, (), ()))
