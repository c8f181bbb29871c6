"""Invoke tasks of apps: `fleetforge app.build` (and app.deploy): thin, the logic is in apps/."""
from __future__ import annotations

from pathlib import Path

from invoke import Collection, task
from rich.console import Console

from fleetforge.errors import exit_on_user_error
from fleetforge.paths import project_dir

stdout = Console()

BUILD_HELP = {
    "app": "the app's folder (holding app.toml), or the name of an app layer (layers/app/NAME)",
    "target": "compile targets, comma-separated (see `fleetforge toolchains`; default: the "
              "app's, else this machine)",
    "optimize": "tuned (clang IR + the tuner's pass lists) or a plain level: Oz Os O2 O3 O1 O0",
    "budget": "tuner compilations per unit (tuned only)",
    "out": "build folder (default: ./build/apps/NAME/OPTIMIZE; one folder per target in it)",
    "verbose": "show every compiler command",
}


@task(positional=["app"], help=BUILD_HELP)
@exit_on_user_error
def build(c, app, target="", optimize="", budget=45, out="", verbose=False):
    """Build an app's programs for a target and print their sizes (-Oz and tuned side by side)."""
    from apps.build import app_targets, build_app
    from apps.locate import find_app
    from apps.report import print_sizes

    description = find_app(app)
    optimize = optimize or description.optimize
    folder = Path(out) if out else project_dir() / "build" / "apps" / description.name / optimize
    results = build_app(description, folder, targets=app_targets(description, target),
                        optimize=optimize, budget=int(budget), verbose=verbose)
    for result in results:
        print_sizes([result], stdout)
        for program in description.programs:
            stdout.print(f"{result.program(program.name)}", markup=False, highlight=False)


namespace = Collection("app")
namespace.add_task(build)
