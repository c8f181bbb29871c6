"""The pinned LLVM toolchain and per-target flags, as the tuner uses them (from toolchains/)."""
from __future__ import annotations

from dataclasses import dataclass

import toolchains

_LLVM = toolchains.llvm()
LLVM_VERSION = _LLVM.version
OPT = _LLVM.opt
LLC = _LLVM.llc
CLANG = _LLVM.clang
LLVM_STRESS = _LLVM.llvm_stress
LLVM_PACKAGE = _LLVM.packages[OPT]
CLANG_PACKAGE = _LLVM.packages[CLANG]


@dataclass(frozen=True)
class Target:
    """How to produce IR (clang) and code (llc) for one target triple."""

    triple: str
    clang_flags: tuple[str, ...]  # after --target=
    llc_flags: tuple[str, ...]


def target_for(triple: str) -> Target:
    """Settings of a target in toolchains/targets.toml; other triples get plain clang/llc."""
    known = toolchains.targets().get(triple)
    if known is None:
        return Target(triple, (), ())
    return Target(triple, tuple(known.clang_args()[2:]), known.llc_flags)
