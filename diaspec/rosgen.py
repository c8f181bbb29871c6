"""ROS 2 packaging (optional target): an ament_python package around the generated Python app and
an ament_cmake interfaces package with a .msg file per structure and enumeration."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fleetforge.errors import UserError

from diaspec.compiler import CheckedDesign
from diaspec.index import DesignIndex
from diaspec.model import Enumeration, ImportType, Structure, TypeRef
from diaspec.naming import py_ident, py_name, snake
from diaspec.pygen import generate_python
from diaspec.rosbind import check_bindings
from diaspec.templating import render

BRIDGE_SOURCE = Path(__file__).with_name("rosbridge.py")
_PRIMITIVE_MSG = {"Boolean": "bool", "Integer": "int32", "Float": "float64", "String": "string", "Binary": "uint8[]"}
# std_msgs types for context values of a primitive type
_PRIMITIVE_STD = {"Boolean": "Bool", "Integer": "Int32", "Float": "Float64", "String": "String"}


@dataclass
class RosPackages:
    interfaces_dir: Path
    node_dir: Path
    app_dir: Path
    messages: dict[str, str] = field(default_factory=dict)


def _external(target: str) -> tuple[str, str] | None:
    """`geometry_msgs.msg.Pose` -> ("geometry_msgs", "geometry_msgs/Pose"); None if not a ROS message."""
    parts = target.split(".")
    if len(parts) == 3 and parts[1] == "msg":
        return parts[0], f"{parts[0]}/{parts[2]}"
    return None


class RosGenerator:
    def __init__(self, checked: CheckedDesign) -> None:
        self.checked = checked
        self.index: DesignIndex = checked.index
        self.app = checked.app_name
        self.interfaces = f"{self.app}_interfaces"
        self.dependencies: set[str] = set()  # message packages the design's types use
        self.node_dependencies: set[str] = set()  # what the node needs besides (bindings, interfaces)
        self.problems: list[str] = []

    def msg_type(self, ref: TypeRef, where: str) -> str:
        resolved = self.index.resolve(ref)
        if resolved is None:
            return "string"
        if resolved.dims > 1:
            self.problems.append(f"{where}: {ref} is a nested array, which ROS messages cannot carry")
        suffix = "[]" if resolved.dims else ""
        if resolved.name in _PRIMITIVE_MSG:
            base = _PRIMITIVE_MSG[resolved.name]
            if base.endswith("[]") and suffix:
                self.problems.append(f"{where}: {ref} is an array of Binary, which ROS messages cannot carry")
            return base + ("" if base.endswith("[]") else suffix)
        decl = self.index.by_name.get(resolved.name)
        if isinstance(decl, ImportType):
            external = _external(decl.target)
            if external is None:
                self.problems.append(f"{where}: {decl.name.text} imports {decl.target}, not a ROS message (pkg.msg.Type)")
                return "string"
            self.dependencies.add(external[0])
            return external[1] + suffix
        return resolved.name + suffix

    def common(self) -> dict:
        return {"spec_hash": self.checked.spec_hash, "app": self.app, "interfaces": self.interfaces,
                "dependencies": sorted(self.dependencies)}

    def messages(self) -> dict[str, str]:
        files: dict[str, str] = {}
        for decl in self.checked.design.declarations:
            if isinstance(decl, Structure):
                lines = [f"{self.msg_type(f.type, f'{decl.name.text}.{f.name.text}')} {py_name(f.name.text)}" for f in decl.fields]
            elif isinstance(decl, Enumeration):
                lines = [f"uint8 {v.text.upper()}={i}" for i, v in enumerate(decl.values)] + ["uint8 value"]
            else:
                continue
            doc = decl.doc if isinstance(decl, Structure) else ""
            files[f"{decl.name.text}.msg"] = render("ros2/message.msg.j2", doc=doc, lines=lines, **self.common())
        return files

    def interfaces_package_xml(self) -> str:
        return render("ros2/interfaces_package.xml.j2", **self.common())

    def cmakelists(self, messages: dict[str, str]) -> str:
        return render("ros2/CMakeLists.txt.j2", messages=sorted(messages), **self.common())

    def node_package_xml(self, node: str) -> str:
        return render("ros2/node_package.xml.j2", node=node,
                      **{**self.common(), "dependencies": sorted(self.node_dependencies | self.dependencies)})

    def topics(self) -> list[tuple[str, str, str]]:
        """(context, topic, message type) for contexts whose value crosses to ROS."""
        result = []
        for context in self.checked.design.contexts:
            if context.indices or not self.index.can_publish(context):
                continue  # a {key: value} mapping has no message type; a pulled-only context never publishes
            resolved = self.index.resolve(context.type)
            if resolved is None or resolved.dims:
                continue
            topic = f"~/{snake(context.name.text)}"
            if resolved.name in _PRIMITIVE_STD:
                self.node_dependencies.add("std_msgs")
                result.append((context.name.text, topic, f"std_msgs/msg/{_PRIMITIVE_STD[resolved.name]}"))
            elif isinstance(self.index.by_name.get(resolved.name), (Structure, Enumeration)):
                self.node_dependencies.add(self.interfaces)
                result.append((context.name.text, topic, f"{self.interfaces}/msg/{resolved.name}"))
        return result

    def node_module(self, node: str, app_package: str, reading_fields: dict[str, str]) -> str:
        topics = [{"context": c, "topic": t, "message": m} for c, t, m in self.topics()]
        return render("ros2/node.py.j2", node=node, app_package=app_package, topics=topics,
                      reading_fields=dict(sorted(reading_fields.items())), **self.common())

    def node_depends(self) -> str:
        return render("ros2/node_depends.xml.j2", **{**self.common(), "dependencies": sorted(self.node_dependencies | self.dependencies)})

    def setup_py(self, node: str) -> str:
        return render("ros2/setup.py.j2", node=node, **self.common())

    def setup_cfg(self, node: str) -> str:
        return render("ros2/setup.cfg.j2", node=node, **self.common())


BEGIN, END = "  <!-- diaspec: dependencies begin", "  <!-- diaspec: dependencies end -->\n"


def _write_package_xml(path: Path, generator: RosGenerator, node: str) -> None:
    """package.xml is the user's (version, maintainer, licence...): written once, then only the
    block between the diaspec markers is replaced."""
    if not path.exists():
        path.write_text(generator.node_package_xml(node), encoding="utf-8")
        return
    text = path.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise UserError("package.xml lost its diaspec dependency markers; put back the lines "
                        f"'{BEGIN.strip()} ...' and '{END.strip()}' (or delete the file to get a fresh one)", where=str(path))
    path.write_text(text[:start] + generator.node_depends() + text[end + len(END):], encoding="utf-8")


def generate_ros2(checked: CheckedDesign, out_dir: Path) -> RosPackages:
    """Write `<app>_interfaces/` and `<app>_ros/` (with the Python app inside) under `out_dir`."""
    generator = RosGenerator(checked)
    messages = generator.messages()
    node_package = f"{checked.app_name}_ros"
    if not node_package.isidentifier() or not py_ident(node_package) == node_package:
        raise UserError(f"'{checked.app_name}' cannot name a ROS 2 package (use letters, digits and _)")
    topics = generator.topics()  # collects dependencies of context types too
    del topics
    if generator.problems:
        raise UserError("cannot package for ROS 2: " + "; ".join(generator.problems), where=checked.design.main_file)
    out_dir = Path(out_dir)
    interfaces = out_dir / generator.interfaces
    node_dir = out_dir / node_package
    (interfaces / "msg").mkdir(parents=True, exist_ok=True)
    for stale in (interfaces / "msg").glob("*.msg"):
        if stale.name not in messages:
            stale.unlink()  # generated files only: the design dropped that type
    for name, text in messages.items():
        (interfaces / "msg" / name).write_text(text, encoding="utf-8")
    (interfaces / "package.xml").write_text(generator.interfaces_package_xml(), encoding="utf-8")
    (interfaces / "CMakeLists.txt").write_text(generator.cmakelists(messages), encoding="utf-8")
    python_package = node_dir / node_package
    app_dir = python_package / f"{checked.app_name}_app"
    generate_python(checked, app_dir)
    (node_dir / "resource").mkdir(parents=True, exist_ok=True)
    (node_dir / "resource" / node_package).write_text("", encoding="utf-8")
    bindings = check_bindings(checked, app_dir / "deployment.toml")
    generator.node_dependencies.update(bindings.packages)
    node_text = generator.node_module(node_package, app_dir.name, bindings.reading_fields)
    _write_package_xml(node_dir / "package.xml", generator, node_package)
    (python_package / "node.py").write_text(node_text, encoding="utf-8")
    (python_package / "bridge.py").write_text(
        f"# Code generated by diaspec (spec sha256 {checked.spec_hash[:16]}). DO NOT EDIT.\n"
        + BRIDGE_SOURCE.read_text(encoding="utf-8"), encoding="utf-8")
    for path, text in {
        node_dir / "test" / "test_app.py": render("ros2/test_app.py.j2", node=node_package, **generator.common()),
        node_dir / "setup.py": generator.setup_py(node_package),
        node_dir / "setup.cfg": generator.setup_cfg(node_package),
        python_package / "__init__.py": f'"""ROS 2 packaging of the {checked.app_name} app."""\n',
    }.items():
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return RosPackages(interfaces, node_dir, app_dir, messages)
