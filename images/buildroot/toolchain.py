"""Choose the Buildroot toolchain: Debian's preinstalled cross compiler where Buildroot accepts it."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Debian's cross compilers (gcc-<triplet> packages) by Debian architecture. amd64 is absent on
# purpose: the host's native gcc keeps its libc in /usr/lib/x86_64-linux-gnu, which Buildroot's
# sysroot discovery (toolchain_find_sysroot) cannot map to a sysroot, so Buildroot builds its own.
DEBIAN_CROSS_TRIPLETS: dict[str, str] = {
    "arm64": "aarch64-linux-gnu",
    "armhf": "arm-linux-gnueabihf",
}


@dataclass(frozen=True)
class CrossToolchain:
    """A Debian cross toolchain as Buildroot's "custom external toolchain" must describe it."""

    triplet: str  # e.g. aarch64-linux-gnu
    gcc_major: int  # e.g. 12
    headers: tuple[int, int]  # kernel headers the C library was built against, e.g. (6, 1)
    cxx: bool  # g++-<triplet> is installed

    @property
    def debian_packages(self) -> str:
        return f"gcc-{self.triplet}, libc6-dev-{_debian_arch_of(self.triplet)}-cross"

    def symbols(self) -> list[tuple[str, str]]:
        """BR2_* symbol values selecting this toolchain (value as written in a defconfig)."""
        major, minor = self.headers
        return [
            ("BR2_TOOLCHAIN_EXTERNAL", "y"),
            ("BR2_TOOLCHAIN_EXTERNAL_CUSTOM", "y"),
            ("BR2_TOOLCHAIN_EXTERNAL_PREINSTALLED", "y"),
            ("BR2_TOOLCHAIN_EXTERNAL_PATH", '"/usr"'),
            ("BR2_TOOLCHAIN_EXTERNAL_CUSTOM_PREFIX", f'"{self.triplet}"'),
            (f"BR2_TOOLCHAIN_EXTERNAL_GCC_{self.gcc_major}", "y"),
            (f"BR2_TOOLCHAIN_EXTERNAL_HEADERS_{major}_{minor}", "y"),
            ("BR2_TOOLCHAIN_EXTERNAL_CUSTOM_GLIBC", "y"),
            # glibc >= 2.32 ships no Sun RPC; Buildroot's default (y for glibc) would fail its check.
            ("BR2_TOOLCHAIN_EXTERNAL_INET_RPC", "n"),
            ("BR2_TOOLCHAIN_EXTERNAL_CXX", "y" if self.cxx else "n"),
        ]


@dataclass(frozen=True)
class ToolchainChoice:
    """What the defconfig says about the toolchain, and why (shown to the user)."""

    toolchain: CrossToolchain | None  # None: Buildroot builds its own (internal toolchain)
    note: str


def _debian_arch_of(triplet: str) -> str:
    return next((arch for arch, t in DEBIAN_CROSS_TRIPLETS.items() if t == triplet), "?")


def _headers_version(include_dir: Path) -> tuple[int, int] | None:
    try:
        text = (include_dir / "linux" / "version.h").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"LINUX_VERSION_CODE (\d+)", text)
    if not found:
        return None
    code = int(found.group(1))
    return code >> 16, (code >> 8) & 0xFF


def detect_cross_toolchain(debian_arch: str, usr: Path = Path("/usr")) -> ToolchainChoice:
    """Look for Debian's cross compiler for `debian_arch` on this host."""
    triplet = DEBIAN_CROSS_TRIPLETS.get(debian_arch)
    if triplet is None:
        return ToolchainChoice(None, f"no Debian cross toolchain layout Buildroot accepts for "
                                     f"{debian_arch}; Buildroot builds its own toolchain")
    gcc = shutil.which(f"{triplet}-gcc", path=str(usr / "bin"))
    if gcc is None:
        return ToolchainChoice(None, f"{triplet}-gcc is not installed (apt-get install "
                                     f"gcc-{triplet} libc6-dev-{debian_arch}-cross to skip the "
                                     f"toolchain build); Buildroot builds its own toolchain")
    version = subprocess.run([gcc, "-dumpversion"], capture_output=True, text=True, check=False)
    headers = _headers_version(usr / triplet / "include")
    if version.returncode != 0 or headers is None:
        return ToolchainChoice(None, f"{triplet}-gcc is incomplete (no C library headers; apt-get "
                                     f"install libc6-dev-{debian_arch}-cross); Buildroot builds "
                                     f"its own toolchain")
    toolchain = CrossToolchain(
        triplet=triplet,
        gcc_major=int(version.stdout.strip().split(".")[0]),
        headers=headers,
        cxx=shutil.which(f"{triplet}-g++", path=str(usr / "bin")) is not None,
    )
    return ToolchainChoice(toolchain, f"Debian's {triplet}-gcc {toolchain.gcc_major} "
                                      f"(external toolchain: no toolchain build)")
