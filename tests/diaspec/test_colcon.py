"""The examples' ROS 2 node packages built, installed and tested with colcon (colcon-common-extensions
from PyPI, pinned), as a robot developer would. The messages packages (ament_cmake + rosidl) need a
ROS 2 installation, which cannot exist here: colcon ignores them (the node packages' dependency on
them is then an underlay's, as on a robot where they were built first)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diaspec.compiler import check_spec
from diaspec.rosgen import generate_ros2

from ds_helpers import EXAMPLES

EXAMPLE_NAMES = ["mobile_robot", "pick_and_place", "warehouse_robot"]
COLCON = Path(sys.executable).with_name("colcon")


def colcon(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    ignore = [f"{name}_interfaces" for name in EXAMPLE_NAMES]
    return subprocess.run([str(COLCON), *args, "--packages-ignore", *ignore], cwd=workspace,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_examples_build_install_and_pass_their_tests_with_colcon(tmp_path):
    workspace = tmp_path / "ws"
    for name in EXAMPLE_NAMES:
        source = tmp_path / name
        shutil.copytree(EXAMPLES / name, source, ignore=shutil.ignore_patterns("framework", "__pycache__", "c"))
        app = workspace / "src" / f"{name}_ros" / f"{name}_ros" / f"{name}_app"
        shutil.copytree(source / f"{name}_app", app)  # the example's own code goes into the node package
        generate_ros2(check_spec(source / f"{name}.diaspec"), workspace / "src")
    build = colcon(workspace, "build")
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "3 packages finished" in build.stdout
    for name in EXAMPLE_NAMES:
        prefix = workspace / "install" / f"{name}_ros"
        assert (prefix / "share" / f"{name}_ros" / "package.xml").exists()
        assert (prefix / "share" / f"{name}_ros" / "deployment.toml").exists()
        installed = list(prefix.glob(f"lib/python3*/site-packages/{name}_ros/{name}_app"))
        assert installed and (installed[0] / "deployment.toml").exists() and (installed[0] / "scenario.toml").exists()
        assert (installed[0] / "framework" / "_runtime.py").exists()
        assert (prefix / "lib" / f"{name}_ros" / name).exists()  # the node's console script
    tests = colcon(workspace, "test")
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    result = subprocess.run([str(COLCON), "test-result", "--all"], cwd=workspace, capture_output=True, text=True,
                            timeout=120)
    summary = re.search(r"Summary: (\d+) tests, (\d+) errors, (\d+) failures", result.stdout)
    assert summary is not None, result.stdout
    # each package: the generated colcon test and the example's own test_app.py on its scenario
    assert summary.groups() == ("6", "0", "0"), result.stdout
