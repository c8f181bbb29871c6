"""The runtime every generated Python app ships (copied as framework/_runtime.py): static wiring
from the design, one deterministic event queue, push/pull/periodic delivery, discover objects
limited to each contract, device selection by attributes, a virtual clock and a trace mode.

It imports nothing from diaspec so a generated app runs on a robot without the compiler.
"""
from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("diaspec.runtime")


class ContractViolation(RuntimeError):
    """The code did something its design forbids (a bug to fix, so it is never swallowed)."""


class BindError(RuntimeError):
    """The app cannot be assembled: missing user callbacks, bad deployment, missing imports."""


# ---- the design as data (generated design.py fills these) ------------------------------------
@dataclass(frozen=True)
class SourceSpec:
    name: str  # python name
    index: tuple[str, ...] = ()
    getter: str = ""  # the device method that reads it (get_<source>)


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    lineage: tuple[str, ...]  # itself first, then ancestors
    attributes: Mapping[str, str]  # python name -> design name
    sources: Mapping[str, SourceSpec]
    actions: Mapping[str, tuple[str, ...]]  # action -> python method names


@dataclass(frozen=True)
class GetSpec:
    member: str  # discover member name
    device: str = ""  # set for `source from Device`
    source: str = ""
    context: str = ""  # set for a pulled context


@dataclass(frozen=True)
class ContractSpec:
    kind: str  # "source" | "context" | "required" | "periodic"
    method: str
    text: str
    emission: str = "no"
    device: str = ""
    source: str = ""
    context: str = ""
    period_ms: float = 0.0
    grouped_by: str = ""
    gets: tuple[GetSpec, ...] = ()


@dataclass(frozen=True)
class ContextSpec:
    name: str
    indexed: bool
    contracts: tuple[ContractSpec, ...]


@dataclass(frozen=True)
class OrderSpec:
    action: str
    device: str
    member: str  # discover member name (the device in snake_case)
    methods: tuple[str, ...]


@dataclass(frozen=True)
class ReactionSpec:
    context: str
    method: str
    text: str
    orders: tuple[OrderSpec, ...]


@dataclass(frozen=True)
class ControllerSpec:
    name: str
    reactions: tuple[ReactionSpec, ...]


@dataclass(frozen=True)
class DesignTables:
    app: str
    devices: Mapping[str, DeviceSpec]
    contexts: Mapping[str, ContextSpec]
    controllers: Mapping[str, ControllerSpec]


# ---- values the callbacks see --------------------------------------------------------------
class Event:
    """A reading: `value`, `index` (dict of index name -> key) and the `sender` device."""

    __slots__ = ("value", "index", "sender", "source")

    def __init__(self, value: Any, index: Mapping[str, Any], sender: "AbstractDevice", source: str) -> None:
        self.value = value
        self.index = index
        self.sender = sender
        self.source = source

    def __repr__(self) -> str:
        index = "".join(f", {k}={v!r}" for k, v in self.index.items())
        return f"Event({self.sender.device_id}.{self.source}={self.value!r}{index})"


@dataclass(frozen=True)
class RecordedOrder:
    """An order a simulated device received."""

    method: str
    args: tuple[Any, ...]
    action: str
    controller: str
    time_ms: float


@dataclass(frozen=True)
class Failure:
    """A user callback raised: logged with the component and contract, and kept for tests."""

    component: str
    contract: str
    error: BaseException


# ---- clocks --------------------------------------------------------------------------------
class VirtualClock:
    """Time that moves only when a test advances it (no sleeping in tests)."""

    def __init__(self, start_ms: float = 0.0) -> None:
        self.now_ms = start_ms

    def now(self) -> float:
        return self.now_ms


class MonotonicClock:
    """Wall time for a running robot."""

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._origin) * 1000.0


