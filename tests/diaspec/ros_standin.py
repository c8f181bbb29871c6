"""Stand-ins for what cannot exist on this machine (no ROS 2 here): rclpy (a node, its ROS clock on
virtual time, timers, subscriptions, publishers, an executor) and rosidl-generated message classes.
The message classes are built from diaspec's message table and the generated .msg files, and their
setters check values the way rosidl's do (a float field takes a float, a sequence of messages a
list of message objects), so what the generated node sends is checked, not trusted."""
from __future__ import annotations

import heapq
import sys
import types
from pathlib import Path
from typing import Any

_ROSIDL_NAMES = {"float32": "float", "float64": "double", "bool": "boolean", "byte": "octet"}
_DEFAULTS = {"bool": False, "string": "", "wstring": "", "float32": 0.0, "float64": 0.0}


def _check(field: str, ros_type: str, value: Any, resolve) -> None:
    """What rosidl's generated setters assert."""
    if ros_type.endswith("]"):
        item = ros_type[: ros_type.index("[")]
        assert isinstance(value, (list, tuple)) and not isinstance(value, str), f"{field}: expected a sequence, got {value!r}"
        for element in value:
            _check(field, item, element, resolve)
        return
    if "/" in ros_type:
        cls = resolve(ros_type)
        assert isinstance(value, cls), f"The '{field}' field must be a sub message of type '{cls.__name__}', got {value!r}"
    elif ros_type in ("float32", "float64"):
        assert isinstance(value, float), f"The '{field}' field must be of type 'float', got {value!r}"
    elif ros_type == "bool":
        assert isinstance(value, bool), f"The '{field}' field must be of type 'bool', got {value!r}"
    elif ros_type in ("string", "wstring"):
        assert isinstance(value, str), f"The '{field}' field must be of type 'str', got {value!r}"
    else:
        assert isinstance(value, int) and not isinstance(value, bool), f"The '{field}' field must be an integer, got {value!r}"


