"""The C host harness: a deployment and a scenario (as the Python runtime read them) written as C,
so the C runtime plays the same readings at the same times on a Linux host (host/diaspec_host.c)."""
from __future__ import annotations

import enum
import json
import math
from pathlib import Path
from typing import Any

from diaspec.cgen import CGenerator
from diaspec.compiler import CheckedDesign
from diaspec.model import Enumeration, Structure, TypeRef
from diaspec.naming import c_ident, py_name
from diaspec.templating import render


class _Literals:
    """C text for a design value: brace initializers for static data, compound literals for
    arguments; arrays become static arrays declared first (`statics`)."""

    def __init__(self, generator: CGenerator) -> None:
        self.generator = generator
        self.index = generator.index
        self.statics: list[str] = []

    def initializer(self, ref: TypeRef, value: Any) -> str:
        resolved = self.index.resolve(ref)
        if resolved is None:
            return "0"
        if resolved.dims:
            item = TypeRef(resolved.name, resolved.dims - 1, ref.pos)
            items = [self.initializer(item, v) for v in value]
            if not items:
                return "{ NULL, 0u }"
            name = f"ds_items{len(self.statics)}"
            self.statics.append(f"static const {self.generator.ctype(item)} {name}[] = {{ {', '.join(items)} }};")
            return f"{{ {name}, {len(items)}u }}"
        decl = self.index.by_name.get(resolved.name)
        if isinstance(decl, Structure):
            fields = ", ".join(f".{c_ident(f.name.text)} = {self.initializer(f.type, getattr(value, py_name(f.name.text)))}"
                               for f in decl.fields)
            return f"{{ {fields} }}" if fields else "{ 0 }"
        if isinstance(decl, Enumeration) or isinstance(value, enum.Enum):
            return f"{c_ident(resolved.name)}_{value.name}"
        if resolved.name == "Boolean":
            return "true" if value else "false"
        if resolved.name == "Integer":
            return f"(int32_t){int(value)}"
        if resolved.name == "Float":
            number = float(value)
            return repr(number) + "f" if math.isfinite(number) else "0.0f"
        if resolved.name == "String":
            return json.dumps(str(value))  # a C string literal for printable text
        if resolved.name == "Binary":
            data = bytes(value)
            if not data:
                return "{ NULL, 0u }"
            name = f"ds_bytes{len(self.statics)}"
            self.statics.append(f"static const uint8_t {name}[] = {{ {', '.join(str(b) for b in data)} }};")
            return f"{{ {name}, {len(data)}u }}"
        return "NULL"

    def argument(self, ref: TypeRef, value: Any) -> str:
        text = self.initializer(ref, value)
        if text.startswith("{"):
            return f"({self.generator.ctype(ref)}){text}"
        return text


def write_host(checked: CheckedDesign, out_dir: Path, app: Any, scenario: Any) -> Path:
    """Write `<out_dir>/host/diaspec_host.c` from a built Python app (its deployed devices) and a
    scenario it loaded (`framework.load_scenario`)."""
    generator = CGenerator(checked)
    index = checked.index
    tables = app.tables
    ids = {device.device_id: number for number, device in enumerate(app.devices)}
    devices = []
    for device in app.devices:
        literals = _Literals(generator)
        spec = tables.devices[device.DEVICE]
        attributes = index.attributes(device.DEVICE)
        values = [f".{c_ident(design)} = {literals.initializer(attributes[design][0].type, device.attributes[py])}"
                  for py, design in spec.attributes.items()]
        devices.append({"type": c_ident(device.DEVICE), "name": device.device_id, "attributes": values})
    steps = []
    for step in scenario.steps:
        device = app.device(step.device)
        sources = index.sources(device.DEVICE)
        design_source = next(name for name in sources if py_name(name) == step.source)
        spec, declaring = sources[design_source]
        literals = _Literals(generator)
        args = [str(ids[step.device]) + "u", literals.argument(spec.type, step.value)]
        args += [literals.argument(i.type, step.index[py_name(i.name.text)]) for i in spec.indices]
        steps.append({"time_ms": int(step.time_ms), "statics": literals.statics,
                      "call": f"{c_ident(declaring)}_publish_{design_source}({', '.join(args)})"})
    host = Path(out_dir) / "host"
    host.mkdir(parents=True, exist_ok=True)
    path = host / "diaspec_host.c"
    path.write_text(render("c/host.c.j2", devices=devices, steps=steps, end_ms=int(scenario.seconds * 1000),
                           **generator.common()), encoding="utf-8")
    return path




def write_host_from_app(checked: CheckedDesign, out_dir: Path, app_dir: Path, scenario: str | None) -> Path:
    """The host harness from a generated Python app folder: its deployment and its scenario (or
    the one given), read by the app's own runtime, so both targets see the same readings."""
    import importlib
    import importlib.util
    import sys

    from fleetforge.errors import UserError

    app_dir = Path(app_dir).resolve()
    init = app_dir / "__init__.py"
    if not (app_dir / "framework" / "__init__.py").exists() or not init.exists():
        raise UserError("not a generated Python app (no framework/ inside): run diaspec generate --lang python "
                        "into it first", where=str(app_dir))
    name = app_dir.name
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(app_dir)])
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package  # the app imports itself by name (its components, its framework)
    spec.loader.exec_module(package)
    framework = importlib.import_module(f"{name}.framework")
    try:
        app = framework.build(name, clock=framework.VirtualClock())
        timeline = framework.load_scenario(Path(scenario) if scenario else app_dir / "scenario.toml", app)
    except (framework.BindError, framework.ContractViolation) as error:
        raise UserError(str(error)) from None
    return write_host(checked, out_dir, app, timeline)
