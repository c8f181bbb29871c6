"""`fleetforge app.new`: app layers made from what `diaspec new` writes. The C one builds from the
generated framework; the Python one's folder holds the package and a launcher that runs the app
with python3 (this machine's stands in for the device's here; the QEMU test boots a C app)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import toolchains
from apps.build import build_app
from apps.description import load_app
from apps.image import write_app_folder
from apps.scaffold import new_app
from ml_tuner.run import run_program
from diaspec.scaffold import new_project

MAIN_C = """\
#include <stdio.h>
#include "diaspec_runtime.h"
int main(void)
{
    ds_init(0);
    ds_register_device(0, DS_DEVICE_Thermometer);
    Thermometer_publish_temperature(0, 30.0f);
    ds_tick(1000);
    ds_run_pending();
    puts("ran");
    return 0;
}
"""


def test_a_c_app_layer_from_a_design_builds(tmp_path: Path):
    new_project("rover", tmp_path)
    layer = new_app("rover", design=tmp_path / "rover" / "rover.diaspec",
                    layers=tmp_path / "layers")
    assert (layer / "c" / "diaspec_runtime.c").is_file() and (layer / "c" / "ctx_Heat.c").is_file()
    (layer / "c" / "main.c").write_text(MAIN_C)  # the board's main (README: a simulated one)
    host = toolchains.host_target()
    (build,) = build_app(load_app(layer), tmp_path / "build", targets=[host], optimize="Oz")
    run = run_program(host.name, build.program("rover"))
    assert (run.status, run.output) == (0, "ran\n")


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
