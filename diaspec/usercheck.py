"""Check the user's classes against the design after regeneration: missing, stale, renamed and
mismatched callbacks; every `discover` use, structure construction and emission against the new
design; imports of framework names that no longer exist. Reads the code with `ast` (never imports
it), so broken user code is reported, not run."""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from diaspec.callbacks import (
    Callback,
    context_callback,
    controller_callback,
    device_action_callbacks,
    discover_protocol,
    get_member,
)
from diaspec.compiler import CheckedDesign
from diaspec.diagnostics import Diagnostics, Pos
from diaspec.model import Structure
from diaspec.naming import py_ident, py_name

_CALLBACK_PREFIXES = ("on_", "when_required")


@dataclass
class Expected:
    """What the design says about one callback: its signature, its discover and its emission."""

    callback: Callback
    discover: dict[str, set[str] | None] = field(default_factory=dict)  # member -> order methods (None: a pull)


def _class(tree: ast.Module, name: str) -> ast.ClassDef | None:
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)


def _positional(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = func.args
    return [a.arg for a in args.posonlyargs + args.args][1:]  # without self


def _signature(cb: Callback) -> str:
    return f"{cb.method}(self{''.join(', ' + p for p in cb.params)})"


class _Reader:
    """Findings about one user module."""

    def __init__(self, path: Path, display: str, diags: Diagnostics) -> None:
        self.display = display
        self.diags = diags
        self.tree: ast.Module | None = None
        try:
            self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (OSError, UnicodeDecodeError) as error:
            diags.error(Pos(display, 1, 1), f"cannot read user code: {error}")
        except SyntaxError as error:
            diags.error(Pos(display, error.lineno or 1, error.offset or 1), f"user code does not parse: {error.msg}")

    def at(self, node: ast.AST) -> Pos:
        return Pos(self.display, getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1)


def _check_imports(reader: _Reader, framework_names: set[str]) -> None:
    """`from ..framework[.x] import Name` of a name the regenerated framework no longer has."""
    assert reader.tree is not None
    for node in ast.walk(reader.tree):
        if isinstance(node, ast.ImportFrom) and node.level == 2 and (node.module or "").split(".")[0] == "framework":
            for alias in node.names:
                if alias.name != "*" and alias.name not in framework_names:
                    reader.diags.error(reader.at(node), f"imports {alias.name}, which the framework no longer has "
                                                         "(its contract or type left the design)")


def _check_discover(reader: _Reader, owner: str, func: ast.FunctionDef | ast.AsyncFunctionDef, expected: Expected) -> None:
    """Every `discover.x` a callback uses is in its contract (and every order method too)."""
    params = _positional(func)
    if len(params) < len(expected.callback.params):
        return  # the signature is reported already
    name = params[len(expected.callback.params) - 1] if expected.callback.params else None
    if name is None:
        return
    offered = sorted(expected.discover) + ["now"]
    for node in ast.walk(func):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == name):
            continue
        member = node.attr
        if member == "now":
            continue
        if member not in expected.discover:
            reader.diags.error(
                reader.at(node),
                f"{owner}.{func.name} uses discover.{member}, which '{expected.callback.contract}' does not "
                f"offer (it offers: {', '.join(offered)})",
            )
    for node in ast.walk(func):
        # discover.<device>[.where(...)].<method>(...)
        if not isinstance(node, ast.Attribute):
            continue
        target = node.value
        if isinstance(target, ast.Call) and isinstance(target.func, ast.Attribute) and target.func.attr == "where":
            target = target.func.value
        if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == name
                and expected.discover.get(target.attr)):
            methods = expected.discover[target.attr] or set()
            if node.attr not in methods | {"where", "devices"}:
                reader.diags.error(reader.at(node), f"{owner}.{func.name} orders {target.attr}.{node.attr}(), which "
                                                    f"'{expected.callback.contract}' does not allow (it may order: "
                                                    f"{', '.join(sorted(methods))})")


def _check_emission(reader: _Reader, owner: str, func: ast.FunctionDef | ast.AsyncFunctionDef, cb: Callback) -> None:
    """A `no publish` callback returns nothing; an `always publish` one never returns None."""
    returns = [n for n in ast.walk(func) if isinstance(n, ast.Return)]
    valued = [n for n in returns if n.value is not None and not (isinstance(n.value, ast.Constant) and n.value.value is None)]
    if cb.emission == "no" and valued:
        reader.diags.error(reader.at(valued[0]), f"{owner}.{func.name} returns a value, but '{cb.contract}' says "
                                                 "'no publish' now: update state and return None")
    if cb.emission in ("always", "required"):
        bare = [n for n in returns if n not in valued]
        if bare or not returns:
            where = reader.at(bare[0]) if bare else reader.at(func)
            reader.diags.error(where, f"{owner}.{func.name} may return None, but '{cb.contract}' must always give a value")


