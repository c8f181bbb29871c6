"""Debian's cross compilers as a relocatable Buildroot external toolchain, made on demand and cached.

Buildroot rejects Debian's `aarch64-linux-gnu-gcc` as it is installed: its `gcc -v` says
`--with-sysroot=/` ("Distribution toolchains are unsuitable", check_unusable_toolchain), and
Buildroot derives the sysroot from `gcc -print-file-name=libc.a`, which Debian's layout
(/usr/aarch64-linux-gnu/{include,lib}) does not fit. A copy under one prefix P fixes both:

  P/bin/TRIPLE-{gcc,g++,cpp}        sh wrappers: run the `.real` copy with --sysroot=P/TRIPLE and
                                    report that sysroot in `-v` (the one output Buildroot checks)
  P/bin/TRIPLE-{gcc,...}.real       Debian's gcc-12 binaries; P/bin/TRIPLE-{as,ld,...} binutils
  P/lib/gcc-cross/TRIPLE/12/        cc1, crt files, libgcc (gcc finds them relative to itself)
  P/TRIPLE/                         gcc's tooldir, made the sysroot in Buildroot's layout:
                                    lib/, usr/include/, usr/lib -> ../lib, bin/ (as, ld for gcc)

Files are hard links into /usr where possible (same file system; dpkg replaces files, never
rewrites them in place), so a toolchain costs little space. The cache key is the versions of the
Debian packages it was made from: an upgrade makes a new one.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.paths import CACHE_DIR
from fleetforge.tools import run_tool
from toolchains import Target

# Bump when the layout below changes, so toolchains made the old way are made again.
RECIPE_VERSION = "1"
# Binutils and gcc's helpers Buildroot's toolchain wrapper and packages call (busybox: gcc-ar).
BINUTILS = ("addr2line", "ar", "as", "c++filt", "elfedit", "gprof", "ld", "ld.bfd", "nm",
            "objcopy", "objdump", "ranlib", "readelf", "size", "strings", "strip")
GCC_HELPERS = ("gcc-ar", "gcc-nm", "gcc-ranlib", "gcov")
WRAPPED = ("gcc", "g++", "cpp")  # the drivers that take --sysroot


class DebianToolchainError(UserError):
    """Debian's cross compiler cannot be turned into a Buildroot external toolchain."""


@dataclass(frozen=True)
class DebianToolchain:
    """A relocated Debian cross toolchain and what Buildroot must be told about it."""

    prefix: Path  # BR2_TOOLCHAIN_EXTERNAL_PATH
    triple: str  # BR2_TOOLCHAIN_EXTERNAL_CUSTOM_PREFIX
    gcc_version: str  # major version, e.g. "12"
    headers_version: str  # kernel headers the C library was built against, e.g. "6.1"
    has_cxx: bool
    has_openmp: bool
    has_rpc: bool
    packages: tuple[str, ...]  # the Debian packages (with versions) it was made from

    @property
    def sysroot(self) -> Path:
        return self.prefix / self.triple

    def tool(self, name: str) -> Path:
        return self.prefix / "bin" / f"{self.triple}-{name}"

    def buildroot_symbols(self) -> list[tuple[str, str]]:
        """The defconfig lines that select this toolchain (Buildroot checks each against it)."""
        headers = self.headers_version.replace(".", "_")
        symbols = [
            ("BR2_TOOLCHAIN_EXTERNAL", "y"),
            ("BR2_TOOLCHAIN_EXTERNAL_CUSTOM", "y"),
            ("BR2_TOOLCHAIN_EXTERNAL_PREINSTALLED", "y"),
            ("BR2_TOOLCHAIN_EXTERNAL_PATH", f'"{self.prefix}"'),
            ("BR2_TOOLCHAIN_EXTERNAL_CUSTOM_PREFIX", f'"{self.triple}"'),
            (f"BR2_TOOLCHAIN_EXTERNAL_GCC_{self.gcc_version}", "y"),
            (f"BR2_TOOLCHAIN_EXTERNAL_HEADERS_{headers}", "y"),
            ("BR2_TOOLCHAIN_EXTERNAL_CUSTOM_GLIBC", "y"),
            ("BR2_TOOLCHAIN_EXTERNAL_CXX", "y" if self.has_cxx else "n"),
            ("BR2_TOOLCHAIN_EXTERNAL_OPENMP", "y" if self.has_openmp else "n"),
            ("BR2_TOOLCHAIN_EXTERNAL_INET_RPC", "y" if self.has_rpc else "n"),
        ]
        return symbols


