"""Invoke tasks `tune.corpus`, `tune.train`, `tune.eval` (thin: the logic lives in ml_tuner)."""
from __future__ import annotations

from invoke import Collection, task

from fleetforge.errors import exit_on_user_error

TARGETS = "aarch64-linux-gnu,thumbv7em-none-eabi"


def _targets(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


@task(help={"target": f"comma-separated targets (default {TARGETS})",
            "max_units": "translation units per Debian project", "generated": "csmith programs",
            "workers": "parallel compiles"})
@exit_on_user_error
def corpus(c, target=TARGETS, max_units=30, generated=60, workers=2):
    """Fetch Debian sources, compile their units and csmith programs to raw IR, per target."""
    from collections import Counter

    from ml_tuner.corpus import build_corpus

    for name in _targets(target):
        entries = build_corpus(name, int(max_units), int(generated), int(workers))
        for (dataset, project, split), n in sorted(Counter(
                (e.dataset, e.project, e.split) for e in entries).items()):
            print(f"{name:22} {dataset:7} {project:12} {split:5} {n:4} units")


@task(help={"target": f"comma-separated targets (default {TARGETS})",
            "epochs": "training epochs", "workers": "parallel builds"})
@exit_on_user_error
def train(c, target=TARGETS, epochs=60, workers=2):
    """Measure the candidate pool on the training units, pick the coreset, train the GNN."""
    import json

    from ml_tuner.train import TrainConfig, train as run_training

    for name in _targets(target):
        summary = run_training(TrainConfig(target=name, epochs=int(epochs), workers=int(workers)))
        print(json.dumps(summary, indent=1))


@task(name="eval", help={"target": f"comma-separated targets (default {TARGETS})",
                         "workers": "parallel builds"})
@exit_on_user_error
def evaluate(c, target=TARGETS, workers=2):
    """Held-out evaluation (bench/ml_tuner_eval.py): linked programs and units, per target."""
    from ml_tuner.evaluate import run_evaluation

    for name in _targets(target):
        print(run_evaluation(name, workers=int(workers)).read_text())


namespace = Collection("tune")
namespace.add_task(corpus)
namespace.add_task(train)
namespace.add_task(evaluate)
