"""`fleetforge app.new NAME`: an app layer in the project's ./layers, ready to build into an image.

With `--design FILE.diaspec` its C code is the framework `diaspec generate --lang c` writes (and
the callbacks you implement); without, a one-file C program that prints a trace line per second.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from apps.description import NAME_PATTERN
from fleetforge.errors import UserError
from fleetforge.paths import project_dir

LAYER_TOML = """\
description = "App {name}{what}"
depends = ["feature/apps"]
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


def new_app(name: str, design: Path | None = None, layers: Path | None = None) -> Path:
    """Create layers/app/NAME/ (layer.toml, app.toml, c/); nothing is left half-written."""
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"'{name}' is not a valid app name (letters, digits, _ + -; it names a "
                        f"program, a service and the update artifact app-{name})")
    folder = (layers or project_dir() / "layers") / "app" / name
    if folder.exists():
        raise UserError("already exists; choose another name", where=str(folder))
    folder.mkdir(parents=True)
    try:
        _write(name, design, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _write(name: str, design: Path | None, folder: Path) -> None:
    what = f" (DiaSpec design {design.name})" if design else ""
    (folder / "layer.toml").write_text(LAYER_TOML.format(name=name, what=what))
    (folder / "app.toml").write_text(APP_TOML.format(name=name,
                                                     args='"--trace"' if design else ""))
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
