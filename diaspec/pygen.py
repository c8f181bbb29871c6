"""Python generator: the framework package (rewritten every run) and user stubs (written once)."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from diaspec.callbacks import (
    Callback,
    context_callback,
    discover_protocol,
    controller_callback,
    device_action_callbacks,
    get_member,
)
from diaspec.compiler import CheckedDesign
from diaspec.index import DesignIndex
from diaspec.model import (
    Context,
    Controller,
    Device,
    Enumeration,
    ImportType,
    SourceInput,
    Structure,
    TypeAlias,
    TypeRef,
    WhenPeriodic,
    WhenProvided,
    WhenRequired,
)
from diaspec.naming import py_ident, py_name, snake
from diaspec.templating import render

RUNTIME_SOURCE = Path(__file__).with_name("pyruntime.py")
_PRIMITIVE_PY = {"Boolean": "bool", "Integer": "int", "Float": "float", "String": "str", "Binary": "bytes"}
_PRIMITIVE_DEFAULT = {"Boolean": "False", "Integer": "0", "Float": "0.0", "String": '""', "Binary": 'b""'}


@dataclass
class GeneratedApp:
    """What a generation run wrote: the package, the framework files, the user files it created."""

    package_dir: Path
    framework_files: list[Path] = field(default_factory=list)
    created_user_files: list[Path] = field(default_factory=list)
    kept_user_files: list[Path] = field(default_factory=list)


def header(checked: CheckedDesign) -> str:
    return render("python/header.j2", **_common(checked))


def py_type(ref: TypeRef) -> str:
    text = _PRIMITIVE_PY.get(ref.name) or py_ident(ref.name)
    for _ in range(ref.dims):
        text = f"tuple[{text}, ...]"
    return text


def default_value(index: DesignIndex, ref: TypeRef, depth: int = 0) -> str:
    """A Python expression of a harmless value of a type (what stubs return so a new app runs)."""
    if ref.dims:
        return "()"
    if ref.name in _PRIMITIVE_DEFAULT:
        return _PRIMITIVE_DEFAULT[ref.name]
    decl = index.by_name.get(ref.name)
    if isinstance(decl, TypeAlias) and depth < 50:
        return default_value(index, decl.target, depth + 1)
    if isinstance(decl, Enumeration) and decl.values:
        return f"{py_ident(decl.name.text)}.{py_ident(decl.values[0].text)}"
    if isinstance(decl, Structure) and depth < 50:
        args = ", ".join(f"{py_name(f.name.text)}={default_value(index, f.type, depth + 1)}" for f in decl.fields)
        return f"{py_ident(decl.name.text)}({args})"
    return f"None  # TODO: build a {ref}"


def _common(checked: CheckedDesign) -> dict:
    return {
        "spec_file": os.path.basename(checked.design.main_file),
        "spec_hash": checked.spec_hash,
        "app": checked.app_name,
    }


# ---- framework/types.py ----------------------------------------------------------------------
def _ordered_aliases(aliases: list[TypeAlias]) -> list[TypeAlias]:
    """Each alias after the alias it names (they are evaluated at import time)."""
    placed: list[TypeAlias] = []
    done: set[str] = set()
    names = {a.name.text for a in aliases}
    while aliases:
        ready = [a for a in aliases if a.target.name not in names - done]
        if not ready:
            break  # a cycle; check 2 reported it
        placed += ready
        done.update(a.name.text for a in ready)
        aliases = [a for a in aliases if a.name.text not in done]
    return placed


def types_module(checked: CheckedDesign) -> str:
    items: list[dict] = []
    for decl in checked.design.declarations:
        name = py_ident(decl.name.text)
        if isinstance(decl, ImportType):
            module, _, attr = decl.target.rpartition(".")
            items.append({"kind": "import", "name": name, "module": module, "attr": attr,
                          "design_name": decl.name.text, "target": decl.target})
        elif isinstance(decl, Enumeration):
            items.append({"kind": "enumeration", "name": name, "doc": decl.doc,
                          "values": [(py_ident(v.text), v.text) for v in decl.values]})
        elif isinstance(decl, Structure):
            items.append({"kind": "structure", "name": name, "doc": decl.doc,
                          "fields": [(py_name(f.name.text), py_type(f.type)) for f in decl.fields]})
    for alias in _ordered_aliases(checked.design.of_kind(TypeAlias)):
        items.append({"kind": "alias", "name": py_ident(alias.name.text), "doc": alias.doc, "target": py_type(alias.target)})
    return render("python/types.py.j2", types=items, names=[i["name"] for i in items], **_common(checked))


# ---- framework/design.py (the wiring tables) -------------------------------------------------
def _gets(gets: list) -> list[dict]:
    specs = []
    for g in gets:
        if isinstance(g, SourceInput):
            extra = [("device", g.device.text), ("source", py_name(g.source.text))]
        else:
            extra = [("context", g.name.text)]
        specs.append({"member": get_member(g), "extra": extra})
    return specs


def _contract_spec(contract) -> dict:
    cb = context_callback(contract)
    if isinstance(contract, WhenRequired):
        kind, extra, emission = "required", [], "no"
    elif isinstance(contract, WhenProvided):
        given = contract.input
        emission = contract.emission
        if isinstance(given, SourceInput):
            kind, extra = "source", [("device", given.device.text), ("source", py_name(given.source.text))]
        else:
            kind, extra = "context", [("context", given.name.text)]
    else:
        kind, emission = "periodic", contract.emission
        extra = [("period_ms", contract.period.milliseconds)]
        if contract.source is not None:
            extra += [("device", contract.source.device.text), ("source", py_name(contract.source.source.text))]
        if contract.grouped_by is not None:
            extra.append(("grouped_by", py_name(contract.grouped_by.text)))
    return {"kind": kind, "method": cb.method, "text": cb.contract, "emission": emission, "extra": extra,
            "gets": _gets(contract.gets)}


def design_module(checked: CheckedDesign) -> str:
    design, index = checked.design, checked.index
    devices = []
    for device in design.devices:
        name = device.name.text
        devices.append({
            "name": name,
            "lineage": tuple(index.lineage(name)),
            "attributes": {py_name(a): a for a in index.attributes(name)},
            "sources": [{"name": py_name(s), "index": tuple(py_name(i.name.text) for i in spec.indices),
                         "getter": "get_" + snake(s)} for s, (spec, _) in index.sources(name).items()],
            "actions": {a: tuple(py_name(m.name.text) for m in index.action(a).methods) for a in index.device_actions(name)},
        })
    contexts = [{"name": c.name.text, "indexed": bool(c.indices), "contracts": [_contract_spec(k) for k in c.contracts]}
                for c in design.contexts]
    controllers = []
    for controller in design.controllers:
        reactions = []
        for contract in controller.contracts:
            cb = controller_callback(contract)
            orders = [{"action": o.action.text, "device": o.device.text, "member": py_name(o.device.text),
                       "methods": tuple(py_name(m.name.text) for m in index.action(o.action.text).methods)}
                      for o in contract.orders]
            reactions.append({"context": contract.context.text, "method": cb.method, "text": cb.contract, "orders": orders})
        controllers.append({"name": controller.name.text, "reactions": reactions})
    return render("python/design.py.j2", devices=devices, contexts=contexts, controllers=controllers, **_common(checked))


# ---- framework/components.py -----------------------------------------------------------------
def _return_type(index: DesignIndex, context: Context, cb: Callback) -> str:
    value = py_type(context.type)
    if context.indices:
        keys = [py_type(i.type) for i in context.indices]
        key = keys[0] if len(keys) == 1 else f"tuple[{', '.join(keys)}]"
        value = f"_Mapping[{key}, {value}]"
    if cb.emission in ("always", "required"):
        return value
    if cb.emission == "maybe":
        return f"{value} | None"
    return "None"


def _context_value(index: DesignIndex, context: Context | None) -> str:
    """The Python type of a context's published value (a mapping for an indexed context)."""
    if context is None:
        return "_Any"
    value = py_type(context.type)
    if context.indices:
        keys = [py_type(i.type) for i in context.indices]
        key = keys[0] if len(keys) == 1 else f"tuple[{', '.join(keys)}]"
        value = f"_Mapping[{key}, {value}]"
    return value


