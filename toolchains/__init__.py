"""Compile targets and their compilers, read from the one table in targets.toml.

Every part of FleetForge that compiles asks this package for the target's compilers and flags:
the kernel built from source, the Buildroot toolchain choice, SCons app builds, the tuner.
"""
from __future__ import annotations

import functools
import os
import shutil
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError

TABLE = Path(__file__).with_name("targets.toml")


@dataclass(frozen=True)
class Llvm:
    """The pinned LLVM release: tool names and the Debian packages that provide them."""

    version: str
    clang: str
    clangxx: str
    opt: str
    llc: str
    lld: str
    llvm_stress: str
    llvm_link: str
    packages: Mapping[str, str]


@dataclass(frozen=True)
class Target:
    """One compile target (see targets.toml for what each field means)."""

    name: str
    description: str
    arch: str
    debian_arch: str
    os: str
    gcc_prefix: str
    clang_target: str
    sysroot: str
    cflags: tuple[str, ...]
    clang_cflags: tuple[str, ...]
    llc_flags: tuple[str, ...]
    ldflags: tuple[str, ...]
    startup: str
    linker_script: str
    kernel_arch: str
    kernel_image: str
    elf_machine: str
    runner: tuple[str, ...]
    packages: Mapping[str, str]

    @property
    def bare_metal(self) -> bool:
        return self.os == "none"

    def gnu_tool(self, tool: str) -> str:
        """A GNU tool of this target, e.g. gnu_tool('gcc') -> 'aarch64-linux-gnu-gcc'."""
        return f"{self.gcc_prefix}{tool}"

    def gcc_args(self) -> list[str]:
        """`gcc` and its flags for this target."""
        return [self.gnu_tool("gcc"), *self.cflags]

    def clang_args(self, *, cplusplus: bool = False) -> list[str]:
        """`clang` (or `clang++`) and its flags for this target (with a Linux target's sysroot)."""
        sysroot = [f"--sysroot={self.sysroot}"] if not self.bare_metal and self.sysroot != "/" else []
        compiler = llvm().clangxx if cplusplus else llvm().clang
        return [compiler, f"--target={self.clang_target}", *sysroot, *self.cflags,
                *self.clang_cflags]

    def link_args(self, *, cplusplus: bool = False) -> list[str]:
        """The GNU driver that links this target's programs, with its flags (see `ldflags`)."""
        return [self.gnu_tool("g++" if cplusplus else "gcc"), *self.cflags, *self.ldflags]

    def board_support(self) -> tuple[Path, Path] | None:
        """Bare metal: (start-up source, linker script) for the runner's board; None on Linux."""
        if not self.startup:
            return None
        return TABLE.parent / self.startup, TABLE.parent / self.linker_script

    def missing_packages(self, *, with_llvm: bool = True) -> list[str]:
        """Debian packages to install before this target can be compiled for (and run)."""
        wanted = dict(self.packages)
        if with_llvm:
            wanted |= llvm().packages
        missing = []
        for item, package in wanted.items():
            present = Path(item).exists() if item.startswith("/") else shutil.which(item)
            if not present and package not in missing:
                missing.append(package)
        return missing

    def require(self, *, with_llvm: bool = True) -> None:
        """Raise a UserError naming the install line when a part of this target is missing."""
        missing = self.missing_packages(with_llvm=with_llvm)
        if missing:
            raise UserError(f"the {self.name} toolchain is not installed "
                            f"(run: apt-get install {' '.join(missing)})")


def _table(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UserError(f"cannot read the toolchain table: {error}", where=str(path)) from None


@functools.cache
def llvm(path: Path = TABLE) -> Llvm:
    return Llvm(**_table(path)["llvm"])


@functools.cache
def targets(path: Path = TABLE) -> dict[str, Target]:
    """Every target of the table, by name."""
    found = {}
    for name, entry in _table(path)["target"].items():
        lists = {key: tuple(entry[key]) for key in
                 ("cflags", "clang_cflags", "llc_flags", "ldflags", "runner")}
        found[name] = Target(name=name, **{**entry, **lists})
    return found


def target(name: str) -> Target:
    """The target called `name`; an unknown name lists the known ones."""
    known = targets()
    if name not in known:
        raise UserError(f"unknown target '{name}' (known: {', '.join(known)}; "
                        f"see `fleetforge toolchains`)")
    return known[name]


def linux_target_of(arch: str) -> Target | None:
    """The Linux target of a CPU architecture (the table holds one per architecture)."""
    return next((t for t in targets().values() if t.arch == arch and t.os == "linux"), None)


def board_target(arch: str, name: str = "") -> Target:
    """The target a board layer builds for: the one it names (`[board] target`), else the Linux
    target of its `arch`."""
    if name:
        return target(name)
    found = linux_target_of(arch)
    if found is None:
        raise UserError(f"no Linux target in {TABLE.name} for board architecture '{arch}' "
                        f"(name one with [board] target = ..., see `fleetforge toolchains`)")
    return found


def host_target() -> Target:
    """The target matching this machine."""
    machine = os.uname().machine
    found = linux_target_of(machine)
    if found is None:
        raise UserError(f"no target in {TABLE.name} describes this machine ({machine})")
    return found
