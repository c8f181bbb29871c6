"""Checks 6 to 8 on one input (`s from D`, a context name), shared by the context and controller
passes: each returns the findings and what the input names when it is valid."""
from __future__ import annotations

from diaspec.checks.common import article, error
from diaspec.diagnostics import Diagnostic, Pos, did_you_mean
from diaspec.index import DesignIndex
from diaspec.model import Context, ContextInput, Device, Input, SourceInput, kind_name


def source_input(index: DesignIndex, given: SourceInput) -> list[Diagnostic]:
    """Check 6: `s from D` names a device D and a source of D (or of an ancestor)."""
    device = index.by_name.get(given.device.text)
    if device is None:
        return [error(given.device.pos, f"unknown device '{given.device.text}'" + did_you_mean(given.device.text, index.names_of(Device)))]
    if not isinstance(device, Device):
        return [error(given.device.pos, f"'{given.device.text}' is {article(kind_name(device))}, not a device")]
    sources = index.sources(given.device.text)
    if given.source.text in sources:
        return []
    if given.source.text in index.attributes(given.device.text):
        return [error(
            given.source.pos,
            f"'{given.source.text}' is an attribute of {given.device.text}, not a source; "
            "attributes select devices, they are not read",
        )]
    return [error(
        given.source.pos,
        f"device '{given.device.text}' has no source '{given.source.text}'" + did_you_mean(given.source.text, sources),
    )]


def context_input(
    index: DesignIndex, given: ContextInput, *, pulled: bool, by_controller: bool = False
) -> tuple[Context | None, list[Diagnostic]]:
    """Check 7 (and 8 for `get`): a bare name is a context (a pulled one has `when required`)."""
    name = given.name.text
    decl = index.by_name.get(name)
    if isinstance(decl, Device):
        if by_controller:
            return None, [error(given.pos, f"'{name}' is a device; a controller reacts to contexts only")]
        return None, [error(given.pos, f"'{name}' is a device; write '<source> from {name}'")]
    if decl is None:
        return None, [error(given.pos, f"unknown context '{name}'" + did_you_mean(name, index.names_of(Context)))]
    if not isinstance(decl, Context):
        return None, [error(given.pos, f"'{name}' is {article(kind_name(decl))}, not a context")]
    if pulled and not index.has_required(decl):
        return decl, [error(given.pos, f"context '{name}' has no 'when required' contract, so it cannot be pulled with 'get'")]
    return decl, []


def any_input(index: DesignIndex, given: Input, *, pulled: bool) -> list[Diagnostic]:
    if isinstance(given, SourceInput):
        return source_input(index, given)
    return context_input(index, given, pulled=pulled)[1]


def publishing(index: DesignIndex, context: Context, pos: Pos, reader: str) -> list[Diagnostic]:
    if index.can_publish(context):
        return []
    return [error(
        pos,
        f"context '{context.name.text}' never publishes (no 'always' or 'maybe publish' contract), "
        f"so {reader} is never activated",
    )]
