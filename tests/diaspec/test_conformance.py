"""One behaviour in every target: the same design, deployment and scenario run through the Python
runtime and the C runtime (host build, -DDS_TRACE) print the same trace, line for line."""
from __future__ import annotations

from pathlib import Path

from diaspec.cgen import generate_c
from diaspec.chost import write_host
from diaspec.compiler import check_spec
from diaspec.pygen import generate_python
from fleetforge.tools import run_tool

from ds_helpers import import_app

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


def test_mobile_robot_python_and_c_traces_are_identical(example_copy):
    root = example_copy("mobile_robot")
    checked, app, scenario, python_lines = python_trace(root, "mobile_robot")
    c_lines = c_trace(root, checked, app, scenario)
    assert len(python_lines) > 300  # readings, deliveries, pulls, ticks, publications and orders
    assert any(" order Led(status_led).set_pattern('avoid', 3) by Motion" in line for line in python_lines)
    first_difference = next((i for i, (a, b) in enumerate(zip(python_lines, c_lines)) if a != b), None)
    assert first_difference is None, (
        f"line {first_difference + 1}: python {python_lines[first_difference]!r} != c {c_lines[first_difference]!r}"
    )
    assert c_lines == python_lines
