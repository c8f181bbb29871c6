"""The runtime every generated Python app ships (copied as framework/_runtime.py): static wiring
from the design, one deterministic event queue, push/pull/periodic delivery, discover objects
limited to each contract, device selection by attributes, a virtual clock and a trace mode.

It imports nothing from diaspec so a generated app runs on a robot without the compiler.
"""
from __future__ import annotations

import heapq
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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
    """A reading: `value`, `index` (dict of index name -> key), the `sender` device and `time_ms`,
    when it was published (runtime clock, milliseconds)."""

    __slots__ = ("value", "index", "sender", "source", "time_ms")

    def __init__(self, value: Any, index: Mapping[str, Any], sender: "AbstractDevice", source: str,
                 time_ms: float = 0.0) -> None:
        self.value = value
        self.index = index
        self.sender = sender
        self.source = source
        self.time_ms = time_ms

    def __repr__(self) -> str:
        index = "".join(f", {k}={v!r}" for k, v in self.index.items())
        return f"Event({self.sender.device_id}.{self.source}={self.value!r}{index})"


class RecordedOrder(NamedTuple):
    """An order a simulated device received (a tuple: a simulation records many)."""

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


class Sustained:
    """A duration condition without counting ticks: `update(condition, now_ms)` is True once the
    condition has held, without a break, for at least `duration_ms` (e.g. "blocked for 5 s")."""

    __slots__ = ("duration_ms", "since_ms")

    def __init__(self, duration_ms: float) -> None:
        self.duration_ms = duration_ms
        self.since_ms: float | None = None

    def update(self, condition: bool, now_ms: float) -> bool:
        if not condition:
            self.since_ms = None
            return False
        if self.since_ms is None:
            self.since_ms = now_ms
        return now_ms - self.since_ms >= self.duration_ms

    def held_ms(self, now_ms: float) -> float:
        """How long the condition has held (0 when it does not)."""
        return 0.0 if self.since_ms is None else now_ms - self.since_ms


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
        runtime = self._runtime
        event = Event(value, index, self, source, runtime.clock.now() if runtime is not None else 0.0)
        self._last.setdefault(source, {})[tuple(index.values())] = event
        if runtime is None:
            return
        if runtime._trace:
            runtime._emit_trace(f"publish {self}.{source} = {show(value)}" + _index_text(index))
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
            if value is None:
                return []
            last = self._last.get(source, {}).get(())
            if last is not None and last.value is value:
                return [last]
            runtime = self._runtime
            return [Event(value, {}, self, source, runtime.clock.now() if runtime is not None else 0.0)]
        return list(self._last.get(source, {}).values())


class SimulatedDevice:
    """Mixin of the generated Sim<Device> classes: actions are recorded, tests push readings."""

    def _record(self, action: str, method: str, *args: Any) -> None:
        runtime = self._runtime  # type: ignore[attr-defined]
        if runtime is None:
            record = RecordedOrder(method, args, action, "", 0.0)
        else:
            record = RecordedOrder(method, args, action, runtime._current_controller, runtime.clock.now())
        orders = self.__dict__.get("orders")
        if orders is None:
            orders = self.__dict__["orders"] = []
        orders.append(record)

    @property
    def orders(self) -> list[RecordedOrder]:
        return self.__dict__.setdefault("orders", [])

    def order_names(self) -> list[str]:
        return [o.method for o in self.orders]

    def clear_orders(self) -> None:
        self.orders.clear()


def _index_text(index: Mapping[str, Any]) -> str:
    return "".join(f" {k}={show(v, bare=True)}" for k, v in index.items())


def show(value: Any, bare: bool = False) -> str:
    """A value as every target's trace writes it (the Python, C and ROS 2 runtimes print the same
    line for the same event): floats with 6 significant digits, enumerations as `Type.VALUE`
    (`VALUE` when `bare`), structures as `Type(field=value)`, arrays as `[a, b]`."""
    import dataclasses
    import enum

    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.name if bare else f"{type(value).__name__}.{value.name}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = format(value, ".6g")
        return text if any(c in text for c in ".enai") else text + ".0"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (bytes, bytearray)):
        return "b'" + bytes(value).hex() + "'"
    if isinstance(value, Event):
        return f"{value.sender.device_id}.{value.source} = {show(value.value)}{_index_text(value.index)}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ", ".join(f"{f.name}={show(getattr(value, f.name))}" for f in dataclasses.fields(value))
        return f"{type(value).__name__}({fields})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{show(k, bare=True)}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value)


