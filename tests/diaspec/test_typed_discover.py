"""Typed discover: each callback's `discover` has a generated protocol, so mypy (pinned, run here
on the shipped examples and on a freshly generated app, for Python 3.10 as ROS 2 Humble runs it)
accepts correct code and catches what the runtime would refuse."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from diaspec.compiler import check_spec
from diaspec.pygen import generate_python

from ds_helpers import EXAMPLES

pytestmark = pytest.mark.slow  # mypy type-checks three apps (about 10 s on a quiet machine)


def mypy(root: Path, package: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--python-version", "3.10", "--no-error-summary", "--cache-dir",
         str(root / ".mypy_cache"), package], cwd=root, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize("name", ["mobile_robot", "pick_and_place", "warehouse_robot"])
def test_the_examples_type_check(example_copy, name):
    root = example_copy(name)
    generate_python(check_spec(root / f"{name}.diaspec"), root / f"{name}_app")
    result = mypy(root, f"{name}_app")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_misuse_of_discover_in_a_generated_app(tmp_path):
    spec = tmp_path / "cell.diaspec"
    spec.write_text((EXAMPLES / "mobile_robot" / "taxonomy.diaspec").read_text()
                    + (EXAMPLES / "mobile_robot" / "mobile_robot.diaspec").read_text().replace('include "taxonomy.diaspec";', ""))
    generate_python(check_spec(spec), tmp_path / "cell_app")
    assert mypy(tmp_path, "cell_app").returncode == 0  # the stubs as generated
    drive_mode = tmp_path / "cell_app" / "components" / "drive_mode.py"
    drive_mode.write_text(drive_mode.read_text().replace(
        "        # when provided ObstacleDistance get Collision maybe publish\n",
        "        # when provided ObstacleDistance get Collision maybe publish\n"
        "        if discover.colision():\n            return Mode.STOPPED\n",
    ))
    motion = tmp_path / "cell_app" / "components" / "motion.py"
    motion.write_text(motion.read_text().replace(
        "        pass\n", "        discover.led.stop()\n        discover.drive_base.set_velocity(0.4)\n"))
    result = mypy(tmp_path, "cell_app")
    lines = sorted(line for line in result.stdout.splitlines() if ": error: " in line)
    assert result.returncode == 1
    assert any('"DiscoverDriveModeOnObstacleDistance" has no attribute "colision"' in line for line in lines), lines
    assert any('"DiscoverMotionOnDriveMode_Led" has no attribute "stop"' in line for line in lines), lines
    assert any('Argument 1 to "set_velocity" of "DiscoverMotionOnDriveMode_DriveBase" has incompatible type "float"' in line
               for line in lines), lines