def _context_params(contract, cb: Callback, index: DesignIndex, discover: str = "_Any") -> str:
    if isinstance(contract, WhenProvided):
        if isinstance(contract.input, SourceInput):
            return f"self, event: Event, discover: {discover}"
        return f"self, value: {_context_value(index, index.context(contract.input.name.text))}, discover: {discover}"
    if isinstance(contract, WhenPeriodic) and contract.source is not None:
        readings = "dict[_Any, tuple[Event, ...]]" if contract.grouped_by else "tuple[Event, ...]"
        return f"self, readings: {readings}, discover: {discover}"
    return f"self, discover: {discover}"


def _protocols(checked: CheckedDesign) -> list[dict]:
    """One typed protocol per callback's `discover`: exactly its data requirements or orders."""
    design, index = checked.design, checked.index
    protocols = []
    for context in design.contexts:
        for contract in context.contracts:
            cb = context_callback(contract)
            members = []
            for g in contract.gets:
                if isinstance(g, SourceInput):
                    members.append(f"def {get_member(g)}(self, **attributes: _Any) -> tuple[Event, ...]: ...")
                else:
                    members.append(f"def {get_member(g)}(self) -> {_context_value(index, index.context(g.name.text))}: ...")
            protocols.append({"name": discover_protocol(context.name.text, cb), "contract": cb.contract,
                              "members": members, "selections": []})
    for controller in design.controllers:
        for contract in controller.contracts:
            cb = controller_callback(contract)
            name = discover_protocol(controller.name.text, cb)
            selections: dict[str, dict] = {}
            for order in contract.orders:
                member = py_name(order.device.text)
                selection = selections.setdefault(member, {"name": f"{name}_{order.device.text}", "methods": {}})
                for m in index.action(order.action.text).methods:
                    params = "".join(f", {py_name(p.name.text)}: {py_type(p.type)}" for p in m.params)
                    selection["methods"][py_name(m.name.text)] = f"def {py_name(m.name.text)}(self{params}) -> None: ..."
            members = [f"@property\n    def {member}(self) -> {sel['name']}: ..." for member, sel in selections.items()]
            protocols.append({"name": name, "contract": cb.contract, "members": members,
                              "selections": [{"name": sel["name"], "methods": list(sel["methods"].values())}
                                             for sel in selections.values()]})
    return protocols


