"""ROS 2 packaging: package.xml files valid for catkin_pkg, .msg files per structure/enumeration,
and the generated node forwarding context values (rclpy and message classes faked: no ROS here)."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package_string

from diaspec.compiler import check_spec
from diaspec.rosgen import generate_ros2
from fleetforge.errors import UserError

from ds_helpers import EXAMPLES, import_app, write


def test_packages_are_valid_and_messages_match_the_structures(tmp_path):
    checked = check_spec(EXAMPLES / "pick_and_place" / "pick_and_place.diaspec")
    packages = generate_ros2(checked, tmp_path)
    interfaces = parse_package_string((packages.interfaces_dir / "package.xml").read_text())
    interfaces.validate()
    assert interfaces.name == "pick_and_place_interfaces" and interfaces.get_build_type() == "ament_cmake"
    assert [g.name for g in interfaces.member_of_groups] == ["rosidl_interface_packages"]
    node = parse_package_string((packages.node_dir / "package.xml").read_text())
    node.validate()
    assert node.get_build_type() == "ament_python"
    assert [d.name for d in node.exec_depends] == ["rclpy", "std_msgs", "pick_and_place_interfaces"]
    msg = packages.interfaces_dir / "msg"
    assert sorted(p.name for p in msg.iterdir()) == ["Detection.msg", "GripState.msg", "Point.msg"]
    assert (msg / "Detection.msg").read_text().splitlines()[1:] == [
        "# An object the camera recognised, and where.", "string label", "Point at",
    ]
    assert (msg / "GripState.msg").read_text().splitlines()[1:] == ["uint8 OPEN=0", "uint8 CLOSED=1", "uint8 value"]
    cmake = (packages.interfaces_dir / "CMakeLists.txt").read_text()
    assert 'rosidl_generate_interfaces(${PROJECT_NAME}\n  "msg/Detection.msg"\n  "msg/GripState.msg"\n  "msg/Point.msg"\n)' in cmake
    compile((packages.node_dir / "setup.py").read_text(), "setup.py", "exec")


def test_imported_ros_messages_become_dependencies_and_bad_types_are_refused(tmp_path):
    spec = write(tmp_path, "nav.diaspec", """\
import Pose as geometry_msgs.msg.Pose;
structure Goal { pose as Pose; tags as String[]; }
action Go { go(goal as Goal); }
device Base { source goal as Goal; action Go; }
context Next as Goal { when provided goal from Base always publish; }
controller Drive { when provided Next do Go on Base; }
""")
    packages = generate_ros2(check_spec(spec), tmp_path / "ws")
    assert (packages.interfaces_dir / "msg" / "Goal.msg").read_text().splitlines()[1:] == [
        "geometry_msgs/Pose pose", "string[] tags",
    ]
    xml = parse_package_string((packages.interfaces_dir / "package.xml").read_text())
    assert "geometry_msgs" in [d.name for d in xml.build_depends]
    bad = write(tmp_path, "bad.diaspec", "structure Grid { cells as Float[][]; }\n")
    with pytest.raises(UserError, match=r"Grid.cells: Float\[\]\[\] is a nested array, which ROS messages cannot carry"):
        generate_ros2(check_spec(bad), tmp_path / "ws2")


def _fake_ros(msg_dir: Path, interfaces: str) -> dict[str, types.ModuleType]:
    """Stand-ins for rclpy and generated message classes, built from the .msg files."""
    published: list = []

    class Param:
        def __init__(self, value):
            self.value = value

    class Node:
        def __init__(self, name):
            self.name = name

        def declare_parameter(self, name, default):
            return Param(default)

        def create_publisher(self, cls, topic, depth):
            return types.SimpleNamespace(publish=lambda msg: published.append((topic, msg)))

        def create_timer(self, period, callback):
            self.timer_callback = callback

        def get_logger(self):
            return types.SimpleNamespace(info=print)

    rclpy = types.ModuleType("rclpy")
    rclpy_node = types.ModuleType("rclpy.node")
    rclpy_node.Node = Node
    rclpy.node = rclpy_node
    msgs = types.ModuleType(f"{interfaces}.msg")
    pending = {p.stem: p.read_text().splitlines() for p in msg_dir.glob("*.msg")}

    def make(name):
        fields = [line.split() for line in pending[name] if line and not line.startswith("#") and "=" not in line]

        def init(self, **kwargs):
            for kind, field in fields:
                default = getattr(msgs, kind)() if hasattr(msgs, kind) else None
                setattr(self, field, kwargs.get(field, default))

        return type(name, (), {"__init__": init, "__repr__": lambda self: f"{name}{vars(self)}"})

    for name in pending:  # nested message fields are resolved when a message is built
        setattr(msgs, name, make(name))
    std = types.ModuleType("std_msgs.msg")
    for kind in ("Bool", "Int32", "Float64", "String"):
        setattr(std, kind, type(kind, (), {"__init__": lambda self, data=None: setattr(self, "data", data)}))
    package = types.ModuleType(interfaces)
    package.msg = msgs
    std_package = types.ModuleType("std_msgs")
    std_package.msg = std
    return {"rclpy": rclpy, "rclpy.node": rclpy_node, interfaces: package, f"{interfaces}.msg": msgs,
            "std_msgs": std_package, "std_msgs.msg": std, "__published__": published}


def test_node_publishes_context_values_as_messages(tmp_path, monkeypatch):
    root = tmp_path / "pick_and_place"
    import shutil

    shutil.copytree(EXAMPLES / "pick_and_place", root, ignore=shutil.ignore_patterns("framework", "__pycache__"))
    ws = tmp_path / "ws"
    packages = generate_ros2(check_spec(root / "pick_and_place.diaspec"), ws)
    # the user's components go where the ROS package keeps the app
    shutil.copytree(root / "pick_and_place_app" / "components", packages.app_dir / "components", dirs_exist_ok=True)
    shutil.copy(root / "pick_and_place_app" / "deployment.toml", packages.app_dir / "deployment.toml")
    fakes = _fake_ros(packages.interfaces_dir / "msg", "pick_and_place_interfaces")
    published = fakes.pop("__published__")
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.syspath_prepend(str(packages.node_dir))
    for name in [m for m in sys.modules if m.startswith("pick_and_place_ros")]:
        monkeypatch.delitem(sys.modules, name)
    import_app(packages.node_dir, "pick_and_place_ros.pick_and_place_app")
    node_module = __import__("pick_and_place_ros.node", fromlist=["AppNode"])
    node = node_module.AppNode()
    fw = sys.modules["pick_and_place_ros.pick_and_place_app.framework"]
    t = fw.types
    node.app.device("arm").publish_position(t.Point(0.0, 0.0, 0.2))
    node.app.device("camera").publish_detections((t.Detection("nut", t.Point(0.3, 0.1, 0.0)),))
    node.app.device("gripper").publish_holding(True)
    topics = [(topic, type(msg).__name__) for topic, msg in published]
    assert topics == [("~/target", "Detection"), ("~/grasp", "GripState")]
    target, grasp = published[0][1], published[1][1]
    assert (target.label, target.at.x, target.at.y, target.at.z) == ("nut", 0.3, 0.1, 0.0)
    assert grasp.value == 1  # CLOSED
    assert node.timer_callback == node.app.poll
    for name in [m for m in sys.modules if m.startswith("pick_and_place_ros")]:
        del sys.modules[name]
    sys.path.remove(str(packages.node_dir))
