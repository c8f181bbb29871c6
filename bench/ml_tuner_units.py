#!/usr/bin/env python3
"""Held-out units per target: speed of `ml-tuner tune` (uncached, start-up included, with the
breakdown), gains against clang -Oz and against the paper's setting, the coreset oracle.

Usage:  FLEETFORGE_CACHE=/work/cache nice -n 10 python bench/ml_tuner_units.py \
            [--target aarch64-linux-gnu,thumbv7em-none-eabi] [--per-project 5] [--budget 45]
Writes bench/results/ml_tuner_units_<target>.md and .json.
"""
from __future__ import annotations

import argparse

from fleetforge.errors import exit_on_user_error
from ml_tuner.evaluate import machine_line, run_unit_evaluation
from ml_tuner.tasks import TARGETS


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=TARGETS)
    parser.add_argument("--per-project", type=int, default=5)
    parser.add_argument("--budget", type=int, default=45)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {machine_line()}")
    for target in args.target.split(","):
        print(run_unit_evaluation(target, args.per_project, args.budget, args.workers)
              .read_text())
    print(f"machine at the end: {machine_line()}")


if __name__ == "__main__":
    main()