# ---- devices -------------------------------------------------------------------------------
class AbstractDevice:
    """Base of every generated device class: attributes, last readings, publishing."""

    DEVICE = ""
    _runtime: "Runtime | None" = None

    def __init__(self, device_id: str, attributes: Mapping[str, Any]) -> None:
        self.device_id = device_id
        self.attributes = dict(attributes)
        for name, value in attributes.items():
            setattr(self, name, value)
        self._last: dict[str, dict[tuple, Event]] = {}
        self._routes: dict[str, list[Callable[[Any], None]]] = {}

    def __repr__(self) -> str:
        return f"{self.DEVICE}({self.device_id})"

    def _publish(self, source: str, value: Any, index: Mapping[str, Any]) -> None:
        event = Event(value, index, self, source)
        self._last.setdefault(source, {})[tuple(index.values())] = event
        runtime = self._runtime
        if runtime is None:
            return
        if runtime._trace:
            runtime._emit_trace(f"publish {self}.{source} = {value!r}" + _index_text(index))
        handlers = self._routes.get(source)
        if handlers:
            queue = runtime._queue
            for handler in handlers:
                queue.append((handler, event))
            if not runtime._dispatching:
                runtime.run_until_idle()

    def _last_value(self, source: str, index: Mapping[str, Any]) -> Any:
        event = self._last.get(source, {}).get(tuple(index.values()))
        return None if event is None else event.value

    def sample(self, source: str) -> list[Event]:
        """The current readings of a source (every index): what periodic contracts and `get` see.

        An unindexed source is read through `get_<source>()`, so a driver overrides that method to
        read hardware on demand.
        """
        spec = type(self)._SOURCES.get(source)  # type: ignore[attr-defined]
        if spec is not None and not spec.index:
            value = getattr(self, spec.getter)()
            return [] if value is None else [Event(value, {}, self, source)]
        return list(self._last.get(source, {}).values())


class SimulatedDevice:
    """Mixin of the generated Sim<Device> classes: actions are recorded, tests push readings."""

    def _record(self, action: str, method: str, *args: Any) -> None:
        runtime = self._runtime  # type: ignore[attr-defined]
        controller = runtime._current_controller if runtime else ""
        now = runtime.clock.now() if runtime else 0.0
        self.__dict__.setdefault("orders", []).append(RecordedOrder(method, args, action, controller, now))

    @property
    def orders(self) -> list[RecordedOrder]:
        return self.__dict__.setdefault("orders", [])

    def order_names(self) -> list[str]:
        return [o.method for o in self.orders]

    def clear_orders(self) -> None:
        self.orders.clear()


def _index_text(index: Mapping[str, Any]) -> str:
    return "".join(f" {k}={getattr(v, 'name', v)!s}" for k, v in index.items())


# ---- discover ------------------------------------------------------------------------------
class Discover:
    """What one activation may use: its data requirements, or the orders its contract allows."""

    __slots__ = ("_open", "_members", "_where")

    def __init__(self, members: Mapping[str, Callable[..., Any]], where: str) -> None:
        self._open = True
        self._members = members
        self._where = where

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        self._check_open()
        member = self._members.get(name)
        if member is None:
            allowed = ", ".join(sorted(self._members)) or "nothing"
            raise ContractViolation(f"{self._where}: '{name}' is not in this contract (it may use: {allowed})")
        return member(self)

    def _check_open(self) -> None:
        if not self._open:
            raise ContractViolation(f"{self._where}: discover used after the callback returned")

    def __dir__(self) -> Iterable[str]:
        return list(self._members)


class Selection:
    """Devices a controller may order, narrowed by attributes with `where(...)`."""

    __slots__ = ("_discover", "_runtime", "_spec", "_devices", "_controller")

    def __init__(self, discover: Discover, runtime: "Runtime", spec: OrderSpec, devices: list[AbstractDevice], controller: str) -> None:
        self._discover = discover
        self._runtime = runtime
        self._spec = spec
        self._devices = devices
        self._controller = controller

    def where(self, **attributes: Any) -> "Selection":
        self._discover._check_open()
        known = self._runtime.tables.devices[self._spec.device].attributes
        for name in attributes:
            if name not in known:
                raise ContractViolation(
                    f"{self._controller}: {self._spec.device} has no attribute '{name}' "
                    f"(it has: {', '.join(known) or 'none'})"
                )
        chosen = [d for d in self._devices if all(getattr(d, k) == v for k, v in attributes.items())]
        return Selection(self._discover, self._runtime, self._spec, chosen, self._controller)

    @property
    def devices(self) -> list[AbstractDevice]:
        return list(self._devices)

    def __len__(self) -> int:
        return len(self._devices)

    def __getattr__(self, method: str) -> Callable[..., None]:
        if method.startswith("__"):
            raise AttributeError(method)
        spec = self._spec
        if method not in spec.methods:
            raise ContractViolation(
                f"{self._controller}: may order {spec.device} only {', '.join(spec.methods)} "
                f"(action {spec.action}); '{method}' is not allowed by the design"
            )

        def order(*args: Any) -> None:
            self._discover._check_open()
            runtime = self._runtime
            for device in self._devices:
                if runtime._trace:
                    shown = ", ".join(repr(a) for a in args)
                    runtime._emit_trace(f"order {device}.{method}({shown}) by {self._controller}")
                getattr(device, method)(*args)

        return order