_RETURNS = {
    "always": "Return the value to publish (never None).",
    "maybe": "Return a value to publish, or None to publish nothing.",
    "no": "Update internal state; return None.",
    "required": "Return the current value (pulled by `get`).",
}


def components_module(checked: CheckedDesign) -> str:
    design, index = checked.design, checked.index
    components = []
    for context in design.contexts:
        callbacks = []
        for contract in context.contracts:
            cb = context_callback(contract)
            gets = [f"discover.{get_member(g)}()" for g in contract.gets]
            pulls = "discover: " + (", ".join(gets) if gets else "nothing to pull")
            callbacks.append({"method": cb.method, "params": _context_params(contract, cb, index, discover_protocol(context.name.text, cb)),
                              "returns": _return_type(index, context, cb), "contract": cb.contract,
                              "doc": f"{pulls}. {_RETURNS[cb.emission]}"})
        components.append({"name": context.name.text, "doc": context.doc or f"Context {context.name.text}.",
                           "callbacks": callbacks})
    for controller in design.controllers:
        callbacks = []
        for contract in controller.contracts:
            cb = controller_callback(contract)
            value = _context_value(index, index.context(contract.context.text))
            orders = ", ".join(
                f"discover.{py_name(o.device.text)}[.where(...)].{{{', '.join(py_name(m.name.text) for m in index.action(o.action.text).methods)}}}(...)"
                for o in contract.orders
            )
            callbacks.append({"method": cb.method, "params": f"self, value: {value}, discover: {discover_protocol(controller.name.text, cb)}", "returns": "None",
                              "contract": cb.contract, "doc": f"May order: {orders}."})
        components.append({"name": controller.name.text, "doc": controller.doc or f"Controller {controller.name.text}.",
                           "callbacks": callbacks})
    protocols = _protocols(checked)
    return render("python/components.py.j2", components=components, protocols=protocols,
                  abstract_names=[f"Abstract{c['name']}" for c in components] + [p["name"] for p in protocols],
                  **_common(checked))


# ---- framework/devices.py --------------------------------------------------------------------
def _parents(index: DesignIndex, device: Device) -> list[str]:
    parents = [p.text for p in device.parents if index.device(p.text)]
    # drop a parent another parent already extends, so Python's MRO always exists
    return [p for p in dict.fromkeys(parents) if not any(p in index.ancestors(q) for q in parents if q != p)]


def _attribute_converter(index: DesignIndex, ref: TypeRef) -> str:
    resolved = index.resolve(ref)
    if resolved is None:
        return "object"
    base = _PRIMITIVE_PY.get(resolved.name) or py_ident(resolved.name)
    return f"_R.ArrayOf({base}, {resolved.dims})" if resolved.dims else base


def _typed_params(index: DesignIndex, device: str, method: str) -> str:
    """`, v: Velocity, times: int` for an action method of a device (its types from the design)."""
    for action in index.device_actions(device):
        for m in index.action(action).methods:
            if py_name(m.name.text) == method:
                return "".join(f", {py_name(p.name.text)}: {py_type(p.type)}" for p in m.params)
    return ""


