"""The checks a good DiaSpec compiler makes (LANGUAGE.md, checks 1 to 12), as passes over the model."""
from __future__ import annotations

from diaspec.diagnostics import Diagnostics, Pos, did_you_mean
from diaspec.index import DATA_KINDS, DesignIndex
from diaspec.model import (
    PRIMITIVES,
    ActionDecl,
    Context,
    ContextInput,
    Controller,
    Design,
    Device,
    Enumeration,
    Input,
    Name,
    SourceInput,
    Structure,
    TypeAlias,
    TypeRef,
    WhenPeriodic,
    WhenProvided,
    WhenRequired,
    kind_name,
)


def _where(pos: Pos) -> str:
    return f"{pos.file}:{pos.line}:{pos.col}"


def _duplicates(names: list[Name], what: str, diags: Diagnostics) -> None:
    seen: dict[str, Name] = {}
    for name in names:
        if name.text in seen:
            diags.error(name.pos, f"duplicate {what} '{name.text}' (first declared at {_where(seen[name.text].pos)})")
        else:
            seen[name.text] = name


class Checker:
    """Runs every check over a design and collects the findings."""

    def __init__(self, design: Design, diags: Diagnostics) -> None:
        self.design = design
        self.index = DesignIndex(design)
        self.diags = diags
        self.used_sources: set[tuple[str, str]] = set()  # (declaring device, source)
        self.ordered_actions: set[str] = set()
        self.consumed_contexts: set[str] = set()

    def run(self) -> DesignIndex:
        if not self.design.declarations:
            self.diags.warning(Pos(self.design.main_file, 1, 1), "the design is empty: nothing is declared")
        self.check_names()                # 1
        self.check_types()                # 2, 5
        self.check_devices()              # 3, 4
        for context in self.design.contexts:
            self.check_context(context)   # 6, 7, 8, 9
        for controller in self.design.controllers:
            self.check_controller(controller)  # 10
        self.check_context_cycles()       # 11
        self.check_unused()               # 12
        return self.index

    # ---- 1: names ------------------------------------------------------------------------------
    def check_names(self) -> None:
        first: dict[str, object] = {}
        for decl in self.design.declarations:
            name = decl.name
            if name.text in PRIMITIVES:
                self.diags.error(name.pos, f"'{name.text}' is a primitive type and cannot be redeclared")
                continue
            if name.text in first:
                other = first[name.text]
                self.diags.error(
                    name.pos,
                    f"'{name.text}' is already declared as {_article(kind_name(other))} at {_where(other.name.pos)}",
                )
            else:
                first[name.text] = decl
            if isinstance(decl, Enumeration):
                _duplicates(decl.values, f"value in enumeration {name.text}:", self.diags)
            elif isinstance(decl, Structure):
                _duplicates([f.name for f in decl.fields], f"field in structure {name.text}:", self.diags)
            elif isinstance(decl, ActionDecl):
                _duplicates([m.name for m in decl.methods], f"method in action {name.text}:", self.diags)
                for method in decl.methods:
                    _duplicates([p.name for p in method.params], f"parameter of {name.text}.{method.name.text}:", self.diags)
            elif isinstance(decl, Device):
                members = [a.name for a in decl.attributes] + [s.name for s in decl.sources]
                _duplicates(sorted(members, key=lambda n: n.pos), f"member of device {name.text}:", self.diags)
                _duplicates(decl.actions, f"action of device {name.text}:", self.diags)
                _duplicates(decl.parents, f"parent of device {name.text}:", self.diags)
                for source in decl.sources:
                    _duplicates([i.name for i in source.indices], f"index of source {source.name.text}:", self.diags)
            elif isinstance(decl, Context):
                _duplicates([i.name for i in decl.indices], f"index of context {name.text}:", self.diags)

    # ---- 2 and 5: types ------------------------------------------------------------------------
    def check_type_ref(self, ref: TypeRef) -> bool:
        """Check 2: a type reference names a data type. True when it does."""
        if ref.name in PRIMITIVES:
            return True
        decl = self.index.by_name.get(ref.name)
        if isinstance(decl, DATA_KINDS):
            return True
        if decl is not None:
            self.diags.error(ref.pos, f"'{ref.name}' is {_article(kind_name(decl))}, not a data type")
        else:
            self.diags.error(
                ref.pos, f"unknown type '{ref.name}'" + did_you_mean(ref.name, self.index.data_type_names)
            )
        return False

    def check_index_key(self, ref: TypeRef, name: Name) -> None:
        """Check 5: index keys are non-array data types."""
        if not self.check_type_ref(ref):
            return
        resolved = self.index.resolve(ref)
        if resolved is not None and resolved.is_array:
            self.diags.error(ref.pos, f"index '{name.text}' must not be an array (its type is {ref})")

    def check_types(self) -> None:
        for decl in self.design.declarations:
            if isinstance(decl, TypeAlias):
                self.check_type_ref(decl.target)
            elif isinstance(decl, Structure):
                for f in decl.fields:
                    self.check_type_ref(f.type)
            elif isinstance(decl, ActionDecl):
                for method in decl.methods:
                    for param in method.params:
                        self.check_type_ref(param.type)
            elif isinstance(decl, Device):
                for attribute in decl.attributes:
                    self.check_type_ref(attribute.type)
                for source in decl.sources:
                    self.check_type_ref(source.type)
                    for index in source.indices:
                        self.check_index_key(index.type, index.name)
            elif isinstance(decl, Context):
                self.check_type_ref(decl.type)
                for index in decl.indices:
                    self.check_index_key(index.type, index.name)
        self.check_alias_cycles()
        self.check_recursive_structures()

    def check_alias_cycles(self) -> None:
        settled: set[str] = set()  # aliases known to end in a non-alias (or in a reported cycle)
        for alias in self.design.of_kind(TypeAlias):
            chain: list[str] = []
            on_chain: set[str] = set()
            current: object = alias
            while isinstance(current, TypeAlias) and current.name.text not in settled:
                name = current.name.text
                if name in on_chain:
                    cycle = chain[chain.index(name):] + [name]
                    first = min((self.index.by_name[n] for n in cycle[:-1]), key=lambda a: a.name.pos)
                    start = cycle.index(first.name.text)
                    ordered = cycle[start:-1] + cycle[:start] + [first.name.text]
                    self.diags.error(first.name.pos, "type alias cycle: " + " -> ".join(ordered))
                    break
                chain.append(name)
                on_chain.add(name)
                current = self.index.by_name.get(current.target.name)
            settled.update(chain)

    def _by_value_structure(self, ref: TypeRef) -> str | None:
        resolved = self.index.resolve(ref)
        if resolved is None or resolved.is_array:
            return None
        return resolved.name if isinstance(self.index.by_name.get(resolved.name), Structure) else None

    def check_recursive_structures(self) -> None:
        reported: set[str] = set()  # one error per cycle, at its first structure
        for struct in self.design.of_kind(Structure):
            if self.index.by_name.get(struct.name.text) is not struct or struct.name.text in reported:
                continue
            # depth-first over by-value fields, iteratively (specs can be deep)
            stack: list[tuple[str, list[str]]] = [(struct.name.text, [])]
            visited: set[str] = set()
            while stack:
                current, path = stack.pop()
                decl = self.index.by_name.get(current)
                if not isinstance(decl, Structure):
                    continue
                for f in decl.fields:
                    inner = self._by_value_structure(f.type)
                    if inner is None:
                        continue
                    step = path + [f"{current}.{f.name.text}"]
                    if inner == struct.name.text:
                        reported.update(p.split(".")[0] for p in step)
                        self.diags.error(
                            struct.name.pos,
                            f"structure '{struct.name.text}' contains itself by value: "
                            + " -> ".join(step + [inner])
                            + " (use an array to break the cycle)",
                        )
                        stack.clear()
                        break
                    if inner not in visited:
                        visited.add(inner)
                        stack.append((inner, step))

    # ---- 3 and 4: devices ----------------------------------------------------------------------
    def check_devices(self) -> None:
        devices = self.index.names_of(Device)
        actions = self.index.names_of(ActionDecl)
        for device in self.design.devices:
            for parent in device.parents:
                decl = self.index.by_name.get(parent.text)
                if decl is None:
                    self.diags.error(parent.pos, f"unknown device '{parent.text}'" + did_you_mean(parent.text, devices))
                elif not isinstance(decl, Device):
                    self.diags.error(parent.pos, f"'{parent.text}' is {_article(kind_name(decl))}, not a device; only devices can be extended")
            for action in device.actions:
                decl = self.index.by_name.get(action.text)
                if decl is None:
                    self.diags.error(action.pos, f"unknown action '{action.text}'" + did_you_mean(action.text, actions))
                elif not isinstance(decl, ActionDecl):
                    self.diags.error(action.pos, f"'{action.text}' is {_article(kind_name(decl))}, not an action")
        self.check_inheritance_cycles()
        for device in self.design.devices:
            if self.index.device(device.name.text) is device:
                self.check_inherited_members(device)
                self.check_method_clashes(device)

    def check_inheritance_cycles(self) -> None:
        edges = {
            d.name.text: [p.text for p in d.parents if self.index.device(p.text)]
            for d in self.design.devices
            if self.index.device(d.name.text) is d
        }
        for component in _strongly_connected(edges):
            if len(component) == 1 and component[0] not in edges.get(component[0], []):
                continue
            first = min((self.index.device(n) for n in component), key=lambda d: d.name.pos)
            path = _cycle_path(first.name.text, edges, set(component))
            self.diags.error(first.name.pos, "inheritance cycle: " + " -> ".join(path))

    def check_inherited_members(self, device: Device) -> None:
        ancestors = self.index.ancestors(device.name.text)
        for source in device.sources:
            for owner in ancestors:
                inherited = next((s for s in self.index.device(owner).sources if s.name.text == source.name.text), None)
                if inherited is None:
                    continue
                if str(inherited.type) != str(source.type):
                    self.diags.error(
                        source.type.pos,
                        f"source '{source.name.text}' is inherited from {owner} as {inherited.type}; "
                        f"it cannot be redeclared as {source.type}",
                    )
                mine = [(i.name.text, str(i.type)) for i in source.indices]
                theirs = [(i.name.text, str(i.type)) for i in inherited.indices]
                if mine != theirs:
                    self.diags.error(
                        source.name.pos,
                        f"source '{source.name.text}' is inherited from {owner} indexed by "
                        f"{_indices(theirs)}; it cannot be redeclared indexed by {_indices(mine)}",
                    )
                break
        for attribute in device.attributes:
            for owner in ancestors:
                inherited = next((a for a in self.index.device(owner).attributes if a.name.text == attribute.name.text), None)
                if inherited is None:
                    continue
                if str(inherited.type) != str(attribute.type):
                    self.diags.error(
                        attribute.type.pos,
                        f"attribute '{attribute.name.text}' is inherited from {owner} as {inherited.type}; "
                        f"it cannot be redeclared as {attribute.type}",
                    )
                break

    def check_method_clashes(self, device: Device) -> None:
        """Check 4: one method name means one thing on a device (inherited actions included)."""
        owner_of: dict[str, str] = {}
        own = {a.text for a in device.actions}
        for action_name, _declared_in in self.index.device_actions(device.name.text).items():
            action = self.index.action(action_name)
            for method in action.methods:
                other = owner_of.get(method.name.text)
                if other is not None and other != action_name:
                    place = next((a.pos for a in device.actions if a.text in (action_name, other)), device.name.pos)
                    if action_name in own or other in own:
                        self.diags.error(
                            place,
                            f"method '{method.name.text}' of action {action_name} clashes with method "
                            f"'{method.name.text}' of action {other} on device {device.name.text}",
                        )
                else:
                    owner_of[method.name.text] = action_name

    # ---- 6 to 9: contexts ----------------------------------------------------------------------
    def check_source_input(self, given: SourceInput) -> bool:
        """Check 6: `s from D` names a device D and a source of D (or of an ancestor)."""
        device = self.index.by_name.get(given.device.text)
        if device is None:
            self.diags.error(
                given.device.pos,
                f"unknown device '{given.device.text}'" + did_you_mean(given.device.text, self.index.names_of(Device)),
            )
            return False
        if not isinstance(device, Device):
            self.diags.error(given.device.pos, f"'{given.device.text}' is {_article(kind_name(device))}, not a device")
            return False
        sources = self.index.sources(given.device.text)
        if given.source.text in sources:
            _, owner = sources[given.source.text]
            self.used_sources.add((owner, given.source.text))
            return True
        attributes = self.index.attributes(given.device.text)
        if given.source.text in attributes:
            self.diags.error(
                given.source.pos,
                f"'{given.source.text}' is an attribute of {given.device.text}, not a source; "
                "attributes select devices, they are not read",
            )
            return False
        self.diags.error(
            given.source.pos,
            f"device '{given.device.text}' has no source '{given.source.text}'" + did_you_mean(given.source.text, sources),
        )
        return False

    def check_context_input(self, given: ContextInput, *, pulled: bool, by_controller: bool = False) -> Context | None:
        """Check 7 (and 8 for `get`): a bare name is a context (a pulled one has `when required`)."""
        name = given.name.text
        decl = self.index.by_name.get(name)
        if isinstance(decl, Device):
            if by_controller:
                self.diags.error(given.pos, f"'{name}' is a device; a controller reacts to contexts only")
            else:
                self.diags.error(given.pos, f"'{name}' is a device; write '<source> from {name}'")
            return None
        if decl is None:
            self.diags.error(given.pos, f"unknown context '{name}'" + did_you_mean(name, self.index.names_of(Context)))
            return None
        if not isinstance(decl, Context):
            self.diags.error(given.pos, f"'{name}' is {_article(kind_name(decl))}, not a context")
            return None
        self.consumed_contexts.add(name)
        if pulled and not self.index.has_required(decl):
            self.diags.error(
                given.pos,
                f"context '{name}' has no 'when required' contract, so it cannot be pulled with 'get'",
            )
        return decl

    def check_input(self, given: Input, *, pulled: bool) -> None:
        if isinstance(given, SourceInput):
            self.check_source_input(given)
        else:
            self.check_context_input(given, pulled=pulled)

    def check_publishing(self, context: Context, pos: Pos, reader: str) -> None:
        if not self.index.can_publish(context):
            self.diags.error(
                pos,
                f"context '{context.name.text}' never publishes (no 'always' or 'maybe publish' contract), "
                f"so {reader} is never activated",
            )

    def check_context(self, context: Context) -> None:
        if not context.contracts:
            self.diags.warning(context.name.pos, f"context '{context.name.text}' has no contracts")
        required = [c for c in context.contracts if isinstance(c, WhenRequired)]
        for extra in required[1:]:
            self.diags.error(extra.pos, f"context '{context.name.text}' has more than one 'when required' contract")
        activations: dict[str, Pos] = {}
        for contract in context.contracts:
            for got in contract.gets:
                self.check_input(got, pulled=True)
            _duplicates(
                [Name(str(g), g.pos) for g in contract.gets], "data requirement", self.diags
            )
            if isinstance(contract, WhenProvided):
                key = f"when provided {contract.input}"
                if isinstance(contract.input, SourceInput):
                    self.check_source_input(contract.input)
                else:
                    target = self.check_context_input(contract.input, pulled=False)
                    if target is not None:
                        self.check_publishing(target, contract.input.pos, f"'when provided {target.name.text}'")
            elif isinstance(contract, WhenPeriodic):
                key = f"when periodic {contract.source or ''} <{contract.period}>"
                self.check_periodic(contract)
            else:
                continue
            if key in activations:
                self.diags.error(
                    contract.pos,
                    f"context '{context.name.text}' already has a contract '{key}' at {_where(activations[key])}",
                )
            else:
                activations[key] = contract.pos

    def check_periodic(self, contract: WhenPeriodic) -> None:
        """Check 9: a positive period; `grouped by` names a non-array attribute of the sampled device."""
        if contract.period.amount <= 0:
            self.diags.error(contract.period.pos, "the period of 'when periodic' must be greater than zero")
        source_ok = contract.source is not None and self.check_source_input(contract.source)
        group = contract.grouped_by
        if group is None:
            return
        if contract.source is None:
            self.diags.error(
                group.pos,
                "'grouped by' needs a sampled source: write 'when periodic <source> from <Device> <period> grouped by ...'",
            )
            return
        if not source_ok:
            return
        device = contract.source.device.text
        attributes = self.index.attributes(device)
        if group.text not in attributes:
            self.diags.error(
                group.pos, f"device '{device}' has no attribute '{group.text}'" + did_you_mean(group.text, attributes)
            )
            return
        attribute, _ = attributes[group.text]
        resolved = self.index.resolve(attribute.type)
        if resolved is not None and resolved.is_array:
            self.diags.error(group.pos, f"cannot group by '{group.text}': its type {attribute.type} is an array")

    # ---- 10: controllers -----------------------------------------------------------------------
    def check_controller(self, controller: Controller) -> None:
        if not controller.contracts:
            self.diags.warning(controller.name.pos, f"controller '{controller.name.text}' has no contracts")
        activations: dict[str, Pos] = {}
        for contract in controller.contracts:
            name = contract.context.text
            if name in activations:
                self.diags.error(
                    contract.pos,
                    f"controller '{controller.name.text}' already has a contract 'when provided {name}' at {_where(activations[name])}",
                )
            activations.setdefault(name, contract.pos)
            target = self.check_context_input(ContextInput(contract.context), pulled=False, by_controller=True)
            if target is not None:
                self.check_publishing(target, contract.context.pos, f"controller '{controller.name.text}'")
            seen_orders: set[tuple[str, str]] = set()
            for order in contract.orders:
                key = (order.action.text, order.device.text)
                if key in seen_orders:
                    self.diags.error(order.action.pos, f"duplicate order '{order.action.text} on {order.device.text}'")
                seen_orders.add(key)
                self.check_order(order.action, order.device)

    def check_order(self, action: Name, device: Name) -> None:
        action_decl = self.index.by_name.get(action.text)
        if action_decl is None:
            self.diags.error(action.pos, f"unknown action '{action.text}'" + did_you_mean(action.text, self.index.names_of(ActionDecl)))
            action_ok = False
        elif not isinstance(action_decl, ActionDecl):
            self.diags.error(action.pos, f"'{action.text}' is {_article(kind_name(action_decl))}, not an action")
            action_ok = False
        else:
            action_ok = True
            self.ordered_actions.add(action.text)
        device_decl = self.index.by_name.get(device.text)
        if device_decl is None:
            self.diags.error(device.pos, f"unknown device '{device.text}'" + did_you_mean(device.text, self.index.names_of(Device)))
            return
        if not isinstance(device_decl, Device):
            self.diags.error(device.pos, f"'{device.text}' is {_article(kind_name(device_decl))}, not a device")
            return
        if action_ok and action.text not in self.index.device_actions(device.text):
            providers = self.index.devices_providing(action.text)
            hint = f"devices that do: {', '.join(providers)}" if providers else "no device provides it"
            self.diags.error(
                device.pos, f"device '{device.text}' does not provide action '{action.text}' ({hint})"
            )

    # ---- 11: cycles among contexts -------------------------------------------------------------
    def check_context_cycles(self) -> None:
        edges: dict[str, list[str]] = {}
        for context in self.design.contexts:
            targets = edges.setdefault(context.name.text, [])
            for contract in context.contracts:
                inputs = list(contract.gets)
                if isinstance(contract, WhenProvided):
                    inputs.append(contract.input)
                for given in inputs:
                    if isinstance(given, ContextInput) and self.index.context(given.name.text):
                        targets.append(given.name.text)
        for component in _strongly_connected(edges):
            members = set(component)
            if len(component) == 1 and component[0] not in edges.get(component[0], []):
                continue
            first = min((self.index.context(n) for n in component), key=lambda c: c.name.pos)
            path = _cycle_path(first.name.text, edges, members)
            self.diags.error(
                first.name.pos,
                "cycle among contexts: " + " -> ".join(path) + " (a context cannot depend on itself, "
                "by push or through 'when required')",
            )

    # ---- 12: warnings --------------------------------------------------------------------------
    def check_unused(self) -> None:
        for context in self.design.contexts:
            name = context.name.text
            if name not in self.consumed_contexts and self.index.context(name) is context:
                self.diags.warning(context.name.pos, f"context '{name}' is never used by a context or controller")
        for device in self.design.devices:
            for source in device.sources:
                if (device.name.text, source.name.text) not in self.used_sources:
                    self.diags.warning(
                        source.name.pos, f"source '{source.name.text}' of device {device.name.text} is never used"
                    )
        for action in self.design.actions:
            if action.name.text not in self.ordered_actions and self.index.action(action.name.text) is action:
                self.diags.warning(action.name.pos, f"action '{action.name.text}' is never ordered by a controller")


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _indices(indices: list[tuple[str, str]]) -> str:
    return "(" + ", ".join(f"{n} as {t}" for n, t in indices) + ")" if indices else "nothing"


def _strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm without recursion (designs can be large)."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child_i = work.pop()
            if child_i == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = edges.get(node, [])
            recursed = False
            while child_i < len(children):
                child = children[child_i]
                child_i += 1
                if child not in index_of:
                    work.append((node, child_i))
                    work.append((child, 0))
                    recursed = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index_of[child])
            if recursed:
                continue
            if low[node] == index_of[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                result.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


def _cycle_path(start: str, edges: dict[str, list[str]], members: set[str]) -> list[str]:
    """A shortest path start -> ... -> start inside one strongly connected component."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in edges.get(node, []):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return list(reversed(path)) + [start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start, start]


def check_design(design: Design, diags: Diagnostics) -> DesignIndex:
    """Run every check; findings go to `diags`. Returns the index the generators reuse."""
    return Checker(design, diags).run()
