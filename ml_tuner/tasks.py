"""Invoke tasks `tune.corpus`, `tune.train`, `tune.eval` (thin: the logic lives in ml_tuner)."""
from __future__ import annotations

from invoke import Collection, task

from fleetforge.errors import exit_on_user_error


@task(help={"max_units": "translation units per Debian project",
            "generated": "csmith and llvm-stress programs each", "workers": "parallel compiles"})
@exit_on_user_error
def corpus(c, max_units=30, generated=40, workers=2):
    """Fetch Debian sources, compile per translation unit, generate csmith/llvm-stress IR."""
    from collections import Counter

    from ml_tuner.corpus import build_corpus

    entries = build_corpus(int(max_units), int(generated), int(workers))
    for (dataset, project, split), n in sorted(Counter(
            (e.dataset, e.project, e.split) for e in entries).items()):
        print(f"{dataset:12} {project:12} {split:5} {n:4} modules")


@task(help={"epochs": "training epochs", "workers": "parallel measurements",
            "ir": "o0 (model.pt) or clang-oz (model-clang-oz.pt)"})
@exit_on_user_error
def train(c, epochs=40, workers=2, ir="o0"):
    """Measure the candidate pool on training programs, pick the coreset, train the GNN."""
    import json

    from fleetforge.errors import UserError
    from ml_tuner.train import DATA_DIR, TrainConfig, train as run_training

    if ir not in ("o0", "clang-oz"):
        raise UserError(f"--ir must be o0 or clang-oz (got {ir})")
    suffix = "" if ir == "o0" else "-clang-oz"
    summary = run_training(TrainConfig(epochs=int(epochs), workers=int(workers), ir=ir),
                           DATA_DIR / f"model{suffix}.pt", DATA_DIR / f"coreset{suffix}.json")
    print(json.dumps(summary, indent=1))


@task(name="eval", help={"budget": "compilations per module", "workers": "parallel measurements",
                         "limit": "held-out modules per project (0: all)"})
@exit_on_user_error
def evaluate(c, budget=45, workers=2, limit=0):
    """Evaluate on held-out projects; writes bench/results/ml_tuner_eval.md and PNG plots."""
    from ml_tuner.evaluate import run_evaluation

    report = run_evaluation(int(budget), int(workers), None, int(limit) or None)
    print(report.read_text())


namespace = Collection("tune")
namespace.add_task(corpus)
namespace.add_task(train)
namespace.add_task(evaluate)
