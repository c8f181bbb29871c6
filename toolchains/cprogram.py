"""Build a small C program for any Linux target of toolchains/targets.toml, cached.

The output lives under CACHE_DIR/cprogram, keyed by a digest of the sources, the compiler command
and the compiler's version: a rebuild happens only when one of them changes.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import toolchains
from fleetforge.errors import UserError
from fleetforge.paths import CACHE_DIR
from fleetforge.tools import run_tool


def gcc(target: toolchains.Target, needs: str) -> tuple[list[str], str]:
    """The target's gcc command (flags included) and the Debian package that provides it; a
    bare-metal target is refused (`needs`: what needs a Linux C library)."""
    if target.bare_metal:
        raise UserError(f"target {target.name} has no Linux C library; {needs} needs one")
    target.require(with_llvm=False)
    return target.gcc_args(), target.packages.get(target.gnu_tool("gcc"), "gcc")


def build_digest(target: toolchains.Target, files: Sequence[Path], flags: Sequence[str],
                 needs: str) -> str:
    """16 hex digits naming a build: the files (name and bytes), the compiler command, `flags`
    and the compiler's version."""
    compiler, package = gcc(target, needs)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    version = run_tool([compiler[0], "--version"], debian_package=package)
    digest.update("\0".join([*compiler, *flags, version]).encode())
    return digest.hexdigest()[:16]


def build_program(target: toolchains.Target, sources: Sequence[Path], name: str,
                  flags: Sequence[str] = ()) -> Path:
    """`name` compiled and linked from `sources` with the target's gcc and `flags`."""
    compiler, package = gcc(target, name)
    out = CACHE_DIR / "cprogram" / f"{name}-{target.name}-{build_digest(target, sources, flags, name)}"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.part")
        run_tool([*compiler, *flags, *map(str, sources), "-o", str(tmp)], debian_package=package)
        tmp.replace(out)
    return out


def install_command(argv: list[str] | None, *, prog: str, name: str,
                    build: Callable[[str], Path]) -> None:
    """`prog --target T --install PATH`: `build(target name)` and copy the program to PATH (the
    command a layer's hook runs at image build time)."""
    parser = argparse.ArgumentParser(prog=prog, description=f"Build {name} for a target of "
                                     "toolchains/targets.toml and install it (a layer hook's step).")
    parser.add_argument("--target", help="a target of toolchains/targets.toml (default: this machine)")
    parser.add_argument("--install", type=Path, required=True, help=f"where to copy {name}")
    args = parser.parse_args(argv)
    target = toolchains.target(args.target) if args.target else toolchains.host_target()
    program = build(target.name)
    args.install.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(program, args.install)
    args.install.chmod(0o755)
    print(f"{name} for {target.name} -> {args.install}")
