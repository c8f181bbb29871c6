"""The ROS 2 side of a generated app, without rclpy (copied into the node package as bridge.py):
a device bound to a topic in the deployment gets its readings from a subscription and sends its
orders as messages; design values become ROS messages field by field (arrays of structures as lists
of message objects, which rosidl's setters require).

Bindings (`[[device.ros]]` tables of a deployment device):
    source = "distance"  topic = "ring/front"  type = "sensor_msgs/msg/Range"
        [field = "range"]  [fields = { design_field = "msg.path", ... }]  [index = { position = "FRONT" }]
    action = "Drive"  topic = "cmd_vel"  type = "geometry_msgs/msg/Twist"
        [methods = { setVelocity = { "linear.x" = "v.linear", "angular.z" = "v.angular" }, stop = {} }]
A method without a mapping sends its only structure parameter field by field, or nothing (zeros).
"""
from __future__ import annotations

import dataclasses
import enum
import importlib
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_SEQUENCE = re.compile(r"sequence<([\w/]+)(?:, \d+)?>|([\w/]+)\[\d*\]")


@dataclass(frozen=True)
class SourceBinding:
    device: str  # device id
    source: str  # python name of the source
    topic: str
    message: str  # e.g. sensor_msgs/msg/Range
    field: str = ""  # the message field (dotted path) a primitive reading comes from
    fields: Mapping[str, str] = dataclasses.field(default_factory=dict)  # structure field -> message path
    index: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class ActionBinding:
    device: str
    action: str
    topic: str  # the topic, the service's or the action server's name
    message: str  # the message type, the service type or the action type
    methods: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)  # method -> {msg path: param path}
    # "topic"; "service": each order is a request; "action_server": each order is a goal (both
    # sent without waiting: an order has no reply, the executor handles responses)
    kind: str = "topic"


def message_class(name: str) -> type:
    """`sensor_msgs/msg/Range` -> the rosidl Python class sensor_msgs.msg.Range."""
    package, kind, type_name = name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), type_name)


def _snake(name: str) -> str:
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text).lower()


def read_bindings(deployment: Mapping[str, Any], reading_fields: Mapping[str, str]) -> tuple[list[SourceBinding], list[ActionBinding]]:
    """The bindings of a deployment (already read as TOML data); `reading_fields` gives the field a
    message type's reading comes from when a binding names none (diaspec's message table)."""
    sources: list[SourceBinding] = []
    actions: list[ActionBinding] = []
    for entry in deployment.get("device", []):
        for binding in entry.get("ros", []):
            common = {"device": entry["id"], "message": binding["type"],
                      "topic": binding.get("topic") or binding.get("service") or binding.get("action_server")}
            if "source" in binding:
                field = binding.get("field") or reading_fields.get(binding["type"], "")
                sources.append(SourceBinding(source=_snake(binding["source"]), field=field,
                                             fields=dict(binding.get("fields", {})), index=dict(binding.get("index", {})),
                                             **common))
            else:
                methods = {_snake(m): dict(paths) for m, paths in binding.get("methods", {}).items()}
                kind = next((k for k in ("service", "action_server") if k in binding), "topic")
                actions.append(ActionBinding(action=binding["action"], methods=methods, kind=kind, **common))
    return sources, actions


def get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _set_path(msg: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        msg = getattr(msg, part)
    current = getattr(msg, last)
    setattr(msg, last, to_field(type(current), value, current))


def _element_class(msg_class: type, field: str) -> type | None:
    """The message class of the elements of an array field, from rosidl's own field table."""
    table = getattr(msg_class, "get_fields_and_field_types", None)
    if table is None:
        return None
    match = _SEQUENCE.fullmatch(table().get(field, ""))
    if match is None:
        return None
    name = match.group(1) or match.group(2)
    if "/" not in name:
        return None  # an array of a primitive type
    package, type_name = name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), type_name)


def to_field(kind: type, value: Any, current: Any = None) -> Any:
    """A design value as what a message field of type `kind` accepts."""
    if isinstance(value, enum.Enum):
        if hasattr(kind, "get_fields_and_field_types"):  # a generated enumeration message
            return kind(value=list(type(value)).index(value))
        return list(type(value)).index(value)
    if dataclasses.is_dataclass(value):
        return to_message(kind, value)
    if isinstance(value, tuple):
        return list(value)
    if kind is float and isinstance(value, int):
        return float(value)
    return value