def devices_module(checked: CheckedDesign) -> str:
    index = checked.index
    devices = []
    for device in _inheritance_order(index, checked.design.devices):
        name = device.name.text
        action_of: dict[str, str] = {}
        for action in index.device_actions(name):
            for m in index.action(action).methods:
                action_of.setdefault(py_name(m.name.text), action)
        sources = []
        for source in device.sources:
            idx = "".join(f", {py_name(i.name.text)}: {py_type(i.type)}" for i in source.indices)
            sources.append({
                "name": py_name(source.name.text), "method": snake(source.name.text), "design_name": source.name.text,
                "type": py_type(source.type), "index_params": f", *{idx}" if source.indices else "",
                "index_dict": "{" + ", ".join(f"{py_name(i.name.text)!r}: {py_name(i.name.text)}" for i in source.indices) + "}",
            })
        devices.append({
            "name": name,
            "doc": device.doc or f"Device {name}.",
            "bases": [f"Abstract{p}" for p in _parents(index, device)] or ["_R.AbstractDevice"],
            "attributes": [{"name": py_name(a), "type": py_type(spec.type), "converter": _attribute_converter(index, spec.type)}
                           for a, (spec, _) in index.attributes(name).items()],
            "sources": sources,
            "source_types": [(py_name(s), _attribute_converter(index, spec.type),
                              [(py_name(i.name.text), _attribute_converter(index, i.type)) for i in spec.indices])
                             for s, (spec, _) in index.sources(name).items()],
            "own_actions": [{"method": cb.method, "params": _typed_params(index, name, cb.method), "contract": cb.contract}
                            for cb in device_action_callbacks(index, name, inherited=False)],
            "all_actions": [{"method": cb.method, "params": _typed_params(index, name, cb.method),
                             "action": action_of.get(cb.method, ""), "args": cb.params}
                            for cb in device_action_callbacks(index, name, inherited=True)],
        })
    names = [f"Abstract{d['name']}" for d in devices] + [f"Sim{d['name']}" for d in devices]
    return render("python/devices.py.j2", devices=devices, names=names, **_common(checked))


def _inheritance_order(index: DesignIndex, devices: list[Device]) -> list[Device]:
    """Parents before children (Python defines a class after its bases)."""
    placed: list[Device] = []
    done: set[str] = set()
    pending = [d for d in devices if index.device(d.name.text) is d]
    while pending:
        ready = [d for d in pending if all(p in done for p in _parents(index, d))]
        if not ready:
            ready = pending[:1]  # a cycle the checker reported; generation is refused anyway
        for device in ready:
            placed.append(device)
            done.add(device.name.text)
        pending = [d for d in pending if d.name.text not in done]
    return placed


# ---- framework/app.py and __init__ -----------------------------------------------------------
def app_module(checked: CheckedDesign) -> str:
    design = checked.design
    components = {c.name.text: (py_name(c.name.text), py_ident(c.name.text)) for c in design.contexts + design.controllers}
    devices = {d.name.text: (py_name(d.name.text), py_ident(d.name.text)) for d in design.devices}
    return render("python/app.py.j2", component_modules=components, device_modules=devices, **_common(checked))


def init_module(checked: CheckedDesign) -> str:
    return render("python/__init__.py.j2", **_common(checked))


def framework_files(checked: CheckedDesign) -> dict[str, str]:
    runtime = RUNTIME_SOURCE.read_text(encoding="utf-8")
    return {
        "__init__.py": init_module(checked),
        "types.py": types_module(checked),
        "design.py": design_module(checked),
        "components.py": components_module(checked),
        "devices.py": devices_module(checked),
        "app.py": app_module(checked),
        "_runtime.py": header(checked) + runtime,
    }


# ---- user stubs (written once) ---------------------------------------------------------------
def _stub_context(checked: CheckedDesign, context: Context) -> str:
    index = checked.index
    callbacks = []
    for contract in context.contracts:
        cb = context_callback(contract)
        params = _context_params(contract, cb, index, discover_protocol(context.name.text, cb))
        params = params.replace("_Any", "Any").replace("_Mapping", "Mapping")
        if cb.emission in ("always", "required"):
            body = "return " + ("{}" if context.indices else default_value(index, context.type))
        else:
            body = "return None"
        callbacks.append({"method": cb.method, "params": params, "contract": cb.contract, "body": body})
    protocols = [discover_protocol(context.name.text, context_callback(k)) for k in context.contracts]
    return render("python/user/context.py.j2", name=context.name.text, callbacks=callbacks, protocols=protocols)


