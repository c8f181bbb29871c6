"""Check the user's classes against the design after regeneration: missing, stale and mismatched
callbacks. Reads the code with `ast` (never imports it), so broken user code is reported, not run."""
from __future__ import annotations

import ast
from pathlib import Path

from diaspec.callbacks import Callback, context_callbacks, controller_callbacks, device_action_callbacks
from diaspec.compiler import CheckedDesign
from diaspec.diagnostics import Diagnostics, Pos
from diaspec.naming import py_ident, py_name

_CALLBACK_PREFIXES = ("on_", "when_required")


def _class(tree: ast.Module, name: str) -> ast.ClassDef | None:
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)


def _positional(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = func.args
    return [a.arg for a in args.posonlyargs + args.args][1:]  # without self


def _check_class(
    path: Path, display: str, class_name: str, expected: list[Callback], diags: Diagnostics,
    *, callbacks_only: bool,
) -> None:
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except (OSError, UnicodeDecodeError) as error:
        diags.error(Pos(display, 1, 1), f"cannot read user code: {error}")
        return
    except SyntaxError as error:
        diags.error(Pos(display, error.lineno or 1, error.offset or 1), f"user code does not parse: {error.msg}")
        return
    cls = _class(tree, class_name)
    if cls is None:
        diags.error(Pos(display, 1, 1), f"class {class_name} is missing (the design needs it)")
        return
    methods = {
        n.name: n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    wanted = {cb.method: cb for cb in expected}
    class_pos = Pos(display, cls.lineno, cls.col_offset + 1)
    for cb in expected:
        func = methods.get(cb.method)
        signature = f"{cb.method}(self{''.join(', ' + p for p in cb.params)})"
        if func is None:
            diags.error(class_pos, f"{class_name} is missing {signature} for '{cb.contract}'")
            continue
        params = _positional(func)
        if len(params) != len(cb.params) and func.args.vararg is None:
            diags.error(
                Pos(display, func.lineno, func.col_offset + 1),
                f"{class_name}.{cb.method} takes ({', '.join(params)}) but '{cb.contract}' calls it "
                f"with ({', '.join(cb.params)}): write {signature}",
            )
    if callbacks_only:
        for name, func in methods.items():
            if name.startswith(_CALLBACK_PREFIXES) and name not in wanted:
                diags.warning(
                    Pos(display, func.lineno, func.col_offset + 1),
                    f"{class_name}.{name} is no longer called: its contract left the design (remove it)",
                )


def check_user_code(checked: CheckedDesign, package_dir: Path, *, display_root: Path | None = None) -> Diagnostics:
    """Findings about the user classes of a generated Python app."""
    diags = Diagnostics()
    design, index = checked.design, checked.index
    root = Path(package_dir)

    def shown(path: Path) -> str:
        if display_root is None:
            return str(path)
        try:
            return str(path.relative_to(display_root))
        except ValueError:
            return str(path)

    expected_files: set[Path] = set()
    for component, callbacks in [(c, context_callbacks(c)) for c in design.contexts] + [
        (c, controller_callbacks(c)) for c in design.controllers
    ]:
        path = root / "components" / f"{py_name(component.name.text)}.py"
        expected_files.add(path)
        if path.exists():
            _check_class(path, shown(path), py_ident(component.name.text), callbacks, diags, callbacks_only=True)
    for device in design.devices:
        path = root / "devices" / f"{py_name(device.name.text)}.py"
        expected_files.add(path)
        if path.exists():
            cbs = device_action_callbacks(index, device.name.text, inherited=True)
            _check_class(path, shown(path), py_ident(device.name.text), cbs, diags, callbacks_only=False)
    for folder in ("components", "devices"):
        for path in sorted((root / folder).glob("*.py")):
            if path.name != "__init__.py" and path not in expected_files:
                diags.warning(
                    Pos(shown(path), 1, 1),
                    f"{path.stem} is no longer in the design; this module is not used (delete it)",
                )
    return diags
