"""Check 1: one namespace for top-level names, primitives not redeclared, members unique."""
from __future__ import annotations

from diaspec.checks.common import article, duplicates, error, warning, where
from diaspec.diagnostics import Diagnostic, Pos
from diaspec.index import DesignIndex
from diaspec.model import PRIMITIVES, ActionDecl, Context, Declaration, Design, Device, Enumeration, Structure, kind_name


def _members(decl: Declaration) -> list[Diagnostic]:
    name = decl.name.text
    if isinstance(decl, Enumeration):
        return duplicates(decl.values, f"value in enumeration {name}:")
    if isinstance(decl, Structure):
        return duplicates([f.name for f in decl.fields], f"field in structure {name}:")
    if isinstance(decl, ActionDecl):
        found = duplicates([m.name for m in decl.methods], f"method in action {name}:")
        for method in decl.methods:
            found += duplicates([p.name for p in method.params], f"parameter of {name}.{method.name.text}:")
        return found
    if isinstance(decl, Device):
        if len(decl.attributes) + len(decl.sources) < 2 and len(decl.actions) < 2 and len(decl.parents) < 2 \
                and all(len(s.indices) < 2 for s in decl.sources):
            return []  # nothing that could be duplicated (the common one-member device)
        members = [a.name for a in decl.attributes] + [s.name for s in decl.sources]
        found = duplicates(sorted(members, key=lambda n: n.pos), f"member of device {name}:")
        found += duplicates(decl.actions, f"action of device {name}:")
        found += duplicates(decl.parents, f"parent of device {name}:")
        for source in decl.sources:
            found += duplicates([i.name for i in source.indices], f"index of source {source.name.text}:")
        return found
    if isinstance(decl, Context):
        return duplicates([i.name for i in decl.indices], f"index of context {name}:")
    return []


def check_names(design: Design, index: DesignIndex) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    if not design.declarations:
        found.append(warning(Pos(design.main_file, 1, 1), "the design is empty: nothing is declared"))
    for decl in design.declarations:
        name = decl.name
        if name.text in PRIMITIVES:
            found.append(error(name.pos, f"'{name.text}' is a primitive type and cannot be redeclared"))
            continue
        first = index.by_name[name.text]
        if first is not decl:
            found.append(error(
                name.pos, f"'{name.text}' is already declared as {article(kind_name(first))} at {where(first.name.pos)}"
            ))
        found += _members(decl)
    return found