def _check_structures(reader: _Reader, checked: CheckedDesign) -> None:
    """`Velocity(...)` built with the fields the design now gives it."""
    assert reader.tree is not None
    structures = {py_ident(s.name.text): s for s in checked.design.of_kind(Structure)}
    for node in ast.walk(reader.tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in structures):
            continue
        struct = structures[node.func.id]
        fields = [py_name(f.name.text) for f in struct.fields]
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            continue
        given = fields[: len(node.args)] + [k.arg for k in node.keywords if k.arg]
        unknown = [k.arg for k in node.keywords if k.arg and k.arg not in fields]
        if len(node.args) > len(fields):
            reader.diags.error(reader.at(node), f"{struct.name.text}(...) is given {len(node.args)} values; it has "
                                                f"{len(fields)} fields ({', '.join(fields) or 'none'})")
        elif unknown:
            reader.diags.error(reader.at(node), f"{struct.name.text} has no field {', '.join(unknown)} "
                                                f"(its fields: {', '.join(fields) or 'none'})")
        elif set(given) != set(fields):
            missing = [f for f in fields if f not in given]
            reader.diags.error(reader.at(node), f"{struct.name.text}(...) lacks {', '.join(missing)}: the design gave "
                                                f"{struct.name.text} {'these fields' if len(missing) > 1 else 'this field'}")


