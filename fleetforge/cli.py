"""The `fleetforge` command: every FleetForge task (build, qemu, deploy, ...) from any folder.

It is an invoke program whose tasks come from the packages (each package's `tasks` module), so
`fleetforge build` works anywhere and `fleetforge build` at the repository root (tasks.py) runs the
very same tasks. Builds go to ./workspaces, or to `--work-dir DIR` (as kas does).
"""
from __future__ import annotations

import importlib
import sys

from invoke import Argument, Collection, Program

from fleetforge.paths import set_workspaces_dir

# Root-level tasks (`fleetforge build`, `fleetforge deploy`, ...) come from a module's
# `ROOT_TASKS`; grouped tasks (`fleetforge ota.status`, ...) from its `namespace` Collection.
TASK_MODULES = (
    "images.tasks",
    "images.buildroot.tasks",
    "toolchains.tasks",
    "ota.tasks",
    "diaspec.tasks",
    "ml_tuner.tasks",
    "apps.tasks",
    "lowbit.tasks",
)


def task_collection() -> Collection:
    """All tasks of all packages in one collection."""
    collection = Collection()
    for module_name in TASK_MODULES:
        module = importlib.import_module(module_name)
        for task in getattr(module, "ROOT_TASKS", ()):
            collection.add_task(task)
        if hasattr(module, "namespace"):
            collection.add_collection(module.namespace)
    return collection


class FleetForgeProgram(Program):
    """invoke's program with FleetForge's one global option, --work-dir."""

    def core_args(self) -> list[Argument]:
        return [*super().core_args(),
                Argument(names=("work-dir",), help="folder for workspaces (default: ./workspaces)")]

    def execute(self) -> None:
        work_dir = self.args["work-dir"].value
        if work_dir:
            set_workspaces_dir(work_dir)
        super().execute()


def _work_dir_first(argv: list[str]) -> list[str]:
    """`fleetforge build --work-dir DIR` reads as `fleetforge --work-dir DIR build`: the option
    is global (every task's workspace), wherever the user types it."""
    rest, moved = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--work-dir" and i + 1 < len(argv):
            moved += argv[i:i + 2]
            i += 2
            continue
        if arg.startswith("--work-dir="):
            moved += ["--work-dir", arg.split("=", 1)[1]]
        else:
            rest.append(arg)
        i += 1
    return [*moved, *rest]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    program = FleetForgeProgram(name="FleetForge", binary="fleetforge",
                                namespace=task_collection(), version="0.1.0")
    program.run(["fleetforge", *_work_dir_first(args)])
