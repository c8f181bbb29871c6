"""Checks 6 to 9 over each context: its inputs, data requirements, periodic contracts, and no
two contracts with the same activation."""
from __future__ import annotations

from diaspec.checks.common import duplicates, error, warning, where
from diaspec.checks.inputs import any_input, context_input, publishing, source_input
from diaspec.diagnostics import Diagnostic, Pos, did_you_mean
from diaspec.index import DesignIndex
from diaspec.model import Context, Design, Name, SourceInput, WhenPeriodic, WhenProvided, WhenRequired


def _periodic(index: DesignIndex, contract: WhenPeriodic) -> list[Diagnostic]:
    """Check 9: a positive period; `grouped by` names a non-array attribute of the sampled device."""
    found = []
    if contract.period.amount <= 0:
        found.append(error(contract.period.pos, "the period of 'when periodic' must be greater than zero"))
    source_problems = source_input(index, contract.source) if contract.source is not None else []
    found += source_problems
    group = contract.grouped_by
    if group is None:
        return found
    if contract.source is None:
        found.append(error(
            group.pos,
            "'grouped by' needs a sampled source: write 'when periodic <source> from <Device> <period> grouped by ...'",
        ))
        return found
    if source_problems:
        return found
    device = contract.source.device.text
    attributes = index.attributes(device)
    if group.text not in attributes:
        found.append(error(group.pos, f"device '{device}' has no attribute '{group.text}'" + did_you_mean(group.text, attributes)))
        return found
    attribute, _ = attributes[group.text]
    resolved = index.resolve(attribute.type)
    if resolved is not None and resolved.is_array:
        found.append(error(group.pos, f"cannot group by '{group.text}': its type {attribute.type} is an array"))
    return found


def _context(index: DesignIndex, context: Context) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    if not context.contracts:
        found.append(warning(context.name.pos, f"context '{context.name.text}' has no contracts"))
    required = [c for c in context.contracts if isinstance(c, WhenRequired)]
    for extra in required[1:]:
        found.append(error(extra.pos, f"context '{context.name.text}' has more than one 'when required' contract"))
    activations: dict[str, Pos] = {}
    for contract in context.contracts:
        for got in contract.gets:
            found += any_input(index, got, pulled=True)
        found += duplicates([Name(str(g), g.pos) for g in contract.gets], "data requirement")
        if isinstance(contract, WhenProvided):
            key = f"when provided {contract.input}"
            if isinstance(contract.input, SourceInput):
                found += source_input(index, contract.input)
            else:
                target, problems = context_input(index, contract.input, pulled=False)
                found += problems
                if target is not None:
                    found += publishing(index, target, contract.input.pos, f"'when provided {target.name.text}'")
        elif isinstance(contract, WhenPeriodic):
            key = f"when periodic {contract.source or ''} <{contract.period}>"
            found += _periodic(index, contract)
        else:
            continue
        if key in activations:
            found.append(error(contract.pos, f"context '{context.name.text}' already has a contract '{key}' at {where(activations[key])}"))
        else:
            activations[key] = contract.pos
    return found


def check_contexts(design: Design, index: DesignIndex) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for context in design.contexts:
        found += _context(index, context)
    return found
