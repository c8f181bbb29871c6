"""`diaspec new NAME`: a starter design (taxonomy + application), its components and a scenario,
so the generated app shows the whole design working in its first run."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from fleetforge.errors import UserError

from diaspec.templating import render

STARTER = Path(__file__).with_name("templates") / "new"


def new_project(name: str, parent: Path) -> Path:
    """Create `<parent>/<name>/` with a starter design and its generated, runnable app."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise UserError(f"'{name}' is not a valid project name (letters, digits and _, not starting with a digit)")
    root = Path(parent) / name
    if root.exists():
        raise UserError(f"'{root}' already exists; choose another name")
    root.mkdir(parents=True)
    try:
        _write_project(name, root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)  # nothing half-written is left behind
        raise
    return root


def _write_project(name: str, root: Path) -> None:
    from diaspec.compiler import check_spec
    from diaspec.pygen import generate_python

    (root / "taxonomy.diaspec").write_text(render("new/taxonomy.diaspec.j2", name=name), encoding="utf-8")
    spec = root / f"{name}.diaspec"
    spec.write_text(render("new/app.diaspec.j2", name=name), encoding="utf-8")
    app = root / f"{name}_app"
    shutil.copytree(STARTER / "app", app, ignore=shutil.ignore_patterns("__pycache__"))
    checked = check_spec(spec)
    if not checked.ok:  # the starter design is ours: a failure here is a bug
        raise UserError("the starter design does not check:\n" + checked.diagnostics.render())
    generate_python(checked, app)