# ---- discover ------------------------------------------------------------------------------
class Discover:
    """What one activation may use: its data requirements, or the orders its contract allows,
    and `now()`, the runtime clock in milliseconds (virtual in simulation, ROS time in a node)."""

    __slots__ = ("_open", "_members", "_where", "_clock")

    def __init__(self, members: Mapping[str, Callable[..., Any]], where: str, clock: Any = None) -> None:
        self._open = True
        self._members = members
        self._where = where
        self._clock = clock

    def now(self) -> float:
        """The runtime clock, in milliseconds."""
        self._check_open()
        return self._clock.now() if self._clock is not None else 0.0

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

        discover, runtime, devices, controller = self._discover, self._runtime, self._devices, self._controller

        def order(*args: Any) -> None:
            if not discover._open:
                discover._check_open()
            for device in devices:
                if runtime._trace:
                    shown = ", ".join(show(a) for a in args)
                    runtime._emit_trace(f"order {device}.{method}({shown}) by {controller}")
                getattr(device, method)(*args)

        return order


# ---- the runtime ---------------------------------------------------------------------------
@dataclass(order=True)
class _Timer:
    due_ms: float
    seq: int
    period_ms: float = field(compare=False)
    handler: Callable[[Any], Any] = field(compare=False)


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
        self._pullers: dict[str, Callable[[Any], Any]] = {}
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
        for name, controller in self.tables.controllers.items():
            component = self.components.get(name)
            if component is None:
                missing.append(f"controller {name}: no implementation")
                continue
            for reaction in controller.reactions:
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
        for name, controller in self.tables.controllers.items():
            for reaction in controller.reactions:
                self._context_routes.setdefault(reaction.context, []).append(
                    self._controller_handler(name, reaction)
                )

    def _add_timer(self, period_ms: float, handler: Callable[[Any], Any]) -> None:
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
            discover = Discover(members, where, self.clock)
            try:
                if kind == "source" or kind == "context":
                    if self._trace:
                        self._emit_trace(f"deliver {show(argument)} -> {name}.{contract.method}")
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
                self._emit_trace(f"publish {name} = {show(result)}")
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
            discover = Discover(members, where, self.clock)
            if self._trace:
                self._emit_trace(f"deliver {show(value)} -> {name}.{reaction.method}")
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
        # ties keep the design's order (seq is fixed at binding), as the C runtime's table does
        heapq.heappush(self._timers, timer)

    def hand_over_periodic(self) -> list[tuple[float, Callable[[], None]]]:
        """The periodic contracts as (period in ms, fire) pairs, for a host that owns timing (a
        ROS 2 node's timers on ROS time, use_sim_time included); the runtime no longer fires them."""
        timers = sorted(self._timers, key=lambda t: t.seq)
        self._timers = []

        def fire(handler: Callable[[Any], Any]) -> Callable[[], None]:
            def run() -> None:
                self._queue.append((handler, None))
                self.run_until_idle()

            return run

        return [(timer.period_ms, fire(timer.handler)) for timer in timers]

    def play(self, scenario: Scenario, seconds: float | None = None) -> None:
        """Run a scenario on the virtual clock: each reading at its time (periodic contracts due
        at the same time run first), then on to the end."""
        clock = self.clock
        end = clock.now() + (scenario.seconds if seconds is None else seconds) * 1000.0
        for step in scenario.steps:
            if step.time_ms > end:
                break
            if step.time_ms > clock.now():
                self.advance(step.time_ms - clock.now())
            self.device(step.device)._publish(step.source, step.value, step.index)
        if end > clock.now():
            self.advance(end - clock.now())

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
        return tuple(convert(inner, v) for v in value)


def convert(kind: Any, value: Any) -> Any:
    """A value read from TOML (deployment attribute, scenario reading) as the design's type."""
    import dataclasses
    import enum
    import typing

    if isinstance(kind, ArrayOf):
        return kind(value)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        if isinstance(value, kind):
            return value
        try:
            return kind[value]
        except KeyError:
            raise ValueError(f"{value!r} is not one of {', '.join(m.name for m in kind)}") from None
    if typing.get_origin(kind) is tuple:  # a field typed tuple[T, ...]
        return ArrayOf(typing.get_args(kind)[0], 1)(value)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a table of {kind.__name__} fields, got {value!r}")
        hints = typing.get_type_hints(kind)
        unknown = set(value) - set(hints)
        if unknown:
            raise ValueError(f"{kind.__name__} has no field {', '.join(sorted(unknown))}")
        missing = [name for name in hints if name not in value]
        if missing:
            raise ValueError(f"{kind.__name__} needs {', '.join(missing)}")
        converted = {}
        for name, item in value.items():
            try:
                converted[name] = convert(hints[name], item)
            except ValueError as error:
                raise ValueError(f"{kind.__name__}.{name}: {error}") from None
        return kind(**converted)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if kind in (int, str, bool) and type(value) is not kind:
        raise ValueError(f"expected {kind.__name__}, got {value!r}")
    if kind is bytes and isinstance(value, str):
        return value.encode()
    return value


