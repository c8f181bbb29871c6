"""`fleetforge toolchains`: which compile targets are installed, and the line that installs the rest."""
from __future__ import annotations

from invoke import task
from rich.console import Console
from rich.table import Table

from fleetforge.errors import exit_on_user_error
from toolchains import targets

stdout = Console()


@task
@exit_on_user_error
def toolchains(c):
    """List the compile targets, whether their compilers are installed, and what to install."""
    table = Table("target", "installed", "description")
    missing_all: list[str] = []
    for target in targets().values():
        missing = target.missing_packages()
        missing_all += [p for p in missing if p not in missing_all]
        table.add_row(target.name, "yes" if not missing else f"no: {' '.join(missing)}",
                      target.description)
    stdout.print(table)
    if missing_all:
        stdout.print(f"install the missing ones: apt-get install {' '.join(missing_all)}",
                     markup=False, highlight=False)


ROOT_TASKS = [toolchains]
