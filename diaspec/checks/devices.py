"""Checks 3 and 4: `extends` names devices without cycles, inherited members keep their type and
indices, `action A;` names an action, one method name means one thing on a device."""
from __future__ import annotations

from diaspec.checks.common import article, cycle_path, cycles, error
from diaspec.diagnostics import Diagnostic, did_you_mean
from diaspec.index import DesignIndex
from diaspec.model import ActionDecl, Design, Device, kind_name


def _references(device: Device, index: DesignIndex) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    if not device.parents and not device.actions:
        return found
    for parent in device.parents:
        decl = index.by_name.get(parent.text)
        if decl is None:
            found.append(error(parent.pos, f"unknown device '{parent.text}'" + did_you_mean(parent.text, index.names_of(Device))))
        elif not isinstance(decl, Device):
            found.append(error(parent.pos, f"'{parent.text}' is {article(kind_name(decl))}, not a device; only devices can be extended"))
    for action in device.actions:
        decl = index.by_name.get(action.text)
        if decl is None:
            found.append(error(action.pos, f"unknown action '{action.text}'" + did_you_mean(action.text, index.names_of(ActionDecl))))
        elif not isinstance(decl, ActionDecl):
            found.append(error(action.pos, f"'{action.text}' is {article(kind_name(decl))}, not an action"))
    return found


def _inheritance_cycles(design: Design, index: DesignIndex) -> list[Diagnostic]:
    edges = {
        d.name.text: [p.text for p in d.parents if index.device(p.text)]
        for d in design.devices
        if d.parents and index.device(d.name.text) is d
    }
    found = []
    for component in cycles(edges):
        first = min((index.device(n) for n in component), key=lambda d: d.name.pos)
        path = cycle_path(first.name.text, edges, set(component))
        found.append(error(first.name.pos, "inheritance cycle: " + " -> ".join(path)))
    return found


def _indices(indices: list[tuple[str, str]]) -> str:
    return "(" + ", ".join(f"{n} as {t}" for n, t in indices) + ")" if indices else "nothing"


def _first_inherited(index: DesignIndex, ancestors: list[str], members: str, name: str):
    """(owner, member) of the nearest ancestor declaring a source or attribute named `name`."""
    for owner in ancestors:
        inherited = next((m for m in getattr(index.device(owner), members) if m.name.text == name), None)
        if inherited is not None:
            return owner, inherited
    return None, None


def _inherited_members(device: Device, index: DesignIndex) -> list[Diagnostic]:
    """Check 3: a member redeclared from an ancestor keeps its type (and a source its indices)."""
    found = []
    ancestors = index.ancestors(device.name.text)
    if not ancestors:
        return found
    for kind, members in (("source", device.sources), ("attribute", device.attributes)):
        for member in members:
            owner, inherited = _first_inherited(index, ancestors, kind + "s", member.name.text)
            if inherited is None:
                continue
            if str(inherited.type) != str(member.type):
                found.append(error(
                    member.type.pos,
                    f"{kind} '{member.name.text}' is inherited from {owner} as {inherited.type}; "
                    f"it cannot be redeclared as {member.type}",
                ))
            if kind == "source":
                mine = [(i.name.text, str(i.type)) for i in member.indices]
                theirs = [(i.name.text, str(i.type)) for i in inherited.indices]
                if mine != theirs:
                    found.append(error(
                        member.name.pos,
                        f"source '{member.name.text}' is inherited from {owner} indexed by "
                        f"{_indices(theirs)}; it cannot be redeclared indexed by {_indices(mine)}",
                    ))
    return found


def _method_clashes(device: Device, index: DesignIndex) -> list[Diagnostic]:
    """Check 4: one method name means one thing on a device (inherited actions included)."""
    found = []
    owner_of: dict[str, str] = {}
    own = {a.text for a in device.actions}
    for action_name in index.device_actions(device.name.text):
        for method in index.action(action_name).methods:
            other = owner_of.get(method.name.text)
            if other is not None and other != action_name:
                place = next((a.pos for a in device.actions if a.text in (action_name, other)), device.name.pos)
                if action_name in own or other in own:
                    found.append(error(
                        place,
                        f"method '{method.name.text}' of action {action_name} clashes with method "
                        f"'{method.name.text}' of action {other} on device {device.name.text}",
                    ))
            else:
                owner_of[method.name.text] = action_name
    return found


def check_devices(design: Design, index: DesignIndex) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for device in design.devices:
        found += _references(device, index)
    found += _inheritance_cycles(design, index)
    for device in design.devices:
        if (device.parents or len(device.actions) > 1) and index.device(device.name.text) is device:
            found += _inherited_members(device, index)
            found += _method_clashes(device, index)  # one own action and no parents cannot clash
    return found
