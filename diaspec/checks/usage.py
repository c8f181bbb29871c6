"""Check 12 (warnings): a context nobody consumes, a source nobody uses, an action nobody orders.
What is used is read from the contracts here, not collected by the other passes."""
from __future__ import annotations

from diaspec.checks.common import warning
from diaspec.diagnostics import Diagnostic
from diaspec.index import DesignIndex
from diaspec.model import ActionDecl, ContextInput, Design, SourceInput, WhenPeriodic, WhenProvided


def _inputs(design: Design) -> list:
    inputs: list = []
    for context in design.contexts:
        for contract in context.contracts:
            inputs += contract.gets
            if isinstance(contract, WhenProvided):
                inputs.append(contract.input)
            elif isinstance(contract, WhenPeriodic) and contract.source is not None:
                inputs.append(contract.source)
    return inputs


def check_unused(design: Design, index: DesignIndex) -> list[Diagnostic]:
    used_sources: set[tuple[str, str]] = set()  # (declaring device, source)
    consumed: set[str] = set()
    for given in _inputs(design):
        if isinstance(given, SourceInput):
            owner = index.sources(given.device.text).get(given.source.text) if index.device(given.device.text) else None
            if owner is not None:
                used_sources.add((owner[1], given.source.text))
        elif isinstance(given, ContextInput):
            consumed.add(given.name.text)
    ordered: set[str] = set()
    for controller in design.controllers:
        for contract in controller.contracts:
            consumed.add(contract.context.text)
            ordered.update(o.action.text for o in contract.orders if isinstance(index.by_name.get(o.action.text), ActionDecl))
    found = []
    for context in design.contexts:
        name = context.name.text
        if name not in consumed and index.context(name) is context:
            found.append(warning(context.name.pos, f"context '{name}' is never used by a context or controller"))
    for device in design.devices:
        for source in device.sources:
            if (device.name.text, source.name.text) not in used_sources:
                found.append(warning(source.name.pos, f"source '{source.name.text}' of device {device.name.text} is never used"))
    for action in design.actions:
        if action.name.text not in ordered and index.action(action.name.text) is action:
            found.append(warning(action.name.pos, f"action '{action.name.text}' is never ordered by a controller"))
    return found
