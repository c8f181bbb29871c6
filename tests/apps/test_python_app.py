"""A Python DiaSpec app as an app layer (`fleetforge app.new --python`): the folder the device
runs holds the package and a launcher; the launcher runs the app with python3 (this machine's
stands in for the device's here; the QEMU test boots a C app)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import toolchains
from apps.build import build_app
from apps.description import load_app
from apps.image import write_app_folder
from apps.scaffold import new_app
from diaspec.scaffold import new_project


def test_a_python_app_layer_runs_its_package(tmp_path: Path):
    new_project("rover", tmp_path)  # what `diaspec new rover` makes
    layer = new_app("rover", layers=tmp_path / "layers", python=tmp_path / "rover" / "rover_app")
    assert 'depends = ["feature/apps", "feature/python"]' in (layer / "layer.toml").read_text()
    app = load_app(layer)
    assert app.python is not None and app.python.module == "rover_app" and not app.programs
    (build,) = build_app(app, tmp_path / "build", targets=[toolchains.host_target()])
    folder = write_app_folder(build, tmp_path / "device" / "rover")
    assert "PROGRAM=rover" in (folder / "app.env").read_text()
    assert list((folder / "python" / "rover_app").rglob("*.pyc"))  # no compiling on the device
    done = subprocess.run([str(folder / "bin" / "rover"), "--trace", "--seconds", "1"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "tick 500 ms -> Heartbeat.on_every_500ms" in done.stdout
    assert "order Led(lab_led).set_pattern('heartbeat', 1) by Pulse" in done.stdout