def _stub_controller(checked: CheckedDesign, controller: Controller) -> str:
    index = checked.index
    callbacks = [{"method": controller_callback(c).method, "contract": controller_callback(c).contract,
                  "value": _context_value(index, index.context(c.context.text)).replace("_Any", "Any").replace("_Mapping", "Mapping"),
                  "discover": discover_protocol(controller.name.text, controller_callback(c))}
                 for c in controller.contracts]
    return render("python/user/controller.py.j2", name=controller.name.text, callbacks=callbacks)


def _stub_device(checked: CheckedDesign, device: Device) -> str:
    return render("python/user/device.py.j2", name=device.name.text,
                  callbacks=device_action_callbacks(checked.index, device.name.text, inherited=True))


def _deployed(checked: CheckedDesign) -> list[Device]:
    """The devices the first deployment has one instance of: the concrete ones (no family types)."""
    index = checked.index
    return [d for d in checked.design.devices if index.descendants(d.name.text) == [d.name.text]]


def _stub_deployment(checked: CheckedDesign) -> str:
    index = checked.index
    devices = [{"id": f"{py_name(d.name.text)}_1", "type": d.name.text,
                "attributes": [(a, _toml_default(index, spec.type)) for a, (spec, _) in index.attributes(d.name.text).items()]}
               for d in _deployed(checked)]
    return render("python/user/deployment.toml.j2", devices=devices)


def _stub_scenario(checked: CheckedDesign, package: str) -> str:
    """One signal per source of each first-deployed device, with a harmless value: a fresh app
    shows its contracts at work in its first `--trace` run."""
    index = checked.index
    signals = []
    for device in _deployed(checked):
        for source, (spec, _) in index.sources(device.name.text).items():
            signals.append({"device": f"{py_name(device.name.text)}_1", "source": source,
                            "index": [f"{i.name.text} = {_toml_default(index, i.type)}" for i in spec.indices],
                            "value": _toml_default(index, spec.type)})
    return render("python/user/scenario.toml.j2", signals=signals, package=package)


def _toml_default(index: DesignIndex, ref: TypeRef) -> str:
    resolved = index.resolve(ref)
    if resolved is None or resolved.dims:
        return "[]"
    defaults = {"Boolean": "false", "Integer": "0", "Float": "0.0", "String": '""', "Binary": '""'}
    if resolved.name in defaults:
        return defaults[resolved.name]
    decl = index.by_name.get(resolved.name)
    if isinstance(decl, Enumeration) and decl.values:
        return f'"{decl.values[0].text}"'
    if isinstance(decl, Structure):
        return "{ " + ", ".join(f"{f.name.text} = {_toml_default(index, f.type)}" for f in decl.fields) + " }"
    return '""'


def user_files(checked: CheckedDesign, package: str) -> dict[str, str]:
    design = checked.design
    names = {"app": checked.app_name, "package": package}
    files = {
        "__init__.py": render("python/user/package_init.py.j2", **names),
        "__main__.py": render("python/user/main.py.j2", **names),
        "deployment.toml": _stub_deployment(checked),
        "scenario.toml": _stub_scenario(checked, package),
        "components/__init__.py": '"""Your contexts and controllers, one module each."""\n',
        "devices/__init__.py": '"""Your device drivers, one module each (simulation needs none)."""\n',
        "test_app.py": render("python/user/test_app.py.j2", **names),
    }
    for context in design.contexts:
        files[f"components/{py_name(context.name.text)}.py"] = _stub_context(checked, context)
    for controller in design.controllers:
        files[f"components/{py_name(controller.name.text)}.py"] = _stub_controller(checked, controller)
    for device in design.devices:
        files[f"devices/{py_name(device.name.text)}.py"] = _stub_device(checked, device)
    return files


def generate_python(checked: CheckedDesign, out_dir: Path) -> GeneratedApp:
    """Write the framework (replaced as a whole) and any missing user file."""
    out_dir = Path(out_dir)
    package = out_dir.name
    result = GeneratedApp(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".framework-", dir=out_dir))
    try:
        for name, text in framework_files(checked).items():
            (staging / name).write_text(text, encoding="utf-8")
        target = out_dir / "framework"
        if target.exists():
            old = out_dir / f".framework-old-{os.getpid()}"
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    result.framework_files = sorted((out_dir / "framework").iterdir())
    for relative, text in user_files(checked, package).items():
        path = out_dir / relative
        if path.exists():
            result.kept_user_files.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        result.created_user_files.append(path)
    return result