class StandInRos:
    """One ROS graph on virtual time: message types, nodes' timers, topics."""

    def __init__(self, table: dict[str, dict[str, Any]], msg_dirs: dict[str, Path] | None = None) -> None:
        self.fields: dict[str, dict[str, str]] = {name: dict(entry["fields"]) for name, entry in table.items()}
        for package, folder in (msg_dirs or {}).items():
            for path in folder.glob("*.msg"):
                fields = {}
                for line in path.read_text().splitlines():
                    if not line or line.startswith("#") or "=" in line:
                        continue
                    kind, name = line.split()
                    base = kind.split("[")[0]
                    if "/" not in base and base not in _DEFAULTS and not base.startswith(("int", "uint", "byte", "char")):
                        kind = f"{package}/msg/{kind}"  # a type of the same package
                    elif "/" in base and "/msg/" not in base:
                        kind = kind.replace("/", "/msg/", 1)
                    fields[name] = kind
                self.fields[f"{package}/msg/{path.stem}"] = fields
        self.classes: dict[str, type] = {}
        self.now_ns = 0
        self.timers: list[tuple[int, int, int, Any]] = []  # (due ns, order, period ns, callback)
        self.subscriptions: dict[str, list[Any]] = {}
        self.published: list[tuple[str, Any]] = []
        self.requests: list[tuple[str, Any]] = []
        self.goals: list[tuple[str, Any]] = []  # (action server, goal) sent by action clients
        self.log: list[str] = []

    # ---- messages --------------------------------------------------------------------------
    def message_class(self, name: str) -> type:
        if "/srv/" in name and not name.endswith("/Request"):
            if name not in self.classes:
                self.classes[name] = type(name.split("/")[-1], (), {"Request": self.message_class(name + "/Request")})
            return self.classes[name]
        if "/action/" in name and not name.endswith("/Goal"):
            if name not in self.classes:
                self.classes[name] = type(name.split("/")[-1], (), {"Goal": self.message_class(name + "/Goal")})
            return self.classes[name]
        if "/msg/" not in name and "/srv/" not in name and "/action/" not in name:
            name = name.replace("/", "/msg/", 1)
        if name in self.classes:
            return self.classes[name]
        fields = self.fields[name]
        ros = self

        def default(kind: str) -> Any:
            if kind.endswith("]"):
                return []
            if "/" in kind:
                return ros.message_class(kind)()
            return _DEFAULTS.get(kind, 0)

        def init(self, **kwargs: Any) -> None:
            for field, kind in fields.items():
                setattr(self, field, kwargs[field] if field in kwargs else default(kind))

        def setter(field: str, kind: str):
            def set_value(self, value: Any) -> None:
                _check(field, kind, value, ros.message_class)
                self.__dict__[f"_{field}"] = value

            return property(lambda self: self.__dict__[f"_{field}"], set_value)

        def rosidl_type(kind: str) -> str:
            if kind.endswith("]"):
                inner = kind[: kind.index("[")]
                return f"sequence<{rosidl_type(inner)}>"
            if "/" in kind:
                package, _, type_name = kind.split("/")
                return f"{package}/{type_name}"
            return _ROSIDL_NAMES.get(kind, kind)

        namespace = {field: setter(field, kind) for field, kind in fields.items()}
        namespace["__init__"] = init
        namespace["__repr__"] = lambda self: f"{name.split('/')[-1]}({', '.join(f'{f}={getattr(self, f)!r}' for f in fields)})"
        namespace["get_fields_and_field_types"] = classmethod(lambda cls: {f: rosidl_type(k) for f, k in fields.items()})
        cls = type(name.split("/")[-2] + "_" + name.split("/")[-1] if name.endswith(("/Request", "/Goal"))
                   else name.split("/")[-1], (), namespace)
        self.classes[name] = cls
        return cls

    # ---- rclpy --------------------------------------------------------------------------------
    def modules(self) -> dict[str, types.ModuleType]:
        ros = self

        class Time:
            def __init__(self, nanoseconds: int) -> None:
                self.nanoseconds = nanoseconds

        class Clock:
            def now(self) -> Time:
                return Time(ros.now_ns)

        class Parameter:
            def __init__(self, value: Any) -> None:
                self.value = value

        class Node:
            parameters: dict[str, Any] = {}

            def __init__(self, name: str) -> None:
                self.name = name

            def get_clock(self) -> Clock:
                return Clock()

            def declare_parameter(self, name: str, default: Any) -> Parameter:
                return Parameter(self.parameters.get(name, default))

            def create_subscription(self, cls: type, topic: str, callback: Any, depth: int) -> Any:
                ros.subscriptions.setdefault(topic, []).append((cls, callback))
                return (topic, cls)

            def create_publisher(self, cls: type, topic: str, depth: int) -> Any:
                def publish(msg: Any) -> None:
                    assert isinstance(msg, cls), f"{topic}: a {type(msg).__name__} on a {cls.__name__} publisher"
                    ros.published.append((topic, msg))

                return types.SimpleNamespace(publish=publish)

            def create_client(self, cls: type, service: str) -> Any:
                def call_async(request: Any) -> None:
                    assert isinstance(request, cls.Request), f"{service}: a {type(request).__name__} request"
                    ros.requests.append((service, request))

                return types.SimpleNamespace(call_async=call_async)

            def create_timer(self, period_s: float, callback: Any) -> Any:
                period = round(period_s * 1e9)
                heapq.heappush(ros.timers, (ros.now_ns + period, len(ros.timers), period, callback))
                return callback

            def get_logger(self) -> Any:
                return types.SimpleNamespace(info=ros.log.append)

            def destroy_node(self) -> None:
                pass

        rclpy = types.ModuleType("rclpy")
        rclpy.init = lambda args=None: None
        rclpy.try_shutdown = lambda: None
        node = types.ModuleType("rclpy.node")
        node.Node = Node
        executors = types.ModuleType("rclpy.executors")
        executors.SingleThreadedExecutor = type("SingleThreadedExecutor", (), {})

        class ActionClient:  # rclpy.action.ActionClient(node, action_type, action_name)
            def __init__(self, node: Any, cls: type, server: str) -> None:
                self.cls, self.server = cls, server

            def send_goal_async(self, goal: Any) -> None:
                assert isinstance(goal, self.cls.Goal), f"{self.server}: a {type(goal).__name__} goal"
                ros.goals.append((self.server, goal))

        action = types.ModuleType("rclpy.action")
        action.ActionClient = ActionClient
        rclpy.node, rclpy.executors, rclpy.action = node, executors, action
        modules = {"rclpy": rclpy, "rclpy.node": node, "rclpy.executors": executors, "rclpy.action": action}
        for name in list(self.fields):
            package, kind, type_name = name.split("/")[:3]
            modules.setdefault(package, types.ModuleType(package))
            module = modules.setdefault(f"{package}.{kind}", types.ModuleType(f"{package}.{kind}"))
            setattr(modules[package], kind, module)
            setattr(module, type_name, self.message_class(f"{package}/{kind}/{type_name}"))
        return modules

    def install(self, monkeypatch) -> None:
        for name, module in self.modules().items():
            monkeypatch.setitem(sys.modules, name, module)

    # ---- the graph at work --------------------------------------------------------------------
    def advance_to(self, ms: float) -> None:
        """ROS time moves to `ms`; every timer due by then fires, in time order."""
        end = round(ms * 1e6)
        while self.timers and self.timers[0][0] <= end:
            due, order, period, callback = heapq.heappop(self.timers)
            self.now_ns = due
            callback()
            heapq.heappush(self.timers, (due + period, order, period, callback))
        self.now_ns = end

    def wire(self, msg: Any, name: str) -> Any:
        """The message as a subscriber receives it: float32 fields hold float32 values."""
        import struct

        copy = type(msg)()
        for field, kind in self.fields[name].items():
            value = getattr(msg, field)
            if kind == "float32":
                value = struct.unpack("f", struct.pack("f", value))[0]
            elif "/" in kind and not kind.endswith("]"):
                value = self.wire(value, kind)
            setattr(copy, field, value)
        return copy

    def deliver(self, topic: str, msg: Any, name: str) -> None:
        for cls, callback in self.subscriptions.get(topic, []):
            assert isinstance(msg, cls)
            callback(self.wire(msg, name))


_PYTHON_OF_ROS = {"bool": bool, "float32": float, "float64": float, "string": str, "wstring": str}


def play_as_messages(ros: StandInRos, bridge: Any, scenario: Any, table: dict[str, dict[str, Any]]) -> None:
    """A scenario's readings sent as the ROS messages their bindings subscribe to, at their times
    on ROS time (the node's timers fire on the way), then on to the scenario's end."""
    for step in scenario.steps:
        ros.advance_to(step.time_ms)
        binding = next(b for b in bridge.sources if b.device == step.device and b.source == step.source
                       and all(str(v) == getattr(step.index.get(k), "name", step.index.get(k)) for k, v in b.index.items()))
        message = ros.message_class(binding.message)()
        *parents, last = binding.field.split(".")
        target, kind = message, binding.message
        for part in parents:
            target, kind = getattr(target, part), ros.fields[kind][part]
        field_type = ros.fields[kind][last]
        setattr(target, last, _PYTHON_OF_ROS.get(field_type, int)(step.value))
        ros.deliver(binding.topic, message, binding.message)
    ros.advance_to(scenario.seconds * 1000)
