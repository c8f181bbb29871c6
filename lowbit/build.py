"""Build the C runtime with the project's toolchains: the host shared library (Python binding)
and the static `lowbit-run` runner for any Linux target of toolchains/targets.toml.

Outputs are cached under CACHE_DIR/lowbit by a digest of the sources, the compiler command and
the compiler's version, so a rebuild happens only when one of them changes.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import toolchains
from fleetforge.errors import exit_on_user_error
from fleetforge.paths import CACHE_DIR
from fleetforge.tools import run_tool
from toolchains.cprogram import build_digest, gcc, install_command

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
LIBRARY_SOURCES = ("lowbit.c", "kernels_x86.c", "kernels_x86_lut.c", "kernels_neon.c")
HEADERS = ("lowbit.h", "lowbit_internal.h", "epilogue_x86.h")
RUNNER_SOURCE = "runner.c"
# Optimisation and warnings for every target; SIMD is chosen inside the sources (x86-64: AVX-512
# functions picked at load time, so one binary runs on any x86-64; aarch64: NEON is baseline).
CFLAGS = ("-O3", "-std=gnu11", "-Wall", "-Wextra", "-fno-strict-aliasing")
# The checked build (host only): AddressSanitizer sees the runtime's exact buffer sizes, so any
# read or write outside a tensor, a weight copy or a scratch buffer stops the run with a report.
# -O1 (after CFLAGS' -O3): the accesses checked are the sources' own, at any level, and the
# table-lookup kernels' instantiations compile 5x faster.
SANITIZE_FLAGS = ("-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1")


def _compiler(target: toolchains.Target) -> list[str]:
    return gcc(target, "the runtime")[0]


def _package(target: toolchains.Target) -> str:
    return gcc(target, "the runtime")[1]


def _digest(target: toolchains.Target, extra_flags: tuple[str, ...]) -> str:
    files = [RUNTIME_DIR / name for name in (*LIBRARY_SOURCES, *HEADERS, RUNNER_SOURCE)]
    return build_digest(target, files, (*CFLAGS, *extra_flags), "the runtime")


def _out_dir(target: toolchains.Target, extra_flags: tuple[str, ...]) -> Path:
    return CACHE_DIR / "lowbit" / f"{target.name}-{_digest(target, extra_flags)}"


def _objects(target: toolchains.Target, out_dir: Path, extra_flags: tuple[str, ...]) -> list[Path]:
    """Each source compiled once (position-independent: the same objects make the shared
    library and the static runner), two at a time."""
    def compile_one(source: str) -> Path:
        obj = out_dir / (Path(source).stem + ".o")
        if not obj.is_file():
            tmp = out_dir / f".{obj.name}.part"
            run_tool([*_compiler(target), *CFLAGS, *extra_flags, "-fPIC", "-I", RUNTIME_DIR, "-c",
                      RUNTIME_DIR / source, "-o", tmp], debian_package=_package(target))
            tmp.replace(obj)
        return obj

    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(compile_one, (*LIBRARY_SOURCES, RUNNER_SOURCE)))


def _link(target: toolchains.Target, name: str, extra: tuple[str, ...], with_runner: bool,
          extra_flags: tuple[str, ...] = ()) -> Path:
    out_dir = _out_dir(target, extra_flags)
    out = out_dir / name
    if out.is_file():
        return out
    objects = _objects(target, out_dir, extra_flags)
    if not with_runner:
        objects = objects[:-1]
    tmp = out_dir / f".{name}.part"
    run_tool([*_compiler(target), *extra_flags, *extra, *objects, "-o", tmp], debian_package=_package(target))
    tmp.replace(out)
    return out


def build_library() -> Path:
    """liblowbit.so for this machine (what the Python binding loads)."""
    return _link(toolchains.host_target(), "liblowbit.so", ("-shared",), with_runner=False)


def build_runner(target_name: str | None = None) -> Path:
    """The static `lowbit-run` for a target of the table (default: this machine)."""
    target = toolchains.target(target_name) if target_name else toolchains.host_target()
    return _link(target, "lowbit-run", ("-static",), with_runner=True)


def build_checked_runner() -> Path:
    """`lowbit-run` for this machine built with AddressSanitizer (SANITIZE_FLAGS; dynamic, as
    the sanitizer needs): the same sources, for checking memory safety of every kernel family."""
    return _link(toolchains.host_target(), "lowbit-run-asan", (), with_runner=True,
                 extra_flags=SANITIZE_FLAGS)


def runner_command(target_name: str | None = None, args: tuple[str, ...] = ()) -> list[str]:
    """How this machine runs the target's runner with `args`: natively, or under its emulator
    (qemu-user for aarch64, from the table's `runner`)."""
    target = toolchains.target(target_name) if target_name else toolchains.host_target()
    return target.run_command(build_runner(target.name), args)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """`python -m lowbit.build --target aarch64-linux-gnu --install ROOT/usr/bin/lowbit-run`:
    what the feature/models layer runs at image build time."""
    install_command(argv, prog="python -m lowbit.build", name="lowbit-run", build=build_runner)


if __name__ == "__main__":
    main()
