"""`fleetforge app.new NAME`: an app layer in the project's ./layers, ready to build into an image.

With `--design FILE.diaspec` its C code is the framework `diaspec generate --lang c` writes (and
the callbacks you implement); with `--python PACKAGE` it is that Python package (e.g. the app
`diaspec new` makes), run by the device's python3; with neither, a one-file C program that
prints a trace line per second.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from apps.description import NAME_PATTERN
from fleetforge.errors import UserError
from fleetforge.paths import project_dir

LAYER_TOML = """\
description = "App {name}{what}"
depends = [{depends}]
"""

PYTHON_APP_TOML = """\
# App {name}: the Python package {module}, run by the device's python3 (docs/apps.md).
[app]
name = "{name}"

[python]
package = "{package}"

[service]
# A DiaSpec app: one trace line per event, on the wall clock, until stopped.
args = ["--trace", "--realtime", "--seconds", "inf"]
"""

APP_TOML = """\
# App {name}: what to build and how the robot runs it (docs/apps.md).
[app]
name = "{name}"
cflags = ["-std=c11", "-Wall", "-Wextra"]
include = ["c"]

[[program]]
name = "{name}"
sources = ["c/*.c"]

[service]
args = [{args}]
"""

HELLO_C = """\
/* App {name}: a trace line per second. Replace with your robot's code. */
#define _DEFAULT_SOURCE /* sleep() under -std=c11 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{{
    for (unsigned long tick = 1;; tick++) {{
        printf("{name} tick %lu\\n", tick);
        fflush(stdout);
        sleep(1);
    }}
}}
"""


def new_app(name: str, design: Path | None = None, layers: Path | None = None,
            python: Path | None = None) -> Path:
    """Create layers/app/NAME/ (layer.toml, app.toml, c/); nothing is left half-written."""
    if design and python:
        raise UserError("give --design (a C app) or --python (a Python app), not both")
    if python is not None and not (python / "__init__.py").is_file():
        raise UserError("not a Python package folder (no __init__.py)", where=str(python))
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"'{name}' is not a valid app name (letters, digits, _ + -; it names a "
                        f"program, a service and the update artifact app-{name})")
    folder = (layers or project_dir() / "layers") / "app" / name
    if folder.exists():
        raise UserError("already exists; choose another name", where=str(folder))
    folder.mkdir(parents=True)
    try:
        if python is not None:
            _write_python(name, python, folder)
        else:
            _write(name, design, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _write_python(name: str, package: Path, folder: Path) -> None:
    (folder / "layer.toml").write_text(LAYER_TOML.format(
        name=name, what=f" (Python package {package.resolve().name})",
        depends='"feature/apps", "feature/python"'))
    relative = Path(os.path.relpath(package.resolve(), folder.resolve())).as_posix()
    (folder / "app.toml").write_text(PYTHON_APP_TOML.format(
        name=name, module=package.resolve().name, package=relative))


def _write(name: str, design: Path | None, folder: Path) -> None:
    what = f" (DiaSpec design {design.name})" if design else ""
    (folder / "layer.toml").write_text(LAYER_TOML.format(name=name, what=what,
                                                         depends='"feature/apps"'))
    (folder / "app.toml").write_text(APP_TOML.format(name=name,
                                                     args=""))
    code = folder / "c"
    code.mkdir()
    if design is None:
        (code / "main.c").write_text(HELLO_C.format(name=name))
        return
    from diaspec.cgen import check_c_user_code, generate_c
    from diaspec.compiler import check_spec

    checked = check_spec(str(design))
    if not checked.ok:
        raise UserError(f"the design does not check (run: diaspec check {design})",
                        where=str(design))
    generate_c(checked, code)
    problems = check_c_user_code(checked, code)
    if problems.has_errors:
        raise UserError(problems.render())