def read_toml(path: Any, what: str) -> dict[str, Any]:
    """A TOML file as data (tomllib on Python 3.11+, tomli on 3.10, ROS 2 Humble's Python)."""
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib as toml
    else:  # Python 3.10 (ROS 2 Humble): the same parser, from PyPI or python3-tomli
        import tomli as toml
    where = str(path)
    try:
        return toml.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise BindError(f"{where}: cannot read the {what}: {error.strerror or error}") from None
    except (toml.TOMLDecodeError, UnicodeDecodeError) as error:
        raise BindError(f"{where}: not a valid TOML {what}: {error}") from None


def load_deployment(path: Any, classes: Mapping[str, type], tables: DesignTables) -> list[AbstractDevice]:
    """Device instances from a TOML deployment file (`[[device]]` tables: id, type, attributes)."""
    where = str(path)
    data = read_toml(path, "deployment")
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
        entry.pop("ros", None)  # ROS 2 bindings: the node's bridge reads them
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
                kwargs[py] = convert(cls._ATTRIBUTE_TYPES[py], value)  # type: ignore[attr-defined]
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


# ---- scripted simulation -------------------------------------------------------------------
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0}


def duration_ms(value: Any, where: str) -> float:
    """`"100 ms"`, `"2.5 s"`, `"1 min"` or a number of milliseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        amount, _, unit = value.strip().partition(" ")
        try:
            if unit.strip() in _UNIT_MS:
                return float(amount) * _UNIT_MS[unit.strip()]
        except ValueError:
            pass
    raise BindError(f"{where}: {value!r} is not a duration (write e.g. \"100 ms\", \"2.5 s\", \"1 min\")")


@dataclass(frozen=True)
class Step:
    """One reading a scenario publishes: at `time_ms`, on device `device` (its id)."""

    time_ms: float
    device: str
    source: str  # python name of the source
    index: Mapping[str, Any]
    value: Any


@dataclass(frozen=True)
class Scenario:
    """What the simulated devices do over virtual time, as a timeline of readings."""

    seconds: float
    steps: tuple[Step, ...]


class _Signal:
    """Value of a `[[signal]]` at a time: constant, piecewise-linear ramp, plus seeded noise."""

    def __init__(self, entry: Mapping[str, Any], where: str, seed: str) -> None:
        import random

        self.where = where
        if ("value" in entry) == ("ramp" in entry):
            raise BindError(f"{where}: give either value = ... or ramp = [[time, value], ...]")
        self.constant = entry.get("value")
        self.ramp = []
        for point in entry.get("ramp", []):
            if not (isinstance(point, list) and len(point) == 2):
                raise BindError(f"{where}: a ramp point is [time, value], got {point!r}")
            self.ramp.append((duration_ms(point[0], where), point[1]))
        self.ramp.sort(key=lambda p: p[0])
        self.noise = float(entry.get("noise", 0.0))
        self.decimals = int(entry.get("round", 4))
        self.random = random.Random(seed)  # a string seed: the same numbers on every machine

    def at(self, time_ms: float) -> Any:
        if self.ramp:
            value = self._ramp(time_ms)
        else:
            value = self.constant
        if self.noise and isinstance(value, (int, float)) and not isinstance(value, bool):
            noisy = value + self.random.gauss(0.0, self.noise)
            value = round(noisy) if isinstance(value, int) else noisy
        if isinstance(value, float):
            value = round(value, self.decimals)
        return value

    def _ramp(self, time_ms: float) -> Any:
        first_time, first = self.ramp[0]
        if time_ms <= first_time:
            return first
        for (t0, v0), (t1, v1) in zip(self.ramp, self.ramp[1:]):
            if time_ms <= t1:
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (v0, v1)):
                    return v0  # a ramp of non-numbers steps from point to point
                fraction = (time_ms - t0) / (t1 - t0) if t1 > t0 else 1.0
                return v0 + (v1 - v0) * fraction
        return self.ramp[-1][1]


def load_scenario(path: Any, runtime: Runtime) -> Scenario:
    """A scenario file (TOML: `seconds`, `seed`, `[[signal]]` and `[[event]]` tables) checked
    against the deployed devices and turned into a timeline of readings."""
    where = str(path)
    data = read_toml(path, "scenario")
    seconds = float(data.get("seconds", 1.0))
    seed = data.get("seed", 0)
    end_ms = seconds * 1000.0
    steps: list[tuple[float, int, Step]] = []
    order = 0

    def target(entry: Mapping[str, Any], label: str) -> tuple[AbstractDevice, str, dict[str, Any], Any]:
        device_id = entry.get("device")
        ids = [d.device_id for d in runtime.devices]
        if device_id not in ids:
            import difflib

            close = difflib.get_close_matches(str(device_id), ids, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"it has: {', '.join(ids) or 'none'}"
            raise BindError(f"{label}: device {device_id!r} is not in the deployment ({hint})")
        device = runtime.device(device_id)
        sources = type(device)._SOURCES  # type: ignore[attr-defined]
        source = str(entry.get("source", ""))
        python_name = source if source in sources else next(
            (name for name in sources if name.replace("_", "") == source.replace("_", "").lower()), None)
        if python_name is None:
            raise BindError(f"{label}: {device.DEVICE} has no source {source!r} (it has: {', '.join(sources) or 'none'})")
        spec = sources[python_name]
        given = entry.get("index", {})
        if not isinstance(given, Mapping) or set(given) != set(spec.index):
            wanted = ", ".join(f"{name} = ..." for name in spec.index) or "nothing"
            raise BindError(f"{label}: {source} is indexed by {wanted}; write index = {{ {wanted} }}")
        index_types = type(device)._INDEX_TYPES.get(python_name, {})  # type: ignore[attr-defined]
        try:
            index = {name: convert(index_types.get(name, object), given[name]) for name in spec.index}
        except (ValueError, TypeError) as error:
            raise BindError(f"{label}: index: {error}") from None
        return device, python_name, index, type(device)._SOURCE_TYPES.get(python_name, object)  # type: ignore[attr-defined]

    def typed(kind: Any, value: Any, label: str) -> Any:
        try:
            return convert(kind, value)
        except (ValueError, TypeError) as error:
            raise BindError(f"{label}: value: {error}") from None

    for number, entry in enumerate(data.get("signal", []), 1):
        label = f"{where}: signal #{number}"
        device, source, index, kind = target(entry, label)
        signal = _Signal(entry, label, f"{seed}:signal:{number}")
        every = duration_ms(entry.get("every", "1 s"), label)
        if every <= 0:
            raise BindError(f"{label}: every must be more than 0")
        time_ms = duration_ms(entry.get("start", 0), label)
        stop = min(duration_ms(entry.get("stop", end_ms), label), end_ms)
        while time_ms <= stop:
            steps.append((time_ms, order, Step(time_ms, device.device_id, source, index, typed(kind, signal.at(time_ms), label))))
            order += 1
            time_ms += every
    for number, entry in enumerate(data.get("event", []), 1):
        label = f"{where}: event #{number}"
        device, source, index, kind = target(entry, label)
        if "value" not in entry:
            raise BindError(f"{label}: needs value = ...")
        time_ms = duration_ms(entry.get("at", 0), label)
        steps.append((time_ms, order, Step(time_ms, device.device_id, source, index, typed(kind, entry["value"], label))))
        order += 1
    steps.sort(key=lambda s: (s[0], s[1]))
    return Scenario(seconds, tuple(step for _, _, step in steps))


def main(build: Callable[..., Runtime], package: str, argv: list[str] | None = None) -> int:
    """`python -m <app>`: run on simulated devices (default, playing the package's scenario.toml)
    or drivers, optionally traced."""
    import argparse
    import importlib
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(prog=f"python -m {package}")
    parser.add_argument("--deployment", help="deployment TOML file (default: the package's deployment.toml)")
    parser.add_argument("--scenario", help="scenario TOML file (default: the package's scenario.toml, if any)")
    parser.add_argument("--hardware", action="store_true", help="use the drivers in devices/ instead of simulations")
    parser.add_argument("--trace", action="store_true", help="print one line per publish, delivery, pull and order")
    parser.add_argument("--seconds", type=float, help="how long to run (default: the scenario's, or 1)")
    parser.add_argument("--realtime", action="store_true", help="run on the wall clock instead of a virtual one")
    args = parser.parse_args(argv)
    trace = (lambda line: print(line, flush=True)) if args.trace else None
    scenario_file = args.scenario
    if scenario_file is None and not args.hardware and not args.realtime:
        default = Path(importlib.import_module(package).__file__).parent / "scenario.toml"  # type: ignore[arg-type]
        scenario_file = default if default.exists() else None
    try:
        clock = MonotonicClock() if args.realtime else VirtualClock()
        app = build(package, args.deployment, simulate=not args.hardware, clock=clock, trace=trace)
        if args.realtime:
            app.run_for(args.seconds or 1.0)
        elif scenario_file is not None:
            app.play(load_scenario(scenario_file, app), args.seconds)
        else:
            app.advance((args.seconds or 1.0) * 1000.0)
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
