"""The Debian cross-toolchain adapter (toolchains/buildroot_debian.py).

Always: the relocated toolchain made from the installed Debian packages (requirements/
toolchains.apt) compiles, links and runs C and C++ (under qemu-user), says the sysroot Buildroot
needs in `-v`, keeps working when its folder moves, and is made once per package versions.
With BUILDROOT_DIR: Buildroot's own external-toolchain checks (`make toolchain`) accept it.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import toolchains
from images.buildroot.toolchain import choose_toolchain
from toolchains.buildroot_debian import DebianToolchainError, debian_toolchain

TARGET = toolchains.target("aarch64-linux-gnu")
needs_cross = pytest.mark.skipif(bool(TARGET.missing_packages(with_llvm=False)),
                                 reason="the aarch64 cross toolchain is not installed "
                                        "(./forge setup installs requirements/toolchains.apt)")


def _run(*args, **kwargs) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True,
                          **kwargs).stdout


def _verbose(gcc: Path) -> str:
    return subprocess.run([gcc, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True).stdout


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return debian_toolchain(TARGET, tmp_path_factory.mktemp("cache"))


def _hello(toolchain, tmp_path: Path, *, cxx: bool = True) -> tuple[str, ...]:
    """Build hello in C (and C++) with the toolchain's wrappers; run them under qemu-user."""
    runner = [TARGET.runner[0], "-L", str(toolchain.sysroot)]  # qemu-user with the toolchain's sysroot
    (tmp_path / "h.c").write_text('#include <stdio.h>\nint main(void){puts("hello c");return 0;}\n')
    _run(toolchain.tool("gcc"), tmp_path / "h.c", "-o", tmp_path / "h")
    said = (_run(*runner, tmp_path / "h").strip(),)
    if cxx:
        (tmp_path / "h.cc").write_text('#include <cstdio>\n#include <string>\n'
                                       'int main(){std::puts(std::string("hello c++").c_str());}\n')
        _run(toolchain.tool("g++"), tmp_path / "h.cc", "-o", tmp_path / "hpp")
        said += (_run(*runner, tmp_path / "hpp").strip(),)
    return said


@needs_cross
def test_it_compiles_links_and_runs_c_and_cxx(made, tmp_path):
    assert _hello(made, tmp_path) == ("hello c", "hello c++")


@needs_cross
def test_it_says_what_buildroot_checks(made):
    # Read as Buildroot does (`$CC -v 2>&1`). check_unusable_toolchain rejects --with-sysroot=/ ("Distribution toolchains are unsuitable").
    verbose = _verbose(made.tool("gcc"))
    assert f"--with-sysroot={made.sysroot} " in verbose and "--with-sysroot=/ " not in verbose
    # Buildroot derives the sysroot from libc.a: it must lie inside the relocated prefix.
    libc = Path(_run(made.tool("gcc"), "-print-file-name=libc.a").strip()).resolve()
    assert libc == (made.sysroot / "lib" / "libc.a").resolve()
    # A linker script naming /usr/aarch64-linux-gnu would escape Buildroot's staging sysroot.
    script = (made.sysroot / "lib" / "libc.so").read_text()
    assert "GROUP ( libc.so.6 libc_nonshared.a" in script and "/usr/" not in script
    symbols = dict(made.buildroot_symbols())
    assert symbols["BR2_TOOLCHAIN_EXTERNAL_CUSTOM_PREFIX"] == '"aarch64-linux-gnu"'
    assert symbols[f"BR2_TOOLCHAIN_EXTERNAL_GCC_{made.gcc_version}"] == "y"
    assert symbols["BR2_TOOLCHAIN_EXTERNAL_HEADERS_6_1"] == "y"  # bookworm's linux-libc-dev
    assert symbols["BR2_TOOLCHAIN_EXTERNAL_INET_RPC"] == "n"  # glibc 2.36 has no RPC


@needs_cross
def test_the_original_debian_files_are_untouched(made):
    # The copy links to /usr: the libc.so rewrite must not have written through the link.
    assert "/usr/aarch64-linux-gnu/lib/libc.so.6" in Path("/usr/aarch64-linux-gnu/lib/libc.so").read_text()


@needs_cross
def test_it_keeps_working_when_moved(tmp_path):
    own = debian_toolchain(TARGET, tmp_path / "cache")
    moved = tmp_path / "elsewhere"
    own.prefix.rename(moved)
    relocated = type(own)(**{**own.__dict__, "prefix": moved})
    assert _hello(relocated, tmp_path, cxx=False) == ("hello c",)
    assert f"--with-sysroot={moved / 'aarch64-linux-gnu'} " in _verbose(relocated.tool("gcc"))


@needs_cross
def test_made_once_per_package_versions(made):
    again = debian_toolchain(TARGET, made.prefix.parent.parent)
    assert again == made
    assert made.prefix.name.startswith("debian-aarch64-linux-gnu-")
    assert any(p.startswith("libc6-dev-arm64-cross=") for p in made.packages)


def test_a_target_without_its_own_sysroot_is_a_clear_error(tmp_path):
    # x86_64's table sysroot is the host's own "/": there is no Debian cross sysroot to relocate.
    with pytest.raises(DebianToolchainError, match="use `--toolchain bootlin`"):
        debian_toolchain(toolchains.target("x86_64-linux-gnu"), tmp_path)


BUILDROOT_DIR = os.environ.get("BUILDROOT_DIR")
ARCH_SYMBOLS = {"aarch64-linux-gnu": ["BR2_aarch64=y"],
                "arm-linux-gnueabihf": ["BR2_arm=y", "BR2_cortex_a7=y", "BR2_ARM_EABIHF=y"]}


@pytest.mark.slow
@pytest.mark.skipif(not BUILDROOT_DIR, reason="set BUILDROOT_DIR to a Buildroot tree to run these")
@pytest.mark.parametrize("name", sorted(ARCH_SYMBOLS))
def test_buildroot_accepts_it(name, tmp_path):
    """Buildroot's own checks (make toolchain): sysroot, gcc version, kernel headers, C library,
    C++, OpenMP, SSP, ABI. Only host-tar is skipped (a download; the offline mirror builds it)."""
    target = toolchains.target(name)
    if target.missing_packages(with_llvm=False):
        pytest.skip(f"the {name} cross toolchain is not installed")
    choice = choose_toolchain(name, "debian", tmp_path / "cache")
    defconfig = tmp_path / "defconfig"
    defconfig.write_text("\n".join(ARCH_SYMBOLS[name] + [
        f"{n}={v}" if v != "n" else f"# {n} is not set" for n, v in choice.symbols]) + "\n")
    make = ["make", "-C", BUILDROOT_DIR, f"O={tmp_path / 'out'}"]
    _run(*make, f"BR2_DEFCONFIG={defconfig}", "defconfig")
    env = {**os.environ, "FORCE_UNSAFE_CONFIGURE": "1"}
    result = subprocess.run([*make, "BR2_TAR_HOST_DEPENDENCY=", "TAR=tar", "toolchain"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert ">>> toolchain  Installing to target" in result.stdout
