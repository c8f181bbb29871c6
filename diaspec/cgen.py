"""C generator for microcontrollers: a header per component, a dispatch table and a static runtime
(fixed-size event queue, no malloc), rendered from templates/c/. Compiles warning-free with gcc and
arm-none-eabi-gcc."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from diaspec.callbacks import context_callback, controller_callback
from diaspec.compiler import CheckedDesign
from diaspec.diagnostics import Diagnostics, Pos
from diaspec.index import DesignIndex
from diaspec.model import (
    Context,
    ContextInput,
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
from diaspec.naming import c_ident, py_ident, py_name
from diaspec.templating import render


def field_name(name: str) -> str:
    """An index field of an event or entry struct, clear of the fixed `sender` and `value` fields."""
    return name + "_" if name in ("sender", "value") else c_ident(name)

_PRIMITIVE_C = {"Boolean": "bool", "Integer": "int32_t", "Float": "float", "String": "const char *", "Binary": "ds_binary"}


@dataclass
class CFiles:
    generated: dict[str, str] = field(default_factory=dict)
    stubs: dict[str, str] = field(default_factory=dict)


class CGenerator:
    def __init__(self, checked: CheckedDesign) -> None:
        self.checked = checked
        self.design = checked.design
        self.index: DesignIndex = checked.index
        self.arrays: set[tuple[str, int]] = set()
        # a parameter named like a type would shadow it (-Wshadow): such parameters get a `_`
        self.global_names = {c_ident(d.name.text) for d in self.design.declarations}

    # ---- types ---------------------------------------------------------------------------------
    def base_c(self, name: str) -> str:
        return _PRIMITIVE_C.get(name) or c_ident(name)

    def ctype(self, ref: TypeRef) -> str:
        resolved = self.index.resolve(ref)
        if resolved is None:
            return "int32_t"
        if resolved.dims:
            self.arrays.update((resolved.name, d) for d in range(1, resolved.dims + 1))
            return self.array_name(resolved.name, resolved.dims)
        return self.base_c(resolved.name)

    def array_name(self, name: str, dims: int) -> str:
        base = {"String": "ds_string", "Binary": "ds_binary", "Boolean": "ds_bool", "Integer": "ds_int32",
                "Float": "ds_float"}.get(name, c_ident(name))
        return f"{base}_array" + (str(dims) if dims > 1 else "")

    def common(self) -> dict:
        return {"spec_file": Path(self.design.main_file).name, "spec_hash": self.checked.spec_hash}

    def types_header(self) -> str:
        declared = []
        for decl in self.design.declarations:
            name = c_ident(decl.name.text)
            if isinstance(decl, Enumeration):
                declared.append({"kind": "enumeration", "name": name, "values": [f"{name}_{v.text}" for v in decl.values]})
            elif isinstance(decl, ImportType):
                declared.append({"kind": "import", "name": name, "target": decl.target})
            elif isinstance(decl, Structure):
                declared.append({"kind": "structure", "name": name})
        # every array type the design uses is collected (by ctype) before they are printed
        structs = [{"name": c_ident(s.name.text), "fields": [(self.ctype(f.type), c_ident(f.name.text)) for f in s.fields]}
                   for s in self._structs_in_value_order()]
        aliases = [{"name": c_ident(a.name.text), "target": self.ctype(a.target)} for a in self.design.of_kind(TypeAlias)]
        for _ in self._all_type_refs():
            pass
        arrays = [{"item": self.base_c(name) if dims == 1 else self.array_name(name, dims - 1), "name": self.array_name(name, dims)}
                  for name, dims in sorted(self.arrays, key=lambda a: (a[1], a[0]))]
        return render("c/diaspec_types.h.j2", declared=declared, structs=structs, aliases=aliases, arrays=arrays, **self.common())

    def _all_type_refs(self):
        for device in self.design.devices:
            for a in device.attributes:
                yield self.ctype(a.type)
            for s in device.sources:
                yield self.ctype(s.type)
        for context in self.design.contexts:
            yield self.ctype(context.type)
        for action in self.design.actions:
            for m in action.methods:
                for p in m.params:
                    yield self.ctype(p.type)

    def _structs_in_value_order(self) -> list[Structure]:
        structs = [s for s in self.design.of_kind(Structure) if self.index.by_name.get(s.name.text) is s]
        placed: list[Structure] = []
        done: set[str] = set()
        while structs:
            ready = []
            for s in structs:
                needs = set()
                for f in s.fields:
                    r = self.index.resolve(f.type)
                    if r and not r.dims and isinstance(self.index.by_name.get(r.name), Structure):
                        needs.add(r.name)
                if needs <= done:
                    ready.append(s)
            if not ready:
                ready = structs[:1]
            for s in ready:
                placed.append(s)
                done.add(s.name.text)
            structs = [s for s in structs if s.name.text not in done]
        return placed

    # ---- topics --------------------------------------------------------------------------------
    def source_topics(self) -> list[tuple[str, str]]:
        """(declaring device, source) for every source of the design."""
        return [(d.name.text, s.name.text) for d in self.design.devices for s in d.sources
                if self.index.device(d.name.text) is d]

    def event_type(self, device: str, source: str) -> str:
        return f"{c_ident(device)}_{source}_event"

    def value_type(self, context: str) -> str:
        return f"{c_ident(context)}_value"

    def attributed_devices(self) -> list[str]:
        return [d.name.text for d in self.design.devices
                if self.index.device(d.name.text) is d and self.index.attributes(d.name.text)]

    def group_type(self, context: Context, contract) -> str:
        return f"{c_ident(context.name.text)}_{context_callback(contract).method}_group"

    def group_key_type(self, contract) -> str:
        attribute, _ = self.index.attributes(contract.source.device.text)[contract.grouped_by.text]
        return self.ctype(attribute.type)

    def equality(self, ref_type: TypeRef, emitted: dict[str, dict]) -> str:
        """The name of a generated `static inline bool f(T a, T b)` for a key type (emitted on demand,
        dependencies first)."""
        resolved = self.index.resolve(ref_type)
        ctype = self.ctype(ref_type)
        name = "ds_equal_" + ("string" if ctype == "const char *" else ctype.replace(" ", "_"))
        if name in emitted:
            return name
        emitted[name] = {}  # reserve: a structure's fields are emitted first
        if resolved is not None and resolved.dims:
            body = "a.count == b.count && a.items == b.items"
        elif ctype == "const char *":
            body = "a == b || (a != NULL && b != NULL && strcmp(a, b) == 0)"
        elif ctype == "ds_binary":
            body = "a.length == b.length && (a.length == 0 || memcmp(a.data, b.data, a.length) == 0)"
        elif resolved is not None and isinstance(self.index.by_name.get(resolved.name), Structure):
            struct = self.index.by_name[resolved.name]
            parts = [f"{self.equality(f.type, emitted)}(a.{c_ident(f.name.text)}, b.{c_ident(f.name.text)})" for f in struct.fields]
            body = " && ".join(parts) if parts else "true"
            if not parts:
                body = "(void)a, (void)b, true"
        else:
            body = "a == b"
        # keep definition order: dependencies first (dict insertion order: reinsert at the end)
        del emitted[name]
        emitted[name] = {"name": name, "ctype": ctype, "body": body}
        return name

    def printer(self, ref_type: TypeRef, emitted: dict[str, dict], bare: bool = False) -> str:
        """The name of a generated `static void f(const T *v)` that prints a value as the Python
        runtime's trace shows it (emitted on demand, dependencies first; DS_TRACE builds only)."""
        resolved = self.index.resolve(ref_type)
        ctype = self.ctype(ref_type)
        decl = self.index.by_name.get(resolved.name) if resolved is not None else None
        is_enum = resolved is not None and not resolved.dims and isinstance(decl, Enumeration)
        bare = bare and is_enum
        name = ("ds_show_bare_" if bare else "ds_show_") + ("string" if ctype == "const char *" else ctype.replace(" ", "_"))
        if name in emitted:
            return name
        emitted[name] = {}
        lines: list[str]
        if resolved is not None and resolved.dims:
            item = TypeRef(resolved.name, resolved.dims - 1, ref_type.pos)
            inner = self.printer(item, emitted)
            lines = ["putchar('[');", "for (size_t i = 0; i < v->count; i++) {",
                     "    if (i > 0) {", '        fputs(", ", stdout);', "    }", f"    {inner}(&v->items[i]);", "}",
                     "putchar(']');"]
        elif ctype == "const char *":
            lines = ["ds_trace_string(*v);"]
        elif ctype == "ds_binary":
            lines = ["fputs(\"b'\", stdout);", "for (size_t i = 0; i < v->length; i++) {",
                     '    printf("%02x", (unsigned)v->data[i]);', "}", "putchar('\\'');"]
        elif ctype == "bool":
            lines = ['fputs(*v ? "True" : "False", stdout);']
        elif ctype == "int32_t":
            lines = ['printf("%ld", (long)*v);']
        elif ctype == "float":
            lines = ["ds_trace_float((double)*v);"]
        elif is_enum:
            prefix = "" if bare else f"{decl.name.text}."
            lines = ["switch (*v) {"] + [
                f'case {c_ident(decl.name.text)}_{value.text}: fputs("{prefix}{value.text}", stdout); break;'
                for value in decl.values
            ] + ["default: break;", "}"]
        elif isinstance(decl, Structure):
            lines = [f'fputs("{py_ident(decl.name.text)}(", stdout);']
            for number, f in enumerate(decl.fields):
                inner = self.printer(f.type, emitted)
                separator = ", " if number else ""
                lines += [f'fputs("{separator}{py_name(f.name.text)}=", stdout);', f"{inner}(&v->{c_ident(f.name.text)});"]
            lines.append("putchar(')');")
        else:
            lines = ["(void)v;", f'fputs("<{ref_type.name}>", stdout);']
        del emitted[name]
        emitted[name] = {"name": name, "param": self.pointer_param(ctype), "lines": lines}
        return name

    @staticmethod
    def pointer_param(ctype: str) -> str:
        """`const T *v` for a value printed through a pointer (`const char *const *v` for a string)."""
        return f"{ctype}const *v" if ctype.endswith("*") else f"const {ctype} *v"

    def declaring(self, given: SourceInput) -> str:
        return self.index.sources(given.device.text)[given.source.text][1]

    # ---- generation ----------------------------------------------------------------------------
    def generate(self) -> CFiles:
        files = CFiles()
        files.generated["diaspec_types.h"] = self.types_header()
        files.generated["diaspec_runtime.h"] = self.runtime_header()
        for action in self.design.actions:
            files.generated[f"act_{action.name.text}.h"] = self.action_header(action)
            files.stubs[f"act_{action.name.text}.c"] = self.action_stub(action)
        for context in self.design.contexts:
            files.generated[f"ctx_{context.name.text}.h"] = self.context_header(context)
            files.stubs[f"ctx_{context.name.text}.c"] = self.context_stub(context)
        for controller in self.design.controllers:
            files.generated[f"ctl_{controller.name.text}.h"] = self.controller_header(controller)
            files.stubs[f"ctl_{controller.name.text}.c"] = self.controller_stub(controller)
        files.generated["diaspec_runtime.c"] = self.runtime_source()
        return files

    def source_spec(self, device: str, source: str):
        return next(s for s in self.index.device(device).sources if s.name.text == source)

    def runtime_header(self) -> str:
        devices = [c_ident(d.name.text) for d in self.design.devices if self.index.device(d.name.text) is d]
        events, publishers = [], []
        for device, source in self.source_topics():
            spec = self.source_spec(device, source)
            events.append({"name": self.event_type(device, source), "value": self.ctype(spec.type),
                           "index": [(self.ctype(i.type), field_name(i.name.text)) for i in spec.indices]})
            publishers.append({"function": f"{c_ident(device)}_publish_{source}", "value": self.ctype(spec.type),
                               "index_params": "".join(f", {self.ctype(i.type)} {self.param(i.name.text)}" for i in spec.indices)})
        values = [{"context": c.name.text, "name": self.value_type(c.name.text), "value": self.ctype(c.type),
                   "key_fields": [(self.ctype(i.type), field_name(i.name.text)) for i in c.indices]} for c in self.design.contexts]
        attributed = [{"name": c_ident(d), "fields": [(self.ctype(a.type), c_ident(n)) for n, (a, _) in self.index.attributes(d).items()]}
                      for d in self.attributed_devices()]
        return render("c/diaspec_runtime.h.j2", device_types=devices, events=events, values=values,
                      attributed=attributed, publishers=publishers, attribute_functions=self.attribute_functions({}),
                      **self.common())

    def action_methods(self, action) -> list[dict]:
        return [{"function": self.action_fn(action.name.text, m.name.text), "params": self.method_params(m),
                 "names": [self.param(p.name.text) for p in m.params]} for m in action.methods]

    def action_header(self, action) -> str:
        return render("c/act.h.j2", guard=f"DIASPEC_ACT_{action.name.text.upper()}_H", name=action.name.text,
                      methods=self.action_methods(action), **self.common())

    def action_stub(self, action) -> str:
        return render("c/act.c.j2", name=action.name.text, methods=self.action_methods(action))

    def action_fn(self, action: str, method: str) -> str:
        return f"{c_ident(action)}_{method}"

    def param(self, name: str) -> str:
        ident = c_ident(name)
        return ident + "_" if ident in self.global_names else ident

    def method_params(self, method) -> str:
        return "ds_device_id ds_device" + "".join(f", {self.ctype(p.type)} {self.param(p.name.text)}" for p in method.params)

    # -- contexts --
    def order_params(self, method) -> str:
        """An order's parameters: the selection of devices it goes to, then the method's."""
        return self.method_params(method).replace("ds_device_id ds_device", "ds_selection ds_target")

    def attribute_functions(self, equalities: dict[str, dict]) -> list[dict]:
        """A getter and a `where` selection per attribute of each device type (inherited included)."""
        functions = []
        attributed = self.attributed_devices()
        for device in attributed:
            for name, (attribute, _) in self.index.attributes(device).items():
                functions.append({
                    "device": c_ident(device), "attribute": c_ident(name), "ctype": self.ctype(attribute.type),
                    "getter": f"{c_ident(device)}_get_{name}", "where": f"{c_ident(device)}_where_{name}",
                    "equal": self.equality(attribute.type, equalities),
                    "devices": [c_ident(t) for t in self.index.descendants(device) if t in attributed],
                })
        return functions

    def discover_type(self, component: str, method: str) -> str:
        return f"{c_ident(component)}_{method}_discover"

    def context_signature(self, context: Context, contract) -> str:
        cb = context_callback(contract)
        name = c_ident(context.name.text)
        disc = f"const {self.discover_type(name, cb.method)} *discover"
        out_param = f", {self.value_type(context.name.text)} *out"
        if isinstance(contract, WhenRequired):
            return f"void {name}_{cb.method}({disc}{out_param})"
        if isinstance(contract, WhenProvided):
            given = contract.input
            if isinstance(given, SourceInput):
                first = f"const {self.event_type(self.declaring(given), given.source.text)} *event"
            else:
                first = f"const {self.value_type(given.name.text)} *value"
        elif contract.source is not None and contract.grouped_by is not None:
            first = f"const {self.group_type(context, contract)} *groups, size_t group_count"
        elif contract.source is not None:
            first = f"const {self.event_type(self.declaring(contract.source), contract.source.source.text)} *readings, size_t count"
        else:
            first = ""
        args = f"{first}, {disc}" if first else disc
        if contract.emission == "no":
            return f"void {name}_{cb.method}({args})"
        ret = "bool" if contract.emission == "maybe" else "void"
        return f"{ret} {name}_{cb.method}({args}{out_param})"

    def discover_members(self, gets) -> list[str]:
        members = []
        for g in gets:
            if isinstance(g, SourceInput):
                event = self.event_type(self.declaring(g), g.source.text)
                members.append(f"size_t (*{c_ident(py_name(g.source.text) + '_from_' + py_name(g.device.text))})({event} *out, size_t max)")
            else:
                members.append(f"void (*{c_ident(py_name(g.name.text))})({self.value_type(g.name.text)} *out)")
        return members

    def context_header(self, context: Context) -> str:
        name = context.name.text
        contracts = []
        for contract in context.contracts:
            cb = context_callback(contract)
            group = None
            if isinstance(contract, WhenPeriodic) and contract.source is not None and contract.grouped_by is not None:
                group = {"attribute": contract.grouped_by.text, "key": self.group_key_type(contract),
                         "event": self.event_type(self.declaring(contract.source), contract.source.source.text),
                         "name": self.group_type(context, contract)}
            contracts.append({"members": self.discover_members(contract.gets), "discover": self.discover_type(name, cb.method),
                              "group": group, "contract": cb.contract, "signature": self.context_signature(context, contract)})
        return render("c/ctx.h.j2", guard=f"DIASPEC_CTX_{name.upper()}_H", contracts=contracts, **self.common())

    def context_stub(self, context: Context) -> str:
        contracts = []
        for contract in context.contracts:
            signature = self.context_signature(context, contract)
            params = [p.strip().split()[-1].lstrip("*") for p in signature[signature.index("(") + 1 : -1].split(",")]
            contracts.append({"signature": signature, "unused": [p for p in params if p != "out"],
                              "has_out": "*out" in signature, "returns_bool": signature.startswith("bool")})
        return render("c/ctx.c.j2", name=context.name.text, contracts=contracts)

    # -- controllers --
    def order_members(self, contract) -> list[tuple[str, str, object]]:
        """(member name, device, method) the discover of one controller contract offers."""
        members = []
        for order in contract.orders:
            action = self.index.action(order.action.text)
            if action is None:
                continue
            for m in action.methods:
                members.append((c_ident(f"{py_name(order.device.text)}_{py_name(m.name.text)}"), order, m))
        return members

    def controller_header(self, controller) -> str:
        name = controller.name.text
        contracts = []
        for contract in controller.contracts:
            cb = controller_callback(contract)
            members = [f"void (*{member})({self.order_params(m)})"
                       for member, _, m in self.order_members(contract)]
            contracts.append({"members": members, "discover": self.discover_type(name, cb.method), "contract": cb.contract,
                              "signature": self.controller_signature(controller, contract)})
        return render("c/ctl.h.j2", guard=f"DIASPEC_CTL_{name.upper()}_H", contracts=contracts, **self.common())

    def controller_signature(self, controller, contract) -> str:
        cb = controller_callback(contract)
        name = c_ident(controller.name.text)
        return (f"void {name}_{cb.method}(const {self.value_type(contract.context.text)} *value, "
                f"const {self.discover_type(name, cb.method)} *discover)")

    def controller_stub(self, controller) -> str:
        return render("c/ctl.c.j2", name=controller.name.text,
                      contracts=[{"signature": self.controller_signature(controller, k)} for k in controller.contracts])

    # -- runtime --
    def runtime_source(self) -> str:
        design, index = self.design, self.index
        includes = ([f"act_{a.name.text}.h" for a in design.actions] + [f"ctx_{c.name.text}.h" for c in design.contexts]
                    + [f"ctl_{c.name.text}.h" for c in design.controllers])
        topics = [f"DS_TOPIC_{c_ident(d)}_{s}" for d, s in self.source_topics()]
        topics += [f"DS_TOPIC_CTX_{c_ident(c.name.text)}" for c in design.contexts]
        payload = [(self.event_type(d, s), f"{c_ident(d)}_{s}") for d, s in self.source_topics()]
        payload += [(self.value_type(c.name.text), f"ctx_{c_ident(c.name.text)}") for c in design.contexts]
        attributed = [c_ident(d) for d in self.attributed_devices()]
        equalities: dict[str, dict] = {}
        printers: dict[str, dict] = {}
        attribute_functions = self.attribute_functions(equalities)
        is_a = [(c_ident(d.name.text), [c_ident(a) for a in index.lineage(d.name.text)])
                for d in design.devices if index.device(d.name.text) is d]
        readings = []
        for d, s in self.source_topics():
            spec = self.source_spec(d, s)
            readings.append({
                "topic": f"{c_ident(d)}_{s}", "event": self.event_type(d, s), "value": self.ctype(spec.type),
                "publish": f"{c_ident(d)}_publish_{s}", "py_source": py_name(s),
                "index_params": "".join(f", {self.ctype(i.type)} {self.param(i.name.text)}" for i in spec.indices),
                "index": [(field_name(i.name.text), self.param(i.name.text), self.equality(i.type, equalities)) for i in spec.indices],
                "index_names": [py_name(i.name.text) for i in spec.indices],
                "index_show": [self.printer(i.type, printers, bare=True) for i in spec.indices],
                "show": self.printer(spec.type, printers),
            })
        context_publishers = []
        for c in design.contexts:
            context_publishers.append({"name": c_ident(c.name.text), "design": c.name.text, "value": self.value_type(c.name.text),
                                       "show": self.value_printer(c, printers)})
        orders: dict[str, dict] = {}
        for controller in design.controllers:
            for contract in controller.contracts:
                for _, order, m in self.order_members(contract):
                    fn = f"ds_order_{c_ident(order.device.text)}_{c_ident(order.action.text)}_{m.name.text}"
                    orders.setdefault(fn, {
                        "name": fn, "device": c_ident(order.device.text), "params": self.order_params(m),
                        "args": "".join(f", {self.param(p.name.text)}" for p in m.params),
                        "action_function": self.action_fn(order.action.text, m.name.text),
                        "py_method": py_name(m.name.text),
                        "shown": [(self.param(p.name.text), self.printer(p.type, printers)) for p in m.params],
                    })
        pulls = {c.name.text: {"name": c_ident(c.name.text), "value": self.value_type(c.name.text)}
                 for c in design.contexts for k in c.contracts if isinstance(k, WhenRequired)}
        readers: dict[str, dict] = {}
        pull_wrappers: dict[str, dict] = {}
        discovers = []
        for context in design.contexts:
            for contract in context.contracts:
                cb = context_callback(contract)
                inits = []
                for g in contract.gets:
                    if isinstance(g, SourceInput):
                        member = c_ident(f"{py_name(g.source.text)}_from_{py_name(g.device.text)}")
                        fn = f"ds_get_{c_ident(g.device.text)}_{g.source.text}"
                        readers.setdefault(fn, {"name": fn, "event": self.event_type(self.declaring(g), g.source.text),
                                                "topic": f"{c_ident(self.declaring(g))}_{g.source.text}",
                                                "device": c_ident(g.device.text), "design_device": g.device.text,
                                                "py_source": py_name(g.source.text)})
                        inits.append(f".{member} = {fn}")
                    elif isinstance(g, ContextInput) and g.name.text in pulls:
                        fn = f"ds_pull_{c_ident(g.name.text)}_by_{c_ident(context.name.text)}"
                        pull_wrappers.setdefault(fn, {"name": fn, "value": self.value_type(g.name.text), "context": g.name.text,
                                                      "component": context.name.text, "pulled": c_ident(g.name.text)})
                        inits.append(f".{c_ident(py_name(g.name.text))} = {fn}")
                discovers.append({"type": self.discover_type(c_ident(context.name.text), cb.method),
                                  "name": f"ds_discover_{c_ident(context.name.text)}_{cb.method}", "inits": inits})
        for controller in design.controllers:
            for contract in controller.contracts:
                cb = controller_callback(contract)
                inits = [f".{member} = ds_order_{c_ident(order.device.text)}_{c_ident(order.action.text)}_{m.name.text}"
                         for member, order, m in self.order_members(contract)]
                discovers.append({"type": self.discover_type(c_ident(controller.name.text), cb.method),
                                  "name": f"ds_discover_{c_ident(controller.name.text)}_{cb.method}", "inits": inits})
        handlers, reactions, periodic = [], [], []
        dispatch: dict[str, list[str]] = {}
        for context in design.contexts:
            n = c_ident(context.name.text)
            for contract in context.contracts:
                if isinstance(contract, WhenRequired):
                    continue
                cb = context_callback(contract)
                handler = {"name": f"ds_handle_{n}_{cb.method}", "emission": contract.emission, "context": n,
                           "value": self.value_type(context.name.text), "callback": f"{n}_{cb.method}",
                           "discover": f"&ds_discover_{n}_{cb.method}", "read": None, "group": None,
                           "where": f"{context.name.text}.{cb.method}"}
                if isinstance(contract, WhenProvided) and isinstance(contract.input, SourceInput):
                    d, s = self.declaring(contract.input), contract.input.source.text
                    spec = self.source_spec(d, s)
                    handler.update(kind="source", event=self.event_type(d, s), topic=f"{c_ident(d)}_{s}",
                                   device=c_ident(contract.input.device.text), first="in, ", py_source=py_name(s),
                                   show=self.printer(spec.type, printers),
                                   index=[(field_name(i.name.text), py_name(i.name.text), self.printer(i.type, printers, bare=True))
                                          for i in spec.indices])
                    dispatch.setdefault(f"DS_TOPIC_{c_ident(d)}_{s}", []).append(handler["name"])
                elif isinstance(contract, WhenProvided):
                    given = index.context(contract.input.name.text)
                    handler.update(kind="context", first=f"&event->payload.ctx_{c_ident(contract.input.name.text)}, ",
                                   input=c_ident(contract.input.name.text), show=self.value_printer(given, printers))
                    dispatch.setdefault(f"DS_TOPIC_CTX_{c_ident(contract.input.name.text)}", []).append(handler["name"])
                else:
                    handler.update(kind="periodic", first="", period=format(contract.period.milliseconds, "g"))
                    if contract.source is not None:
                        d, s = self.declaring(contract.source), contract.source.source.text
                        handler["read"] = {"event": self.event_type(d, s), "topic": f"{c_ident(d)}_{s}",
                                           "device": c_ident(contract.source.device.text)}
                        handler["first"] = "readings, count, "
                        if contract.grouped_by is not None:
                            spec, _ = index.attributes(contract.source.device.text)[contract.grouped_by.text]
                            handler["group"] = {"type": self.group_type(context, contract), "key": self.ctype(spec.type),
                                                "getter": f"{c_ident(contract.source.device.text)}_get_{contract.grouped_by.text}",
                                                "equal": self.equality(spec.type, equalities)}
                            handler["first"] = "groups, group_count, "
                    periodic.append((handler["name"], max(1, math.ceil(contract.period.milliseconds))))
                handlers.append(handler)
        for controller in design.controllers:
            n = c_ident(controller.name.text)
            for contract in controller.contracts:
                cb = controller_callback(contract)
                ctx = c_ident(contract.context.text)
                given = index.context(contract.context.text)
                reactions.append({"name": f"ds_handle_{n}_{cb.method}", "callback": f"{n}_{cb.method}", "context": ctx,
                                  "discover": f"ds_discover_{n}_{cb.method}", "where": f"{controller.name.text}.{cb.method}",
                                  "component": controller.name.text, "show": self.value_printer(given, printers)})
                dispatch.setdefault(f"DS_TOPIC_CTX_{ctx}", []).append(reactions[-1]["name"])
        device_names = [d.name.text for d in design.devices if index.device(d.name.text) is d]
        return render(
            "c/diaspec_runtime.c.j2", includes=includes, topics=topics, payload=payload, attributed=attributed,
            equalities=list(equalities.values()), attribute_functions=attribute_functions, is_a=is_a,
            readings=readings, context_publishers=context_publishers, orders=list(orders.values()),
            pulls=list(pulls.values()), pull_wrappers=list(pull_wrappers.values()), readers=list(readers.values()),
            discovers=discovers, handlers=handlers, reactions=reactions, dispatch=list(dispatch.items()),
            periodic=periodic, printers=list(printers.values()), device_names=device_names, **self.common(),
        )

    def value_printer(self, context: Context, printers: dict[str, dict]) -> str:
        """The printer of a context's value: its type, or `{KEY: value}` for an indexed context
        (one entry per publication in C, a mapping in Python)."""
        if not context.indices:
            return self.printer(context.type, printers)
        name = f"ds_show_{self.value_type(context.name.text)}"
        if name not in printers:
            keys = [self.printer(i.type, printers, bare=True) for i in context.indices]
            value = self.printer(context.type, printers)
            lines = ["putchar('{');"]
            if len(keys) > 1:
                lines.append("putchar('[');")
            for number, (key, i) in enumerate(zip(keys, context.indices)):
                if number:
                    lines.append('fputs(", ", stdout);')
                lines.append(f"{key}(&v->{field_name(i.name.text)});")
            if len(keys) > 1:
                lines.append("putchar(']');")
            lines += ['fputs(": ", stdout);', f"{value}(&v->value);", "putchar('}');"]
            printers[name] = {"name": name, "param": self.pointer_param(self.value_type(context.name.text)), "lines": lines}
        return name