def to_message(cls: type, value: Any) -> Any:
    """A design value (structure, enumeration or primitive) as a message of class `cls`; arrays of
    structures become lists of message objects."""
    if isinstance(value, enum.Enum):
        return cls(value=list(type(value)).index(value))
    if not dataclasses.is_dataclass(value):
        return cls(data=to_field(type(getattr(cls(), "data", None)), value))
    msg = cls()
    for f in dataclasses.fields(value):
        inner = getattr(value, f.name)
        if isinstance(inner, tuple) and inner and dataclasses.is_dataclass(inner[0]):
            element = _element_class(cls, f.name)
            setattr(msg, f.name, [to_message(element, item) for item in inner] if element else list(inner))
        else:
            current = getattr(msg, f.name)
            setattr(msg, f.name, to_field(type(current), inner, current))
    return msg


class RosBridge:
    """Connects an assembled app (a Runtime) to ROS topics, given factories from the node; rclpy
    itself stays in node.py, so this logic runs (and is tested) wherever the app does."""

    def __init__(self, app: Any, convert: Callable[[Any, Any], Any], sources: list[SourceBinding],
                 actions: list[ActionBinding], load_class: Callable[[str], type] = message_class) -> None:
        self.app = app
        self.convert = convert  # the generated runtime's converter (TOML/message data -> design types)
        self.sources = sources
        self.actions = actions
        self.load_class = load_class

    def subscriptions(self) -> list[tuple[str, type, Callable[[Any], None]]]:
        """(topic, message class, callback) for every bound source."""
        return [(b.topic, self.load_class(b.message), self._reader(b)) for b in self.sources]

    def _reader(self, binding: SourceBinding) -> Callable[[Any], None]:
        device = self.app.device(binding.device)
        spec = type(device)._SOURCES[binding.source]
        kind = type(device)._SOURCE_TYPES.get(binding.source, object)
        index_types = type(device)._INDEX_TYPES.get(binding.source, {})
        convert = self.convert
        index = {name: convert(index_types.get(name, object), binding.index[name]) for name in spec.index}

        def on_message(msg: Any) -> None:
            if binding.fields or dataclasses.is_dataclass(kind):
                names = [f.name for f in dataclasses.fields(kind)]
                value = convert(kind, {n: float32_digits(get_path(msg, binding.fields.get(n, n))) for n in names})
            else:
                value = convert(kind, float32_digits(get_path(msg, binding.field or "data")))
            device._publish(binding.source, value, index)

        return on_message

    def connect_orders(self, create_publisher: Callable[[str, type], Any],
                       create_client: Callable[[str, type], Any] | None = None,
                       create_action_client: Callable[[str, type], Any] | None = None) -> None:
        """Bind each bound action of a device instance to a publisher (an order the app gives to
        that device becomes a message on the topic), a service client (a request) or an action
        client (a goal)."""
        for binding in self.actions:
            device = self.app.device(binding.device)
            cls = self.load_class(binding.message)
            if binding.kind == "service":
                assert create_client is not None, "a service binding needs the node's create_client"
                publisher = _Requests(create_client(binding.topic, cls))
                cls = cls.Request
            elif binding.kind == "action_server":
                assert create_action_client is not None, "an action server binding needs an action client"
                publisher = _Goals(create_action_client(binding.topic, cls))
                cls = cls.Goal
            else:
                publisher = create_publisher(binding.topic, cls)
            spec = self.app.tables.devices[device.DEVICE]
            for method in spec.actions.get(binding.action, ()):
                setattr(device, method, self._sender(publisher, cls, method, binding, getattr(device, method)))

    @staticmethod
    def _sender(publisher: Any, cls: type, method: str, binding: ActionBinding, original: Callable[..., Any]):
        import inspect

        names = [p for p in inspect.signature(original).parameters]
        paths = binding.methods.get(method)

        def send(*args: Any) -> None:
            msg = cls()
            values = dict(zip(names, args))
            if paths is not None:
                for msg_path, param_path in paths.items():
                    head, _, rest = param_path.partition(".")
                    value = values[head]
                    _set_path(msg, msg_path, get_path(value, rest) if rest else value)
            elif len(args) == 1 and dataclasses.is_dataclass(args[0]):
                msg = to_message(cls, args[0])
            publisher.publish(msg)

        return send


class _Requests:
    """A service client seen as a publisher: each order is one request, sent asynchronously (an
    order has no reply; the executor handles the response)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def publish(self, request: Any) -> None:
        self.client.call_async(request)


class _Goals:
    """An action client seen as a publisher: each order is one goal, sent asynchronously (the
    executor receives the server's feedback and result; the app's order has no reply)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def publish(self, goal: Any) -> None:
        self.client.send_goal_async(goal)


def float32_digits(value: Any) -> Any:
    """A float read from a float32 message field, with the digits a float32 holds (2.87, not
    2.869999885559082), so the app sees what the sender wrote."""
    if not isinstance(value, float) or value != value:
        return value
    try:
        single = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return value
    if single != value:
        return value  # a float64 value
    for digits in range(1, 10):
        shorter = float(f"{value:.{digits}g}")
        if struct.unpack("f", struct.pack("f", shorter))[0] == single:
            return shorter
    return value
