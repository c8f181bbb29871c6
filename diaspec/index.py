"""Symbol table of a design: names to declarations, inheritance, inherited members, aliases."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property

from diaspec.model import (
    PRIMITIVES,
    ActionDecl,
    Attribute,
    Context,
    Controller,
    Declaration,
    Design,
    Device,
    Enumeration,
    ImportType,
    Source,
    Structure,
    TypeAlias,
    TypeRef,
    WhenPeriodic,
    WhenProvided,
    WhenRequired,
)

DATA_KINDS = (ImportType, TypeAlias, Enumeration, Structure)


@dataclass(frozen=True)
class ResolvedType:
    """A type reference with aliases followed: a primitive or a declared data type, plus array dims."""

    name: str
    dims: int

    @property
    def is_array(self) -> bool:
        return self.dims > 0


class DesignIndex:
    """Look-ups every pass shares (the checker, the generators, the graph)."""

    def __init__(self, design: Design) -> None:
        self.design = design
        self.by_name: dict[str, Declaration] = {}
        self._ancestors: dict[str, list[str]] = {}
        for decl in design.declarations:
            self.by_name.setdefault(decl.name.text, decl)

    def get(self, name: str, kind: type | tuple[type, ...]) -> object | None:
        decl = self.by_name.get(name)
        return decl if isinstance(decl, kind) else None

    def device(self, name: str) -> Device | None:
        return self.get(name, Device)  # type: ignore[return-value]

    def context(self, name: str) -> Context | None:
        return self.get(name, Context)  # type: ignore[return-value]

    def action(self, name: str) -> ActionDecl | None:
        return self.get(name, ActionDecl)  # type: ignore[return-value]

    def names_of(self, kind: type | tuple[type, ...]) -> list[str]:
        return [n for n, d in self.by_name.items() if isinstance(d, kind)]

    @cached_property
    def data_type_names(self) -> list[str]:
        return list(PRIMITIVES) + self.names_of(DATA_KINDS)

    # ---- inheritance ------------------------------------------------------------------------
    def ancestors(self, name: str) -> list[str]:
        """Proper ancestors, nearest first (breadth first; safe on cycles and unknown names)."""
        cached = self._ancestors.get(name)
        if cached is not None:
            return cached
        device = self.device(name)
        if device is None or not device.parents:
            return []  # most devices extend nothing: no walk, nothing to remember
        seen: list[str] = []
        seen_set = {name}
        queue = deque([name])
        while queue:
            device = self.device(queue.popleft())
            if device is None:
                continue
            for parent in device.parents:
                if parent.text not in seen_set and self.device(parent.text):
                    seen_set.add(parent.text)
                    seen.append(parent.text)
                    queue.append(parent.text)
        self._ancestors[name] = seen
        return seen

    def lineage(self, name: str) -> list[str]:
        """The device itself then its ancestors: where its members are looked up, in order."""
        return [name] + self.ancestors(name)

    @cached_property
    def _descendants(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {d.name.text: [] for d in self.design.devices}
        for device in self.design.devices:
            for ancestor in self.lineage(device.name.text):
                if device.name.text not in result.setdefault(ancestor, []):
                    result[ancestor].append(device.name.text)
        return result

    def descendants(self, name: str) -> list[str]:
        """The device itself and every device that extends it, directly or not."""
        return self._descendants.get(name, [])

    def sources(self, device: str) -> dict[str, tuple[Source, str]]:
        """Every source of a device, inherited ones included: name -> (source, declaring device)."""
        found: dict[str, tuple[Source, str]] = {}
        for owner in self.lineage(device):
            for source in self.device(owner).sources:  # type: ignore[union-attr]
                found.setdefault(source.name.text, (source, owner))
        return found

    def attributes(self, device: str) -> dict[str, tuple[Attribute, str]]:
        found: dict[str, tuple[Attribute, str]] = {}
        for owner in self.lineage(device):
            for attribute in self.device(owner).attributes:  # type: ignore[union-attr]
                found.setdefault(attribute.name.text, (attribute, owner))
        return found

    def device_actions(self, device: str) -> dict[str, str]:
        """Actions a device provides, inherited ones included: action name -> declaring device."""
        found: dict[str, str] = {}
        for owner in self.lineage(device):
            for action in self.device(owner).actions:  # type: ignore[union-attr]
                if self.action(action.text):
                    found.setdefault(action.text, owner)
        return found

    def devices_providing(self, action: str) -> list[str]:
        return [d.name.text for d in self.design.devices if action in self.device_actions(d.name.text)]

    # ---- types ------------------------------------------------------------------------------
    def resolve(self, ref: TypeRef) -> ResolvedType | None:
        """Follow aliases to a primitive or a declared data type; None if unknown or cyclic."""
        name, dims, seen = ref.name, ref.dims, set()
        while True:
            if name in PRIMITIVES and not isinstance(self.by_name.get(name), DATA_KINDS):
                return ResolvedType(name, dims)
            decl = self.by_name.get(name)
            if isinstance(decl, TypeAlias):
                if name in seen:
                    return None
                seen.add(name)
                name, dims = decl.target.name, dims + decl.target.dims
                continue
            if isinstance(decl, (ImportType, Enumeration, Structure)):
                return ResolvedType(name, dims)
            return None

    # ---- contexts ---------------------------------------------------------------------------
    @staticmethod
    def can_publish(context: Context) -> bool:
        return any(
            isinstance(c, (WhenProvided, WhenPeriodic)) and c.emission != "no" for c in context.contracts
        )

    @staticmethod
    def has_required(context: Context) -> bool:
        return any(isinstance(c, WhenRequired) for c in context.contracts)

    def controllers_of(self, context: str) -> list[Controller]:
        return [
            c for c in self.design.controllers if any(k.context.text == context for k in c.contracts)
        ]
