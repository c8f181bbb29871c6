"""Invoke tasks of apps: `fleetforge app.build` (and app.deploy): thin, the logic is in apps/."""
from __future__ import annotations

from pathlib import Path

from invoke import Collection, task
from rich.console import Console

from fleetforge.errors import exit_on_user_error
from fleetforge.paths import project_dir

stdout = Console()
stderr = Console(stderr=True)

BUILD_HELP = {
    "app": "the app's folder (holding app.toml), or the name of an app layer (layers/app/NAME)",
    "target": "compile targets, comma-separated (see `fleetforge toolchains`; default: the "
              "app's, else this machine)",
    "optimize": "tuned (the tuner's clang -Oz settings per unit, never larger) or a plain level: "
                "Oz Os O2 O3 O1 O0",
    "budget": "tuner compilations per unit (tuned only; default: the app's, else 45)",
    "out": "build folder (default: ./build/apps/NAME/OPTIMIZE; one folder per target in it)",
    "verbose": "show every compiler command",
}


@task(positional=["app"], help=BUILD_HELP)
@exit_on_user_error
def build(c, app, target="", optimize="", budget=0, out="", verbose=False):
    """Build an app's programs for a target and print their sizes (-Oz and tuned side by side)."""
    from apps.build import app_targets, build_app
    from apps.locate import find_app
    from apps.report import print_sizes

    description = find_app(app)
    optimize = optimize or description.optimize
    folder = Path(out) if out else project_dir() / "build" / "apps" / description.name / optimize
    targets = app_targets(description, target)
    names = ",".join(t.name for t in targets)
    with stderr.status(f"building app {description.name} for {names} ({optimize})") as status:
        results = build_app(description, folder, targets=targets, optimize=optimize,
                            budget=int(budget) or None, verbose=verbose, on_step=status.update)
    for result in results:
        print_sizes([result], stdout)
        for program in description.programs:
            stdout.print(f"{result.program(program.name)}", markup=False, highlight=False)


@task(positional=["name"], help={
    "name": "the app's name (its program, service and update artifact app-NAME)",
    "design": "a DiaSpec design: the app's C code is the framework `diaspec generate --lang c` "
              "writes, plus the callbacks you implement",
    "python": "a Python package folder (e.g. rover/rover_app from `diaspec new rover`): the "
              "device runs it with python3",
})
@exit_on_user_error
def new(c, name, design="", python=""):
    """Create an app layer in ./layers/app/NAME (layer.toml, app.toml, and c/ for a C app)."""
    from apps.scaffold import new_app

    folder = new_app(name, Path(design) if design else None,
                     python=Path(python) if python else None)
    stdout.print(f"created {folder}: build an image with it: fleetforge build --layers "
                 f"qemu-aarch64,core/minimal,feature/ota,app/{name}", markup=False,
                 highlight=False)


namespace = Collection("app")
namespace.add_task(build)
namespace.add_task(new)
