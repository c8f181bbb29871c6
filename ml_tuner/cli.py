"""Command line: `ml-tuner tune FILE --target TRIPLE [--budget 45] [--json]` (also `python -m ml_tuner`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fleetforge.errors import exit_on_user_error
from ml_tuner.cache import MeasureCache
from ml_tuner.tune import tune_file


def _percent(oz: int, tuned: int) -> str:
    return f"{100.0 * (oz - tuned) / oz:+.2f}%" if oz else "n/a"


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ml-tuner")
    commands = parser.add_subparsers(dest="command", required=True)
    tune = commands.add_parser("tune", help="pick a pass order for one file (never worse than -Oz)")
    tune.add_argument("file", type=Path, help="a .c, .ll or .bc file")
    tune.add_argument("--target", required=True, help="target triple, e.g. aarch64-linux-gnu")
    tune.add_argument("--budget", type=int, default=45, help="compilations allowed (with -Oz)")
    tune.add_argument("--json", action="store_true", help="one JSON object on stdout")
    tune.add_argument("--model", type=Path, default=None,
                      help="a checkpoint (default: the shipped model matching the IR)")
    tune.add_argument("--ir-from", default="clang-oz", choices=("clang-oz", "o0"),
                      help="how a .c file becomes IR: as clang -Oz emits it (default) or -O0")
    tune.add_argument("--no-cache", action="store_true", help="measure everything afresh")
    args = parser.parse_args(argv)
    cache = None if args.no_cache else MeasureCache()
    try:
        result = tune_file(args.file, args.target, args.budget, args.model, cache,
                           ir_from=args.ir_from)
    finally:
        if cache is not None:
            cache.close()
    if args.json:
        json.dump(result.as_json(), sys.stdout)
        sys.stdout.write("\n")
        return 0
    oz, tuned = result.oz, result.tuned
    print(f"sequence: {result.label}")
    print(f"passes: {','.join(result.passes)}")
    print(f"{'':18}{'-Oz':>10}{'tuned':>10}{'gain':>10}")
    for key in ("ir_instructions", "text_bytes", "object_bytes"):
        a, b = getattr(oz, key), getattr(tuned, key)
        print(f"{key:18}{a:>10}{b:>10}{_percent(a, b):>10}")
    print(f"compilations: {result.compilations}, seconds: {result.seconds:.2f}")
    return 0

