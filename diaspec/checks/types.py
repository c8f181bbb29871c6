"""Checks 2 and 5: type references name data types, no alias cycles, no structure holding itself
by value, index keys are not arrays."""
from __future__ import annotations

from diaspec.checks.common import article, error
from diaspec.diagnostics import Diagnostic, did_you_mean
from diaspec.index import DATA_KINDS, DesignIndex
from diaspec.model import (
    PRIMITIVES,
    ActionDecl,
    Context,
    Design,
    Device,
    Index,
    Structure,
    TypeAlias,
    TypeRef,
    kind_name,
)


MAX_ARRAY_DIMS = 32  # beyond this a type is a mistake (and no target could carry it)


def type_ref_problem(index: DesignIndex, ref: TypeRef) -> Diagnostic | None:
    """Check 2: a type reference names a data type (with a sane number of `[]`)."""
    if ref.dims > MAX_ARRAY_DIMS:
        return error(ref.pos, f"type '{ref.name}' has {ref.dims} array dimensions; at most "
                              f"{MAX_ARRAY_DIMS} are allowed (use a structure to nest data)")
    if ref.name in PRIMITIVES:
        return None
    decl = index.by_name.get(ref.name)
    if isinstance(decl, DATA_KINDS):
        return None
    if decl is not None:
        return error(ref.pos, f"'{ref.name}' is {article(kind_name(decl))}, not a data type")
    return error(ref.pos, f"unknown type '{ref.name}'" + did_you_mean(ref.name, index.data_type_names))


def _index_keys(index: DesignIndex, keys: list[Index]) -> list[Diagnostic]:
    """Check 5: index keys are non-array data types."""
    found = []
    for key in keys:
        problem = type_ref_problem(index, key.type)
        if problem is not None:
            found.append(problem)
            continue
        resolved = index.resolve(key.type)
        if resolved is not None and resolved.is_array:
            found.append(error(key.type.pos, f"index '{key.name.text}' must not be an array (its type is {key.type})"))
    return found


def _references(index: DesignIndex, refs: list[TypeRef]) -> list[Diagnostic]:
    return [p for p in (type_ref_problem(index, ref) for ref in refs) if p is not None]


def check_types(design: Design, index: DesignIndex) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for decl in design.declarations:
        if isinstance(decl, TypeAlias):
            found += _references(index, [decl.target])
        elif isinstance(decl, Structure):
            found += _references(index, [f.type for f in decl.fields])
        elif isinstance(decl, ActionDecl):
            found += _references(index, [p.type for m in decl.methods for p in m.params])
        elif isinstance(decl, Device):
            found += _references(index, [a.type for a in decl.attributes])
            for source in decl.sources:
                found += _references(index, [source.type])
                found += _index_keys(index, source.indices)
        elif isinstance(decl, Context):
            found += _references(index, [decl.type])
            found += _index_keys(index, decl.indices)
    return found + _alias_cycles(design, index) + _recursive_structures(design, index)


def _alias_cycles(design: Design, index: DesignIndex) -> list[Diagnostic]:
    found = []
    settled: set[str] = set()  # aliases known to end in a non-alias (or in a reported cycle)
    for alias in design.of_kind(TypeAlias):
        chain: list[str] = []
        on_chain: set[str] = set()
        current: object = alias
        while isinstance(current, TypeAlias) and current.name.text not in settled:
            name = current.name.text
            if name in on_chain:
                cycle = chain[chain.index(name):] + [name]
                first = min((index.by_name[n] for n in cycle[:-1]), key=lambda a: a.name.pos)
                start = cycle.index(first.name.text)
                ordered = cycle[start:-1] + cycle[:start] + [first.name.text]
                found.append(error(first.name.pos, "type alias cycle: " + " -> ".join(ordered)))
                break
            chain.append(name)
            on_chain.add(name)
            current = index.by_name.get(current.target.name)
        settled.update(chain)
    return found


def _by_value_structure(index: DesignIndex, ref: TypeRef) -> str | None:
    resolved = index.resolve(ref)
    if resolved is None or resolved.is_array:
        return None
    return resolved.name if isinstance(index.by_name.get(resolved.name), Structure) else None


def _recursive_structures(design: Design, index: DesignIndex) -> list[Diagnostic]:
    found = []
    reported: set[str] = set()  # one error per cycle, at its first structure
    for struct in design.of_kind(Structure):
        if index.by_name.get(struct.name.text) is not struct or struct.name.text in reported:
            continue
        # depth-first over by-value fields, iteratively (specs can be deep)
        stack: list[tuple[str, list[str]]] = [(struct.name.text, [])]
        visited: set[str] = set()
        while stack:
            current, path = stack.pop()
            decl = index.by_name.get(current)
            if not isinstance(decl, Structure):
                continue
            for f in decl.fields:
                inner = _by_value_structure(index, f.type)
                if inner is None:
                    continue
                step = path + [f"{current}.{f.name.text}"]
                if inner == struct.name.text:
                    reported.update(p.split(".")[0] for p in step)
                    found.append(error(
                        struct.name.pos,
                        f"structure '{struct.name.text}' contains itself by value: "
                        + " -> ".join(step + [inner]) + " (use an array to break the cycle)",
                    ))
                    stack.clear()
                    break
                if inner not in visited:
                    visited.add(inner)
                    stack.append((inner, step))
    return found
