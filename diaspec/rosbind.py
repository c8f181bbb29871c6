"""Check a deployment's ROS 2 bindings (`[[device.ros]]`) against the design and the table of
message types (diaspec/ros_messages.toml, extended by a ros_messages.toml beside the design), when
the ROS 2 package is generated: a wrong topic type or field is found here, not on the robot."""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetforge.errors import UserError

from diaspec.compiler import CheckedDesign
from diaspec.diagnostics import did_you_mean
from diaspec.index import DesignIndex
from diaspec.model import Structure, TypeRef
from diaspec.naming import py_name

MESSAGE_TABLE = Path(__file__).with_name("ros_messages.toml")
USER_TABLE = "ros_messages.toml"
# ROS field types -> the DiaSpec primitive they carry
_ROS_PRIMITIVES = {
    "bool": "Boolean", "byte": "Integer", "char": "Integer", "int8": "Integer", "uint8": "Integer",
    "int16": "Integer", "uint16": "Integer", "int32": "Integer", "uint32": "Integer", "int64": "Integer",
    "uint64": "Integer", "float32": "Float", "float64": "Float", "string": "String", "wstring": "String",
}
_ARRAY = re.compile(r"(.+)\[\d*\]")


@dataclass
class Bindings:
    """What the bindings need from ROS: the message packages (dependencies of the node package)."""

    packages: set[str] = field(default_factory=set)
    count: int = 0
    reading_fields: dict[str, str] = field(default_factory=dict)  # message type -> its reading field


# Where a binding sends or reads: the part of its type that carries the fields, and its name in messages.
ENDPOINTS = {"topic": ("", "a topic"), "service": ("/Request", "a service"),
             "action_server": ("/Goal", "an action server")}


