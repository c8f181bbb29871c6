#!/usr/bin/env python3
"""Held-out evaluation of the pass-order tuner: per-dataset table and PNG plots.

Usage (after `fleetforge tune.corpus`; uses the shipped model unless --model is given):
    FLEETFORGE_CACHE=/work/cache ML_TUNER_WORKERS=2 python bench/ml_tuner_eval.py [--budget 45]
Writes bench/results/ml_tuner_eval.md, ml_tuner_rows.json, ml_tuner_per_dataset.png and
ml_tuner_distribution.png.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fleetforge.errors import exit_on_user_error
from ml_tuner.evaluate import run_evaluation
from ml_tuner.tune import SHIPPED_MODEL


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=45)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="held-out modules per project")
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = run_evaluation(args.budget, args.workers, args.out, args.limit or None,
                            model_path=args.model)
    print(report.read_text())


if __name__ == "__main__":
    main()
