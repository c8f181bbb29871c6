#!/usr/bin/env python3
"""Held-out linked programs per target: clang -Oz -flto baseline, the tuner, random, oracle.

Usage (after `fleetforge tune.corpus` and `fleetforge tune.train`; cached builds are reused):
    FLEETFORGE_CACHE=/work/cache ML_TUNER_WORKERS=2 nice -n 10 python bench/ml_tuner_eval.py \
        [--target aarch64-linux-gnu,thumbv7em-none-eabi] [--budget 45] [--program lua]
Writes bench/results/ml_tuner_<target>.md and .json; prints them with the machine and its load.
"""
from __future__ import annotations

import argparse

from fleetforge.errors import exit_on_user_error
from ml_tuner.evaluate import machine_line, run_evaluation
from ml_tuner.tasks import TARGETS


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=TARGETS)
    parser.add_argument("--budget", type=int, default=45)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--program", action="append", help="only these programs")
    args = parser.parse_args()
    print(f"machine: {machine_line()}")
    for target in args.target.split(","):
        report = run_evaluation(target, args.budget, args.workers, only=args.program)
        print(report.read_text())
    print(f"machine at the end: {machine_line()}")


if __name__ == "__main__":
    main()
