"""One behaviour in every target: the same design, deployment and scenario run through the Python
runtime, the C runtime (host build, -DDS_TRACE) and the ROS 2 node's logic (its readings sent as
the messages its bindings subscribe to; rclpy and the message classes are stand-ins, as ROS 2
cannot exist here) print the same trace, line for line."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from diaspec.cgen import generate_c
from diaspec.chost import write_host
from diaspec.compiler import check_spec
from diaspec.pygen import generate_python
from diaspec.rosbind import message_table
from diaspec.rosgen import generate_ros2
from fleetforge.tools import run_tool

from ds_helpers import import_app
from ros_standin import StandInRos, play_as_messages

WARNINGS = ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-Wconversion", "-Wshadow"]


def python_trace(root: Path, name: str):
    checked = check_spec(root / f"{name}.diaspec")
    assert checked.ok, checked.diagnostics.render()
    generate_python(checked, root / f"{name}_app")
    fw = import_app(root, f"{name}_app")
    lines: list[str] = []
    app = fw.build(f"{name}_app", clock=fw.VirtualClock(), trace=lines.append)
    scenario = fw.load_scenario(root / f"{name}_app" / "scenario.toml", app)
    app.play(scenario)
    assert app.failures == []
    return checked, app, scenario, lines


def c_trace(root: Path, checked, app, scenario) -> list[str]:
    generate_c(checked, root / "c")
    write_host(checked, root / "c", app, scenario)
    sources = [p for p in sorted((root / "c").glob("*.c")) if p.name != "board.c"]  # the board has its own main
    binary = root / "robot-host"
    run_tool(["gcc", *WARNINGS, "-DDS_TRACE", "-O1", "-I", root / "c", *sources, root / "c" / "host" / "diaspec_host.c",
              "-o", binary], debian_package="gcc")
    output = run_tool([binary], debian_package="gcc").splitlines()
    return [line for line in output if line.startswith("[")]  # the example's act_*.c print their orders too


def ros_trace(root: Path, tmp_path: Path, monkeypatch, scenario) -> list[str]:
    workspace = tmp_path / "ws"
    app_dir = workspace / "mobile_robot_ros" / "mobile_robot_ros" / "mobile_robot_app"
    shutil.copytree(root / "mobile_robot_app", app_dir, ignore=shutil.ignore_patterns("framework", "__pycache__"))
    packages = generate_ros2(check_spec(root / "mobile_robot.diaspec"), workspace)
    table = message_table(str(root / "mobile_robot.diaspec"))
    ros = StandInRos(table, {"mobile_robot_interfaces": packages.interfaces_dir / "msg"})
    ros.install(monkeypatch)
    import_app(packages.node_dir, "mobile_robot_ros.mobile_robot_app")
    node_module = __import__("mobile_robot_ros.node", fromlist=["AppNode"])
    monkeypatch.setattr(sys.modules["rclpy.node"].Node, "parameters", {"trace": True})
    node = node_module.AppNode()
    play_as_messages(ros, node.bridge, scenario, table)
    assert node.app.failures == []
    for name in [m for m in sys.modules if m.startswith("mobile_robot_ros")]:
        monkeypatch.delitem(sys.modules, name)
    return ros.log


def test_mobile_robot_python_c_and_ros_traces_are_identical(example_copy, tmp_path, monkeypatch):
    root = example_copy("mobile_robot")
    checked, app, scenario, python_lines = python_trace(root, "mobile_robot")
    c_lines = c_trace(root, checked, app, scenario)
    ros_lines = ros_trace(root, tmp_path, monkeypatch, scenario)
    assert len(python_lines) > 300  # readings, deliveries, pulls, ticks, publications and orders
    assert any(" order Led(status_led).set_pattern('avoid', 3) by Motion" in line for line in python_lines)
    first_difference = next((i for i, (a, b) in enumerate(zip(python_lines, c_lines)) if a != b), None)
    assert first_difference is None, (
        f"line {first_difference + 1}: python {python_lines[first_difference]!r} != c {c_lines[first_difference]!r}"
    )
    assert c_lines == python_lines
    first_difference = next((i for i, (a, b) in enumerate(zip(python_lines, ros_lines)) if a != b), None)
    assert first_difference is None, (
        f"line {first_difference + 1}: python {python_lines[first_difference]!r} != ros {ros_lines[first_difference]!r}"
    )
    assert ros_lines == python_lines
