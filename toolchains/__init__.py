"""Compile targets and their compilers, read from the one table in targets.toml.

Every part of FleetForge that compiles asks this package for the target's compilers and flags:
the kernel built from source, the Buildroot toolchain choice, SCons app builds, the tuner.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError

TABLE = Path(__file__).with_name("targets.toml")
BAREMETAL_DIR = Path(__file__).with_name("baremetal")
_GCC_FILE = re.compile(r"\{gcc_(file|dir):([^}]+)\}")


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
    kernel_arch: str
    kernel_image: str
    elf_machine: str
    link_args: tuple[str, ...]
    link_libs: tuple[str, ...]
    runner: tuple[str, ...]
    packages: Mapping[str, str]
    buildroot_arch: str
    buildroot_toolchain: str

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

    def clang_link_parts(self, *, cplusplus: bool = False) -> tuple[list[str], list[str]]:
        """The one link rule: `clang` with lld; (the command before a program's objects and
        flags, what follows them: a bare-metal target's C library and runtime)."""
        before = [*self.clang_args(cplusplus=cplusplus), "-fuse-ld=lld",
                  f"--ld-path={shutil.which(llvm().lld) or llvm().lld}",
                  *(self._expand(arg) for arg in self.link_args)]
        return before, [self._expand(arg) for arg in self.link_libs]

    def clang_link_args(self, objects: Sequence[str | Path], output: str | Path) -> list[str]:
        """`clang` with lld linking `objects` (and any flags among them) into executable `output`."""
        before, after = self.clang_link_parts()
        return [*before, *map(str, objects), *after, "-o", str(output)]

    def run_command(self, program: str | Path, args: Sequence[str] = ()) -> list[str]:
        """The host command that runs `program` of this target with `args`."""
        if not self.runner:
            return [str(program), *args]
        semihosting = "".join(",arg=" + a.replace(",", ",,") for a in (Path(program).name, *args))
        command: list[str] = []
        for item in self.runner:
            if item == "{args}":
                command += args
            else:
                command.append(item.replace("{program}", str(program))
                               .replace("{semihosting_args}", semihosting))
        return command

    def _expand(self, arg: str) -> str:
        arg = arg.replace("{baremetal}", str(BAREMETAL_DIR))
        return _GCC_FILE.sub(lambda m: self._gcc_file(m.group(1), m.group(2)), arg)

    def _gcc_file(self, kind: str, name: str) -> str:
        path = _print_file_name(tuple(self.gcc_args()), name)
        return str(path.parent if kind == "dir" else path)

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


@functools.cache
def _print_file_name(gcc: tuple[str, ...], name: str) -> Path:
    """Where the target's gcc finds `name` for its flags (the multilib folder of bare-metal libs)."""
    try:
        out = subprocess.run([*gcc, f"-print-file-name={name}"], capture_output=True, text=True,
                             check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as error:
        raise UserError(f"cannot ask {gcc[0]} where {name} is ({error}); is it installed?") from None
    if not Path(out).is_absolute():  # gcc echoes the bare name when it has no such file
        raise UserError(f"{gcc[0]} has no {name} (install the target's C library package)")
    return Path(os.path.normpath(out))


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
                 ("cflags", "clang_cflags", "llc_flags", "link_args", "link_libs", "runner")}
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


def host_target() -> Target:
    """The target matching this machine."""
    machine = os.uname().machine
    found = linux_target_of(machine)
    if found is None:
        raise UserError(f"no target in {TABLE.name} describes this machine ({machine})")
    return found
