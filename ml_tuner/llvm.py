"""The pinned LLVM tools as the tuner uses them (names and packages from toolchains/targets.toml)."""
from __future__ import annotations

import toolchains

_LLVM = toolchains.llvm()
LLVM_VERSION = _LLVM.version
CLANG = _LLVM.clang
OPT = _LLVM.opt
LLVM_STRESS = _LLVM.llvm_stress
LLVM_PACKAGE = _LLVM.packages[OPT]
CLANG_PACKAGE = _LLVM.packages[CLANG]
LLD_PACKAGE = _LLVM.packages[_LLVM.lld]