def message_table(design_file: str) -> dict[str, dict[str, Any]]:
    """The shipped table, with the user's entries (beside the design) added or replacing. A
    service's request is listed as a message named `<service>/Request`, an action's goal as
    `<action>/Goal`."""
    tables = [tomllib.loads(MESSAGE_TABLE.read_text(encoding="utf-8"))]
    user = Path(os.path.dirname(design_file) or ".") / USER_TABLE
    if user.exists():
        try:
            tables.append(tomllib.loads(user.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as error:
            raise UserError(f"not a valid message table: {error}", where=str(user)) from None
    table: dict[str, dict[str, Any]] = {}
    for data in tables:
        table.update(data.get("message", {}))
        for service, entry in data.get("service", {}).items():
            table[f"{service}/Request"] = {"fields": dict(entry.get("request", {})), "service": True}
        for action, entry in data.get("action", {}).items():
            table[f"{action}/Goal"] = {"fields": dict(entry.get("goal", {})), "action": True}
    return table


class _Checker:
    def __init__(self, index: DesignIndex, table: dict[str, dict[str, Any]], where: str) -> None:
        self.index = index
        self.table = table
        self.where = where
        self.problems: list[str] = []
        self.bindings = Bindings()

    def field_type(self, message: str, path: str, label: str) -> str | None:
        """The ROS type of a dotted field path of a message, or None after a problem."""
        current = message
        for part in path.split("."):
            fields = self.table.get(current, {}).get("fields")
            if fields is None:
                self.problems.append(f"{label}: no fields known for {current} (add it to {USER_TABLE} beside the design)")
                return None
            if part not in fields:
                self.problems.append(f"{label}: {current} has no field '{part}'" + did_you_mean(part, fields))
                return None
            current = fields[part]
        return current

    def fits(self, ros_type: str, ref: TypeRef, label: str) -> None:
        resolved = self.index.resolve(ref)
        if resolved is None:
            return
        array = _ARRAY.fullmatch(ros_type)
        if resolved.dims:
            if array is None:
                self.problems.append(f"{label}: {ros_type} is not an array, but {ref} is")
            else:
                self.fits(array.group(1), TypeRef(resolved.name, resolved.dims - 1, ref.pos), label)
            return
        wanted = resolved.name
        carried = _ROS_PRIMITIVES.get(ros_type)
        if wanted in ("Float", "Integer", "Boolean", "String"):
            if carried is None or (carried != wanted and not (wanted == "Float" and carried == "Integer")):
                self.problems.append(f"{label}: a {ros_type} field cannot carry a {wanted}")
        elif carried is not None and not isinstance(self.index.by_name.get(wanted), Structure):
            if carried != "Integer":
                self.problems.append(f"{label}: a {ros_type} field cannot carry a {wanted}")

    def source(self, device: str, binding: dict[str, Any], label: str) -> None:
        sources = self.index.sources(device)
        name = str(binding["source"])
        match = next((s for s in sources if s == name or py_name(s) == name), None)
        if match is None:
            self.problems.append(f"{label}: {device} has no source '{name}'" + did_you_mean(name, sources))
            return
        spec, _ = sources[match]
        given = binding.get("index", {})
        wanted = [i.name.text for i in spec.indices]
        if sorted(given) != sorted(wanted) and sorted(given) != sorted(py_name(w) for w in wanted):
            self.problems.append(f"{label}: {match} is indexed by {', '.join(wanted) or 'nothing'}; "
                                 f"write index = {{ {', '.join(f'{w} = ...' for w in wanted)} }}" if wanted
                                 else f"{label}: {match} has no index")
        message = binding["type"]
        resolved = self.index.resolve(spec.type)
        decl = self.index.by_name.get(resolved.name) if resolved else None
        if isinstance(decl, Structure) and not resolved.dims:
            paths = binding.get("fields", {})
            for f in decl.fields:
                path = paths.get(f.name.text, paths.get(py_name(f.name.text), f.name.text))
                ros_type = self.field_type(message, path, f"{label}: {decl.name.text}.{f.name.text}")
                if ros_type is not None:
                    self.fits(ros_type, f.type, f"{label}: {decl.name.text}.{f.name.text} from {path}")
            return
        path = binding.get("field") or self.table.get(message, {}).get("value")
        if not path:
            self.problems.append(f"{label}: say which field of {message} the reading is: field = \"...\"")
            return
        ros_type = self.field_type(message, path, label)
        if ros_type is not None:
            self.fits(ros_type, spec.type, f"{label}: {match} from {path}")

    def action(self, device: str, binding: dict[str, Any], label: str) -> None:
        name = str(binding["action"])
        actions = self.index.device_actions(device)
        if name not in actions:
            self.problems.append(f"{label}: {device} does not provide action '{name}'" + did_you_mean(name, actions))
            return
        methods = {m.name.text: m for m in self.index.action(name).methods}
        for method, paths in binding.get("methods", {}).items():
            decl = methods.get(method) or next((m for n, m in methods.items() if py_name(n) == method), None)
            if decl is None:
                self.problems.append(f"{label}: action {name} has no method '{method}'" + did_you_mean(method, methods))
                continue
            params = {p.name.text: p for p in decl.params}
            for msg_path, param_path in paths.items():
                self.field_type(binding["type"], msg_path, f"{label}: {method}")
                head = str(param_path).split(".")[0]
                if head not in params and head not in {py_name(p) for p in params}:
                    self.problems.append(f"{label}: {method} has no parameter '{head}'" + did_you_mean(head, params))

    def device(self, number: int, entry: dict[str, Any]) -> None:
        device = entry.get("type")
        label_device = f"{self.where}: device #{number} '{entry.get('id', '?')}'"
        ros = entry.get("ros", [])
        if not ros:
            return
        if self.index.device(str(device)) is None:
            return  # the deployment check of the app reports unknown types
        for count, binding in enumerate(ros, 1):
            label = f"{label_device}: ros binding #{count}"
            ends = [k for k in ENDPOINTS if isinstance(binding, dict) and k in binding]
            if not isinstance(binding, dict) or len(ends) != 1 or "type" not in binding:
                self.problems.append(f"{label}: needs one of topic = \"...\" (or, for an action, service = \"...\" "
                                     "or action_server = \"...\") and type = \"pkg/msg/Type\"")
                continue
            if ends[0] != "topic" and "action" not in binding:
                self.problems.append(f"{label}: only an action can be bound to {ENDPOINTS[ends[0]][1]} "
                                     "(a source reads a topic)")
                continue
            message = binding["type"] + ENDPOINTS[ends[0]][0]
            if message not in self.table:
                self.problems.append(f"{label}: unknown message type '{message}' (add it to {USER_TABLE} beside the design)"
                                     + did_you_mean(message, self.table))
                continue
            self.bindings.packages.add(message.split("/")[0])
            if "value" in self.table[message]:
                self.bindings.reading_fields[message] = self.table[message]["value"]
            self.bindings.count += 1
            if ("source" in binding) == ("action" in binding):
                self.problems.append(f"{label}: bind either a source = \"...\" or an action = \"...\"")
            elif "source" in binding:
                self.source(str(device), binding, label)
            else:
                self.action(str(device), {**binding, "type": message}, label)


def check_bindings(checked: CheckedDesign, deployment: Path) -> Bindings:
    """Check every binding of a deployment; one UserError lists every problem."""
    if not Path(deployment).exists():
        return Bindings()
    try:
        data = tomllib.loads(Path(deployment).read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"not a valid TOML deployment: {error}", where=str(deployment)) from None
    checker = _Checker(checked.index, message_table(checked.design.main_file), str(deployment))
    for number, entry in enumerate(data.get("device", []), 1):
        if isinstance(entry, dict):
            checker.device(number, entry)
    if checker.problems:
        raise UserError("ROS 2 bindings do not fit the design:\n  " + "\n  ".join(checker.problems), where=str(deployment))
    return checker.bindings
