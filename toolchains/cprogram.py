"""Build a small C program for any Linux target of toolchains/targets.toml, cached.

The output lives under CACHE_DIR/cprogram, keyed by a digest of the sources, the compiler command
and the compiler's version: a rebuild happens only when one of them changes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import toolchains
from fleetforge.errors import UserError
from fleetforge.paths import CACHE_DIR
from fleetforge.tools import run_tool


def build_program(target: toolchains.Target, sources: Sequence[Path], name: str,
                  flags: Sequence[str] = ()) -> Path:
    """`name` compiled and linked from `sources` with the target's gcc and `flags`."""
    if target.bare_metal:
        raise UserError(f"target {target.name} has no Linux C library; {name} needs one")
    target.require(with_llvm=False)
    compiler = target.gcc_args()
    package = target.packages.get(target.gnu_tool("gcc"), "gcc")
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    version = run_tool([compiler[0], "--version"], debian_package=package)
    digest.update("\0".join([*compiler, *flags, version]).encode())
    out = CACHE_DIR / "cprogram" / f"{name}-{target.name}-{digest.hexdigest()[:16]}"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.part")
        run_tool([*compiler, *flags, *map(str, sources), "-o", str(tmp)], debian_package=package)
        tmp.replace(out)
    return out