# --- what is installed --------------------------------------------------------------------------

def _installed_version(package: str) -> str | None:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", package],
                            capture_output=True, text=True)
    status, _, version = result.stdout.partition("\t")
    return version if result.returncode == 0 and status.endswith(" installed") else None


def _source_parts(target: Target) -> tuple[Path, Path, Path]:
    """(gcc's real binary, gcc's library dir, the Debian sysroot) of the installed cross gcc."""
    gcc = shutil.which(target.gnu_tool("gcc"))
    if gcc is None or not target.sysroot or target.sysroot == "/":
        raise DebianToolchainError(
            f"no Debian cross toolchain for {target.name}: Buildroot needs a cross gcc with its own "
            f"sysroot (the table's `sysroot` for {target.name} is '{target.sysroot}'); use "
            f"`--toolchain bootlin` for this target")
    real = Path(gcc).resolve()
    libgcc = Path(run_tool([real, "-print-libgcc-file-name"], debian_package="gcc").strip())
    return real, libgcc.parent, Path(target.sysroot)


def _packages(target: Target) -> tuple[str, ...]:
    """The installed Debian packages the toolchain is made of, with versions (the cache key)."""
    wanted = sorted(set(target.packages.values()) - {"qemu-user-static"})
    missing = [p for p in wanted if _installed_version(p) is None]
    if missing:
        raise DebianToolchainError(
            f"the {target.name} cross toolchain is not installed (run: apt-get install "
            f"{' '.join(missing)})")
    return tuple(f"{p}={_installed_version(p)}" for p in wanted)


# --- making it -------------------------------------------------------------------------------

def _link_or_copy(source: str, dest: str) -> str:
    try:
        os.link(source, dest)
    except OSError:  # another file system, or a file we may not link
        shutil.copy2(source, dest)
    return dest


def _copy_tree(source: Path, dest: Path) -> None:
    shutil.copytree(source, dest, symlinks=True, copy_function=_link_or_copy, dirs_exist_ok=True)


_WRAPPER = """#!/bin/sh
# Generated by FleetForge (toolchains/buildroot_debian.py). DO NOT EDIT.
# Debian's {triple}-{tool} with the sysroot beside this folder, so the toolchain can be moved:
# Buildroot's own wrapper adds its --sysroot after ours (the last one wins).
bindir=$(dirname "$(readlink -f "$0")")
sysroot=$(dirname "$bindir")/{triple}
if [ "$#" -eq 1 ] && [ "$1" = "-v" ]; then
\t# Buildroot rejects a compiler whose -v says --with-sysroot=/ (Debian's): report ours.
\t"$bindir/{triple}-{tool}.real" --sysroot="$sysroot" -v 2>&1 | sed "s|--with-sysroot=/ |--with-sysroot=$sysroot |"
\texit 0
fi
exec "$bindir/{triple}-{tool}.real" --sysroot="$sysroot" "$@"
"""


def wrapper_text(triple: str, tool: str) -> str:
    return _WRAPPER.format(triple=triple, tool=tool)


def _relative_linker_scripts(lib: Path) -> None:
    """Linker scripts (libc.so) name absolute paths of the Debian sysroot: make them bare names,
    found in the sysroot wherever Buildroot's wrapper points --sysroot (its staging copy)."""
    for path in lib.glob("*.so"):
        if path.is_symlink() or path.stat().st_size > 4096:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "GROUP" not in text and "INPUT" not in text:
            continue
        rewritten = re.sub(r"(?<=[\s(])/[^\s()]*/(?=[^/\s()]+)", "", text)
        path.unlink()  # a hard link to /usr: never write through it
        path.write_text(rewritten, encoding="utf-8")


def _headers_version(sysroot: Path) -> str:
    text = (sysroot / "include" / "linux" / "version.h").read_text(encoding="utf-8")
    found = re.search(r"LINUX_VERSION_CODE (\d+)", text)
    if not found:
        raise DebianToolchainError("no LINUX_VERSION_CODE", where=str(sysroot / "include/linux/version.h"))
    code = int(found.group(1))
    return f"{code >> 16}.{(code >> 8) & 0xFF}"