def _check_class(
    reader: _Reader, class_name: str, expected: list[Expected], checked: CheckedDesign, *, callbacks_only: bool,
) -> None:
    assert reader.tree is not None
    cls = _class(reader.tree, class_name)
    if cls is None:
        reader.diags.error(Pos(reader.display, 1, 1), f"class {class_name} is missing (the design needs it)")
        return
    methods = {n.name: n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    wanted = {e.callback.method: e for e in expected}
    missing = [e for e in expected if e.callback.method not in methods]
    leftovers = [n for n in methods if callbacks_only and n.startswith(_CALLBACK_PREFIXES) and n not in wanted]
    renamed: dict[str, str] = {}
    if len(missing) == 1 and len(leftovers) == 1:
        old = methods[leftovers[0]]
        if len(_positional(old)) == len(missing[0].callback.params):
            renamed[leftovers[0]] = missing[0].callback.method  # same signature: one gone, one new
    for item in expected:
        cb = item.callback
        func = methods.get(cb.method)
        if func is None:
            old_name = next((o for o, new in renamed.items() if new == cb.method), None)
            if old_name is not None:
                reader.diags.error(
                    reader.at(methods[old_name]),
                    f"{class_name}.{old_name} looks renamed: the design now calls {_signature(cb)} for "
                    f"'{cb.contract}' (same signature); rename the method",
                )
            else:
                reader.diags.error(reader.at(cls), f"{class_name} is missing {_signature(cb)} for '{cb.contract}'")
            continue
        params = _positional(func)
        if len(params) != len(cb.params) and func.args.vararg is None:
            reader.diags.error(
                reader.at(func),
                f"{class_name}.{cb.method} takes ({', '.join(params)}) but '{cb.contract}' calls it "
                f"with ({', '.join(cb.params)}): write {_signature(cb)}",
            )
            continue
        if callbacks_only:
            _check_discover(reader, class_name, func, item)
            if cb.emission in ("always", "maybe", "no", "required"):
                _check_emission(reader, class_name, func, cb)
    for name in leftovers:
        if name not in renamed:
            reader.diags.warning(reader.at(methods[name]),
                                 f"{class_name}.{name} is no longer called: its contract left the design (remove it)")


def _expected_components(checked: CheckedDesign) -> dict[str, tuple[str, list[Expected]]]:
    """module name -> (class name, expected callbacks) for every context and controller."""
    index = checked.index
    result: dict[str, tuple[str, list[Expected]]] = {}
    for context in checked.design.contexts:
        items = []
        for contract in context.contracts:
            members: dict[str, set[str] | None] = {get_member(g): None for g in contract.gets}
            items.append(Expected(context_callback(contract), members))
        result[py_name(context.name.text)] = (py_ident(context.name.text), items)
    for controller in checked.design.controllers:
        items = []
        for contract in controller.contracts:
            members = {}
            for order in contract.orders:
                action = index.action(order.action.text)
                methods = {py_name(m.name.text) for m in action.methods} if action else set()
                members[py_name(order.device.text)] = (members.get(py_name(order.device.text)) or set()) | methods
            items.append(Expected(controller_callback(contract), members))
        result[py_name(controller.name.text)] = (py_ident(controller.name.text), items)
    return result


def _framework_names(checked: CheckedDesign) -> set[str]:
    """Names user code may import from the framework (classes, protocols, types, runtime API)."""
    names = {"Event", "BindError", "ContractViolation", "RecordedOrder", "Runtime", "Scenario", "Sustained",
             "VirtualClock", "load_scenario", "build", "main", "SPEC_SHA256", "MISSING_IMPORTS", "SIMULATED"}
    for decl in checked.design.declarations:
        names.add(py_ident(decl.name.text))
    for context in checked.design.contexts:
        names.add(f"Abstract{context.name.text}")
        names.update(discover_protocol(context.name.text, context_callback(k)) for k in context.contracts)
    for controller in checked.design.controllers:
        names.add(f"Abstract{controller.name.text}")
        for k in controller.contracts:
            protocol = discover_protocol(controller.name.text, controller_callback(k))
            names.add(protocol)
            names.update(f"{protocol}_{o.device.text}" for o in k.orders)
    for device in checked.design.devices:
        names.update({f"Abstract{device.name.text}", f"Sim{device.name.text}"})
    return names


def check_user_code(checked: CheckedDesign, package_dir: Path, *, display_root: Path | None = None) -> Diagnostics:
    """Findings about the user classes of a generated Python app."""
    diags = Diagnostics()
    index = checked.index
    root = Path(package_dir)
    framework_names = _framework_names(checked)

    def shown(path: Path) -> str:
        if display_root is None:
            return str(path)
        try:
            return str(path.relative_to(display_root))
        except ValueError:
            return str(path)

    expected_files: set[Path] = set()
    components = _expected_components(checked)
    for module, (class_name, items) in components.items():
        path = root / "components" / f"{module}.py"
        expected_files.add(path)
        if path.exists():
            reader = _Reader(path, shown(path), diags)
            if reader.tree is not None:
                _check_class(reader, class_name, items, checked, callbacks_only=True)
                _check_imports(reader, framework_names)
                _check_structures(reader, checked)
    for device in checked.design.devices:
        path = root / "devices" / f"{py_name(device.name.text)}.py"
        expected_files.add(path)
        if path.exists():
            reader = _Reader(path, shown(path), diags)
            if reader.tree is not None:
                items = [Expected(cb) for cb in device_action_callbacks(index, device.name.text, inherited=True)]
                _check_class(reader, py_ident(device.name.text), items, checked, callbacks_only=False)
                _check_imports(reader, framework_names)
                _check_structures(reader, checked)
    for folder in ("components", "devices"):
        for path in sorted((root / folder).glob("*.py")):
            if path.name == "__init__.py" or path in expected_files:
                continue
            twin = _renamed_component(path, components, root) if folder == "components" else None
            if twin is not None:
                diags.warning(Pos(shown(path), 1, 1), f"{path.stem} looks renamed to {twin} (same contracts): move its "
                                                      f"code into components/{twin}.py and delete this module")
            else:
                diags.warning(Pos(shown(path), 1, 1),
                              f"{path.stem} is no longer in the design; this module is not used (delete it)")
    return diags


def _renamed_component(path: Path, components: dict[str, tuple[str, list[Expected]]], root: Path) -> str | None:
    """The new component a leftover module was renamed to: a component whose module was just
    created from the stub and whose callbacks match the leftover's method signatures."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    if cls is None:
        return None
    shapes = sorted(len(_positional(n)) for n in cls.body
                    if isinstance(n, ast.FunctionDef) and n.name.startswith(_CALLBACK_PREFIXES))
    candidates = []
    for module, (_, items) in components.items():
        created = root / "components" / f"{module}.py"
        if not created.exists() or "generated once by diaspec" not in created.read_text(encoding="utf-8"):
            continue
        if sorted(len(i.callback.params) for i in items) == shapes and module != path.stem:
            candidates.append(module)
    return candidates[0] if len(candidates) == 1 else None


