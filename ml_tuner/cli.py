"""Command line (`ml-tuner`, also `python -m ml_tuner`):

    ml-tuner tune FILE.c --target T [-o OUT.o | --emit-llvm OUT.ll] [--json] [-- CFLAGS...]
    ml-tuner tune-program --target T -o BINARY UNIT.c... [--check 'ARGS'] [-- CFLAGS...]

Paths are relative to the current folder. CFLAGS after `--` are the user's own (e.g. -Iinclude
-DNDEBUG); for tune-program they are also the link's (e.g. -flto -Wl,--gc-sections), as in
`clang -Oz CFLAGS UNIT.c... -o BINARY`.
"""
from __future__ import annotations

import time

STARTED = time.monotonic()

import argparse  # noqa: E402  (the clock above starts before the imports it times)
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from fleetforge.errors import UserError, exit_on_user_error  # noqa: E402


def _split_cflags(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def _percent(result) -> str:
    return f"{100.0 * result.gain:+.2f}%"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-tuner", description="Learned clang -Oz settings: "
                                     "smaller objects and binaries, never larger than clang -Oz.")
    commands = parser.add_subparsers(dest="command", required=True)
    unit = commands.add_parser("tune", help="tune one C/C++ file (or .ll/.bc) into an object")
    unit.add_argument("file", type=Path)
    unit.add_argument("-o", dest="out", type=Path, help="write the object here")
    unit.add_argument("--emit-llvm", type=Path, metavar="OUT.ll",
                      help="write optimized IR instead (compile it with clang -c -Xclang "
                           "-disable-llvm-passes; only optimizer knobs are then tried)")
    program = commands.add_parser("tune-program", help="tune a program's linked binary")
    program.add_argument("units", type=Path, nargs="+")
    program.add_argument("-o", dest="out", type=Path, required=True, help="the binary")
    program.add_argument("--mode", choices=("whole-program", "per-unit"),
                         default="whole-program",
                         help="tune the merged program (default) or each unit")
    program.add_argument("--check", metavar="ARGS",
                         help="run each candidate binary with ARGS (on the target's emulator) "
                              "and reject any whose output or exit status differs from clang "
                              "-Oz's")
    program.add_argument("--time-limit", type=float, default=None,
                         help="seconds for the search (default: the budget alone)")
    for sub in (unit, program):
        sub.add_argument("--target", required=True,
                         help="a target of `fleetforge toolchains` (e.g. aarch64-linux-gnu)")
        sub.add_argument("--budget", type=int, default=45, help="builds allowed, -Oz included")
        sub.add_argument("--json", action="store_true", help="one JSON object on stdout")
        sub.add_argument("--no-cache", action="store_true", help="measure everything afresh")
    unit.add_argument("--time-limit", type=float, default=10.0,
                      help="seconds for the whole file, start-up included (default 10)")
    return parser


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    own, cflags = _split_cflags(list(sys.argv[1:] if argv is None else argv))
    args = _parser().parse_args(own)
    if args.command == "tune" and args.out and args.emit_llvm:
        raise UserError("give -o (an object) or --emit-llvm (IR), not both")
    from ml_tuner.cache import MeasureCache

    cache = None if args.no_cache else MeasureCache()
    try:
        if args.command == "tune":
            result = _tune(args, cflags, cache)
        else:
            result = _tune_program(args, cflags, cache)
    finally:
        if cache is not None:
            cache.close()
    if args.json:
        json.dump(result.as_json(), sys.stdout)
        sys.stdout.write("\n")
        return 0
    _print(result)
    return 0


def _tune(args, cflags: list[str], cache):
    from ml_tuner.tune import tune_unit

    out = args.emit_llvm or args.out
    return tune_unit(args.file, args.target, cflags=cflags, out=out, budget=args.budget,
                     cache=cache, emit_llvm=args.emit_llvm is not None,
                     time_limit=args.time_limit, started=STARTED)


def _tune_program(args, cflags: list[str], cache):
    from ml_tuner.program import tune_program
    from ml_tuner.run import args_check

    # clang-style: one set of flags compiles and links; -Wl,... and -l... only link.
    compile_flags = [f for f in cflags if not f.startswith(("-Wl,", "-l", "-L"))
                     and f != "-flto"]
    ldflags = [f for f in cflags if f.startswith(("-Wl,", "-l", "-L"))]
    check = (args_check(args.target, [shlex.split(args.check)]) if args.check is not None
             else None)
    return tune_program(args.units, args.target, cflags=compile_flags, ldflags=ldflags,
                        out=args.out, lto="-flto" in cflags, budget=args.budget, cache=cache,
                        mode=args.mode, check=check, time_limit=args.time_limit)


def _print(result) -> None:
    print(f"kept: {result.candidate}" + (f"  ({' '.join(result.flags)})" if result.flags else ""))
    print(f"{'':8}{'clang -Oz':>12}{'tuned':>12}{'gain':>10}")
    for key in ("flash", "text"):
        a, b = getattr(result.baseline, key), getattr(result.tuned, key)
        gain = f"{100.0 * (a - b) / a:+.2f}%" if a else "n/a"
        print(f"{key:8}{a:>12}{b:>12}{gain:>10}")
    if result.fell_back:
        print(f"fell back to clang -Oz: {result.reason}")
    else:
        print(result.reason)
    for rejection in getattr(result, "rejected", ()):
        print(f"rejected {rejection.candidate}: its run differs from clang -Oz's "
              f"(miscompile?), not shipped")
    written = result.out if result.out else "nothing written (no -o)"
    print(f"builds: {result.compilations}, seconds: {result.seconds:.2f}, output: {written}")