def _make(target: Target, dest: Path, packages: tuple[str, ...]) -> DebianToolchain:
    real_gcc, gcc_libdir, debian_sysroot = _source_parts(target)
    usr = real_gcc.parent.parent  # /usr
    triple = target.gcc_prefix.rstrip("-")
    gcc_version = real_gcc.name.rsplit("-", 1)[-1]  # aarch64-linux-gnu-gcc-12 -> 12
    bindir = dest / "bin"
    bindir.mkdir(parents=True)
    _copy_tree(gcc_libdir, dest / gcc_libdir.relative_to(usr))
    libexec = usr / "libexec" / gcc_libdir.relative_to(usr / "lib")
    if libexec.is_dir():  # gcc versions that keep cc1 under libexec/
        _copy_tree(libexec, dest / libexec.relative_to(usr))
    has_cxx = False
    for tool in WRAPPED:
        source = usr / "bin" / f"{triple}-{tool}-{gcc_version}"
        if not source.exists():
            continue
        has_cxx |= tool == "g++"
        _link_or_copy(str(source.resolve()), str(bindir / f"{triple}-{tool}.real"))
        wrapper = bindir / f"{triple}-{tool}"
        wrapper.write_text(wrapper_text(triple, tool), encoding="utf-8")
        wrapper.chmod(0o755)
    for tool in BINUTILS:
        source = usr / "bin" / f"{triple}-{tool}"
        if source.exists():
            _link_or_copy(str(source.resolve()), str(bindir / source.name))
    for tool in GCC_HELPERS:
        source = usr / "bin" / f"{triple}-{tool}-{gcc_version}"
        if source.exists():
            _link_or_copy(str(source.resolve()), str(bindir / f"{triple}-{tool}"))
    # The sysroot, in Buildroot's layout, at gcc's tooldir.
    sysroot = dest / triple
    _copy_tree(debian_sysroot / "lib", sysroot / "lib")
    _copy_tree(debian_sysroot / "include", sysroot / "usr" / "include")
    if (debian_sysroot / "bin").is_dir():
        _copy_tree(debian_sysroot / "bin", sysroot / "bin")
    (sysroot / "usr" / "lib").symlink_to("../lib")
    # gcc looks for its C++ headers at TOOLDIR/include/c++ (relocated from /usr/TRIPLE/include).
    (sysroot / "include").symlink_to("usr/include")
    _relative_linker_scripts(sysroot / "lib")
    toolchain = DebianToolchain(
        prefix=dest, triple=triple, gcc_version=gcc_version,
        headers_version=_headers_version(debian_sysroot),
        has_cxx=has_cxx,
        has_openmp=(gcc_libdir / "libgomp.so").exists() or (gcc_libdir / "libgomp.a").exists(),
        has_rpc=(debian_sysroot / "include" / "rpc" / "rpc.h").exists(),
        packages=packages)
    return toolchain


def _record(toolchain: DebianToolchain) -> dict:
    return {"triple": toolchain.triple, "gcc_version": toolchain.gcc_version,
            "headers_version": toolchain.headers_version, "has_cxx": toolchain.has_cxx,
            "has_openmp": toolchain.has_openmp, "has_rpc": toolchain.has_rpc,
            "packages": list(toolchain.packages)}


RECORD = "fleetforge-toolchain.json"


def debian_toolchain(target: Target, cache_dir: Path = CACHE_DIR) -> DebianToolchain:
    """The relocated toolchain for `target`, made once per set of installed package versions."""
    packages = _packages(target)
    key = hashlib.sha256("\n".join((RECIPE_VERSION, *packages)).encode()).hexdigest()[:12]
    entry = cache_dir / "toolchains" / f"debian-{target.name}-{key}"
    record = entry / RECORD
    if not record.is_file():
        partial = entry.with_name(entry.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        made = _make(target, partial, packages)
        (partial / RECORD).write_text(json.dumps(_record(made), indent=1) + "\n")
        entry.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(entry, ignore_errors=True)
        partial.rename(entry)  # the entry appears only when complete
    saved = json.loads(record.read_text())
    return DebianToolchain(prefix=entry, triple=saved["triple"],
                           gcc_version=saved["gcc_version"],
                           headers_version=saved["headers_version"], has_cxx=saved["has_cxx"],
                           has_openmp=saved["has_openmp"], has_rpc=saved["has_rpc"],
                           packages=tuple(saved["packages"]))