# ---- the runtime ---------------------------------------------------------------------------
@dataclass(order=True)
class _Timer:
    due_ms: float
    seq: int
    period_ms: float = field(compare=False)
    handler: Callable[[], None] = field(compare=False)


class Runtime:
    """Wires user components and devices from the design tables and drives them."""

    def __init__(
        self,
        tables: DesignTables,
        components: Mapping[str, Any],
        devices: Iterable[AbstractDevice],
        *,
        clock: Any = None,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.tables = tables
        self.components = dict(components)
        self.devices = list(devices)
        self.clock = clock if clock is not None else VirtualClock()
        self._trace = trace
        self._queue: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._dispatching = False
        self._timers: list[_Timer] = []
        self._seq = 0
        self._current_controller = ""
        self._context_routes: dict[str, list[Callable[[Any], None]]] = {}
        self._pullers: dict[str, Callable[[str], Any]] = {}
        self.failures: list[Failure] = []
        self.values: dict[str, Any] = {}  # last published value of each context
        # called with (context, value) on every publication (a ROS 2 node forwards them to topics)
        self.observers: list[Callable[[str, Any], None]] = []
        self._bind()

    # -- wiring --------------------------------------------------------------------------------
    def devices_of(self, device_type: str) -> list[AbstractDevice]:
        """Instances of a device type or of any type that extends it (deployment order)."""
        specs = self.tables.devices
        return [d for d in self.devices if device_type in specs[d.DEVICE].lineage]

    def device(self, device_id: str) -> AbstractDevice:
        for candidate in self.devices:
            if candidate.device_id == device_id:
                return candidate
        raise KeyError(f"no device '{device_id}' in the deployment")

    def _bind(self) -> None:
        missing = []
        for name, spec in self.tables.contexts.items():
            component = self.components.get(name)
            if component is None:
                missing.append(f"context {name}: no implementation")
                continue
            for contract in spec.contracts:
                if not callable(getattr(component, contract.method, None)):
                    missing.append(f"{name}.{contract.method} ({contract.text})")
        for name, spec in self.tables.controllers.items():
            component = self.components.get(name)
            if component is None:
                missing.append(f"controller {name}: no implementation")
                continue
            for reaction in spec.reactions:
                if not callable(getattr(component, reaction.method, None)):
                    missing.append(f"{name}.{reaction.method} ({reaction.text})")
        ids = set()
        for device in self.devices:
            if device.DEVICE not in self.tables.devices:
                missing.append(f"device {device.device_id}: unknown type {device.DEVICE}")
            if device.device_id in ids:
                missing.append(f"device id '{device.device_id}' used twice")
            ids.add(device.device_id)
        if missing:
            raise BindError("the app does not match its design: " + "; ".join(missing))
        for device in self.devices:
            device._runtime = self
            device._routes = {}
        for name, spec in self.tables.contexts.items():
            for contract in spec.contracts:
                handler = self._context_handler(name, spec, contract)
                if contract.kind == "source":
                    for device in self.devices_of(contract.device):
                        device._routes.setdefault(contract.source, []).append(handler)
                elif contract.kind == "context":
                    self._context_routes.setdefault(contract.context, []).append(handler)
                elif contract.kind == "required":
                    self._pullers[name] = handler
                else:
                    self._add_timer(contract.period_ms, handler)
        for name, spec in self.tables.controllers.items():
            for reaction in spec.reactions:
                self._context_routes.setdefault(reaction.context, []).append(
                    self._controller_handler(name, reaction)
                )

    def _add_timer(self, period_ms: float, handler: Callable[[Any], None]) -> None:
        self._seq += 1
        heapq.heappush(self._timers, _Timer(self.clock.now() + period_ms, self._seq, period_ms, handler))

    def _get_members(self, component: str, gets: tuple[GetSpec, ...]) -> dict[str, Callable[..., Any]]:
        members: dict[str, Callable[..., Any]] = {}
        for get in gets:
            if get.context:
                members[get.member] = self._make_pull(component, get.context)
            else:
                members[get.member] = self._make_read(get.device, get.source)
        return members

    def _make_pull(self, component: str, context: str) -> Callable[[Discover], Any]:
        def bound(discover: Discover) -> Callable[[], Any]:
            def pull() -> Any:
                discover._check_open()
                if self._trace:
                    self._emit_trace(f"pull {context} by {component}")
                return self._pullers[context](None)

            return pull

        return bound

    def _make_read(self, device_type: str, source: str) -> Callable[[Discover], Any]:
        def bound(discover: Discover) -> Callable[..., tuple[Event, ...]]:
            known = self.tables.devices[device_type].attributes

            def read(**attributes: Any) -> tuple[Event, ...]:
                discover._check_open()
                unknown = [name for name in attributes if name not in known]
                if unknown:
                    raise ContractViolation(
                        f"{discover._where}: {device_type} has no attribute '{unknown[0]}' "
                        f"(it has: {', '.join(known) or 'none'})"
                    )
                readings: list[Event] = []
                for device in self.devices_of(device_type):
                    if all(getattr(device, k, None) == v for k, v in attributes.items()):
                        readings.extend(device.sample(source))
                if self._trace:
                    self._emit_trace(f"pull {device_type}.{source} -> {len(readings)} reading(s)")
                return tuple(readings)

            return read

        return bound

    def _context_handler(self, name: str, spec: ContextSpec, contract: ContractSpec) -> Callable[[Any], Any]:
        method = getattr(self.components[name], contract.method)
        members = self._get_members(name, contract.gets)
        where = f"{name}.{contract.method} ({contract.text})"
        routes = self._context_routes
        queue = self._queue
        emission = contract.emission
        kind = contract.kind

        def run(argument: Any) -> Any:
            discover = Discover(members, where)
            try:
                if kind == "source" or kind == "context":
                    if self._trace:
                        self._emit_trace(f"deliver {argument!r} -> {name}.{contract.method}")
                    result = method(argument, discover)
                elif kind == "periodic":
                    if self._trace:
                        self._emit_trace(f"tick {contract.period_ms:g} ms -> {name}.{contract.method}")
                    if contract.source:
                        result = method(self._sample(contract), discover)
                    else:
                        result = method(discover)
                else:
                    result = method(discover)
            except ContractViolation:
                raise
            except Exception as error:  # a user bug must not stop the robot's other components
                log.error("%s raised %s: %s", where, type(error).__name__, error)
                self.failures.append(Failure(name, contract.text, error))
                return None
            finally:
                discover._open = False
            if kind == "required":
                if result is None:
                    raise ContractViolation(f"{where}: returned None; 'when required' must return a value")
                return result
            if result is None:
                if emission == "always":
                    raise ContractViolation(f"{where}: returned None but the contract says 'always publish'")
                return None
            if emission == "no":
                raise ContractViolation(f"{where}: returned a value but the contract says 'no publish'")
            if spec.indexed and not isinstance(result, Mapping):
                raise ContractViolation(f"{where}: {name} is indexed, so it must return a {{key: value}} mapping")
            self.values[name] = result
            for observer in self.observers:
                observer(name, result)
            if self._trace:
                self._emit_trace(f"publish {name} = {result!r}")
            for handler in routes.get(name, ()):
                queue.append((handler, result))
            return None

        return run

    def _sample(self, contract: ContractSpec) -> Any:
        readings: list[Event] = []
        for device in self.devices_of(contract.device):
            readings.extend(device.sample(contract.source))
        if not contract.grouped_by:
            return tuple(readings)
        groups: dict[Any, list[Event]] = {}
        for event in readings:
            groups.setdefault(getattr(event.sender, contract.grouped_by), []).append(event)
        return {key: tuple(events) for key, events in groups.items()}

    def _controller_handler(self, name: str, reaction: ReactionSpec) -> Callable[[Any], None]:
        component = self.components[name]
        method = getattr(component, reaction.method)
        where = f"{name}.{reaction.method} ({reaction.text})"
        orders = reaction.orders

        def member_for(order: OrderSpec) -> Callable[[Discover], Selection]:
            return lambda discover: Selection(discover, self, order, self.devices_of(order.device), name)

        members: dict[str, Callable[[Discover], Any]] = {}
        for order in orders:
            if order.member in members:
                # one device ordered several actions: one selection allowing all their methods
                previous = next(o for o in orders if o.member == order.member)
                merged = OrderSpec(
                    previous.action + "+" + order.action, order.device, order.member,
                    tuple(dict.fromkeys(previous.methods + order.methods)),
                )
                members[order.member] = member_for(merged)
            else:
                members[order.member] = member_for(order)

        def run(value: Any) -> None:
            discover = Discover(members, where)
            if self._trace:
                self._emit_trace(f"deliver {value!r} -> {name}.{reaction.method}")
            self._current_controller = name
            try:
                method(value, discover)
            except ContractViolation:
                raise
            except Exception as error:
                log.error("%s raised %s: %s", where, type(error).__name__, error)
                self.failures.append(Failure(name, reaction.text, error))
            finally:
                discover._open = False
                self._current_controller = ""

        return run

    # -- driving -------------------------------------------------------------------------------
    def run_until_idle(self) -> int:
        """Deliver every queued event (each callback runs to completion). Returns how many ran."""
        if self._dispatching:
            return 0
        self._dispatching = True
        ran = 0
        queue = self._queue
        pop = queue.popleft
        try:
            while queue:
                handler, argument = pop()
                handler(argument)
                ran += 1
        finally:
            self._dispatching = False
        return ran

    def advance(self, milliseconds: float) -> None:
        """Move a virtual clock forward, firing every periodic contract that falls due on the way."""
        clock = self.clock
        if not isinstance(clock, VirtualClock):
            raise TypeError("advance() needs a VirtualClock; a real clock moves by itself")
        end = clock.now_ms + milliseconds
        while self._timers and self._timers[0].due_ms <= end:
            timer = heapq.heappop(self._timers)
            clock.now_ms = timer.due_ms
            self._fire(timer)
        clock.now_ms = end

    def _fire(self, timer: _Timer) -> None:
        self._queue.append((timer.handler, None))
        self.run_until_idle()
        timer.due_ms += timer.period_ms
        self._seq += 1
        timer.seq = self._seq
        heapq.heappush(self._timers, timer)

    def poll(self) -> int:
        """Fire the periodic contracts due now (for a host loop that owns the timing, e.g. ROS 2)."""
        fired = 0
        now = self.clock.now()
        while self._timers and self._timers[0].due_ms <= now:
            self._fire(heapq.heappop(self._timers))
            fired += 1
        return fired

    def run_for(self, seconds: float) -> None:
        """Run periodic contracts in real time for a while (a robot's main loop)."""
        deadline = self.clock.now() + seconds * 1000.0
        while True:
            now = self.clock.now()
            if now >= deadline:
                return
            if self._timers and self._timers[0].due_ms <= now:
                self._fire(heapq.heappop(self._timers))
                continue
            next_due = self._timers[0].due_ms if self._timers else deadline
            time.sleep(max(0.0, min(next_due, deadline) - now) / 1000.0)

    def _emit_trace(self, line: str) -> None:
        assert self._trace is not None
        self._trace(f"[{self.clock.now():10.1f} ms] {line}")


# ---- deployment and assembly -----------------------------------------------------------------
class ArrayOf:
    """Converter of an array attribute: `dims` levels of tuples of `item`."""

    def __init__(self, item: Any, dims: int) -> None:
        self.item = item
        self.dims = dims

    def __call__(self, value: Any) -> tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        inner = self.item if self.dims == 1 else ArrayOf(self.item, self.dims - 1)
        return tuple(_convert(inner, v) for v in value)


def _convert(kind: Any, value: Any) -> Any:
    import dataclasses
    import enum

    if isinstance(kind, ArrayOf):
        return kind(value)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        if isinstance(value, kind):
            return value
        try:
            return kind[value]
        except KeyError:
            raise ValueError(f"{value!r} is not one of {', '.join(m.name for m in kind)}") from None
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a table of {kind.__name__} fields, got {value!r}")
        hints = {f.name: f for f in dataclasses.fields(kind)}
        unknown = set(value) - set(hints)
        if unknown:
            raise ValueError(f"{kind.__name__} has no field {', '.join(sorted(unknown))}")
        return kind(**value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if kind in (int, str, bool) and type(value) is not kind:
        raise ValueError(f"expected {kind.__name__}, got {value!r}")
    if kind is bytes and isinstance(value, str):
        return value.encode()
    return value


def load_deployment(path: Any, classes: Mapping[str, type], tables: DesignTables) -> list[AbstractDevice]:
    """Device instances from a TOML deployment file (`[[device]]` tables: id, type, attributes)."""
    import tomllib
    from pathlib import Path

    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise BindError(f"{where}: cannot read the deployment: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise BindError(f"{where}: not a valid TOML deployment: {error}") from None
    entries = data.get("device", [])
    if not isinstance(entries, list):
        raise BindError(f"{where}: 'device' must be an array of tables ([[device]])")
    devices: list[AbstractDevice] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise BindError(f"{where}: device #{number} is not a table")
        entry = dict(entry)
        device_id = entry.pop("id", None)
        device_type = entry.pop("type", None)
        label = f"{where}: device #{number}" + (f" '{device_id}'" if device_id else "")
        if not isinstance(device_id, str) or not device_id:
            raise BindError(f"{label}: needs an id = \"...\"")
        if device_id in seen:
            raise BindError(f"{label}: id used twice")
        seen.add(device_id)
        if device_type not in classes:
            import difflib

            close = difflib.get_close_matches(str(device_type), list(classes), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise BindError(f"{label}: unknown device type {device_type!r}{hint}")
        cls = classes[device_type]
        spec = tables.devices[device_type]
        by_design_name = {design: py for py, design in spec.attributes.items()}
        kwargs: dict[str, Any] = {}
        for key, value in entry.items():
            py = key if key in spec.attributes else by_design_name.get(key)
            if py is None:
                raise BindError(f"{label}: {device_type} has no attribute '{key}' (it has: {', '.join(spec.attributes.values()) or 'none'})")
            try:
                kwargs[py] = _convert(cls._ATTRIBUTE_TYPES[py], value)  # type: ignore[attr-defined]
            except (ValueError, TypeError) as error:
                raise BindError(f"{label}: attribute '{key}': {error}") from None
        missing = [spec.attributes[a] for a in spec.attributes if a not in kwargs]
        if missing:
            raise BindError(f"{label}: missing attribute(s) {', '.join(missing)}")
        devices.append(cls(device_id, **kwargs))
    return devices


def assemble(
    package: str,
    tables: DesignTables,
    component_modules: Mapping[str, tuple[str, str]],
    device_modules: Mapping[str, tuple[str, str]],
    simulated: Mapping[str, type],
    deployment: Any = None,
    *,
    simulate: bool = True,
    clock: Any = None,
    trace: Callable[[str], None] | None = None,
) -> Runtime:
    """Import the user's classes, read the deployment, wire everything."""
    import importlib
    from pathlib import Path

    root = importlib.import_module(package)
    if deployment is None:
        deployment = Path(root.__file__).parent / "deployment.toml"  # type: ignore[arg-type]
    components: dict[str, Any] = {}
    for name, (module, class_name) in component_modules.items():
        try:
            cls = getattr(importlib.import_module(f"{package}.components.{module}"), class_name)
        except (ImportError, AttributeError) as error:
            raise BindError(f"{package}.components.{module}: no class {class_name} ({error})") from None
        try:
            components[name] = cls()
        except TypeError as error:  # abstract methods left unimplemented
            raise BindError(f"{package}.components.{module}: {error}") from None
    if simulate:
        classes = dict(simulated)
    else:
        classes = {}
        for name, (module, class_name) in device_modules.items():
            try:
                classes[name] = getattr(importlib.import_module(f"{package}.devices.{module}"), class_name)
            except (ImportError, AttributeError) as error:
                raise BindError(f"{package}.devices.{module}: no driver class {class_name} ({error})") from None
    devices = load_deployment(deployment, classes, tables)
    return Runtime(tables, components, devices, clock=clock, trace=trace)


def main(build: Callable[..., Runtime], package: str, argv: list[str] | None = None) -> int:
    """`python -m <app>`: run on simulated devices (default) or drivers, optionally traced."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog=f"python -m {package}")
    parser.add_argument("--deployment", help="deployment TOML file (default: the package's deployment.toml)")
    parser.add_argument("--hardware", action="store_true", help="use the drivers in devices/ instead of simulations")
    parser.add_argument("--trace", action="store_true", help="print one line per publish, delivery, pull and order")
    parser.add_argument("--seconds", type=float, default=1.0, help="how long to run (default 1)")
    parser.add_argument("--realtime", action="store_true", help="run on the wall clock instead of a virtual one")
    args = parser.parse_args(argv)
    trace = (lambda line: print(line, flush=True)) if args.trace else None
    try:
        clock = MonotonicClock() if args.realtime else VirtualClock()
        app = build(package, args.deployment, simulate=not args.hardware, clock=clock, trace=trace)
        if args.realtime:
            app.run_for(args.seconds)
        else:
            app.advance(args.seconds * 1000.0)
    except (BindError, ContractViolation) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    for device in app.devices:
        orders = getattr(device, "orders", None)
        if orders:
            print(f"{device}: {len(orders)} order(s), last {orders[-1].method}{orders[-1].args!r}")
    for failure in app.failures:
        print(f"failure: {failure.component} ({failure.contract}): {failure.error!r}", file=sys.stderr)
    return 1 if app.failures else 0