def generate_c(checked: CheckedDesign, out_dir: Path) -> tuple[list[Path], list[Path]]:
    """Write the generated C files (always) and the user stubs (only if absent)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = CGenerator(checked).generate()
    generated, created = [], []
    for name, text in files.generated.items():
        path = out_dir / name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        generated.append(path)
    for name, text in files.stubs.items():
        path = out_dir / name
        if not path.exists():
            path.write_text(text, encoding="utf-8")
            created.append(path)
    return generated, created


def check_c_user_code(checked: CheckedDesign, out_dir: Path) -> Diagnostics:
    """What the user must change in the C files after regeneration: missing callbacks or action
    functions (errors), functions and files the design no longer calls (warnings). Signatures are
    left to the C compiler, which sees the generated prototypes."""
    generator = CGenerator(checked)
    diags = Diagnostics()
    expected: dict[str, dict[str, str]] = {}  # file -> function -> prototype
    for context in checked.design.contexts:
        expected[f"ctx_{context.name.text}.c"] = {
            f"{c_ident(context.name.text)}_{context_callback(k).method}": generator.context_signature(context, k)
            for k in context.contracts
        }
    for controller in checked.design.controllers:
        expected[f"ctl_{controller.name.text}.c"] = {
            f"{c_ident(controller.name.text)}_{controller_callback(k).method}": generator.controller_signature(controller, k)
            for k in controller.contracts
        }
    for action in checked.design.actions:
        expected[f"act_{action.name.text}.c"] = {
            generator.action_fn(action.name.text, m.name.text): f"void {generator.action_fn(action.name.text, m.name.text)}({generator.method_params(m)})"
            for m in action.methods
        }
    out_dir = Path(out_dir)
    for path in sorted(out_dir.glob("*.c")):
        if path.name == "diaspec_runtime.c" or not path.name.startswith(("ctx_", "ctl_", "act_")):
            continue
        if path.name not in expected:
            diags.warning(Pos(str(path), 1, 1), f"{path.stem[4:]} is no longer in the design; this file is not used (delete it)")
    for name, functions in expected.items():
        path = out_dir / name
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        prefix = name[4:-2]
        defined: dict[str, Pos] = {}
        for match in re.finditer(rf"^[ \t]*(?:bool|void)\s+({re.escape(c_ident(prefix))}_\w+)\s*\(", text, re.MULTILINE):
            line = text.count("\n", 0, match.start(1)) + 1
            column = match.start(1) - (text.rfind("\n", 0, match.start(1)) + 1) + 1
            defined.setdefault(match.group(1), Pos(str(path), line, column))
        for function, prototype in functions.items():
            if function not in defined:
                diags.error(Pos(str(path), 1, 1), f"missing {prototype}")
        for function, pos in defined.items():
            if function not in functions:
                diags.warning(pos, f"{function} is no longer called: its contract left the design (remove it)")
    return diags
