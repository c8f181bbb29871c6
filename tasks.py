"""Invoke tasks typed at the workspace root. Thin: each package's `tasks` module holds its tasks.

Root-level tasks (`invoke build`, `invoke deploy`, ...) come from a package module's
`ROOT_TASKS`; grouped tasks (`invoke ota.status`, `invoke diaspec.check`, ...) from its
`namespace` Collection.
"""
import importlib

from invoke import Collection

TASK_MODULES = (
    "images.tasks",
    "images.buildroot.tasks",
    "ota.tasks",
    "diaspec.tasks",
    "ml_tuner.tasks",
)

ns = Collection()
for module_name in TASK_MODULES:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            continue  # that package is not in this checkout yet
        raise
    for task in getattr(module, "ROOT_TASKS", ()):
        ns.add_task(task)
    if hasattr(module, "namespace"):
        ns.add_collection(module.namespace)
