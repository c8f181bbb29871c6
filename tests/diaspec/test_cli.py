"""The commands as users type them: python -m diaspec ..., fleetforge diaspec.*, and `new`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ds_helpers import EXAMPLES, write

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def diaspec(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diaspec", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)


def test_check_prints_sorted_findings_and_exits_2_on_error(tmp_path):
    spec = write(tmp_path, "bad.diaspec", "device D { source s as Floot; }\ncontext C as Float { when provided Q always publish; }\n")
    result = diaspec("check", str(spec))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{spec}:1:19: warning: source 's' of device D is never used",
        f"{spec}:1:24: error: unknown type 'Floot' (did you mean 'Float'?)",
        f"{spec}:2:9: warning: context 'C' is never used by a context or controller",
        f"{spec}:2:36: error: unknown context 'Q'",
    ]
    assert "Traceback" not in result.stderr


def test_check_ok_example(tmp_path):
    result = diaspec("check", str(EXAMPLES / "mobile_robot" / "mobile_robot.diaspec"))
    assert result.returncode == 0, result.stderr
    assert "ok (6 devices, 4 contexts, 2 controllers, 0 warning(s))" in result.stdout


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02\xff" * 100, b"{" * 100_000, b"device " + b"D" * 200_000 + b" {"])
def test_garbage_never_shows_a_traceback(tmp_path, content):
    spec = tmp_path / "junk.diaspec"
    spec.write_bytes(content)
    result = diaspec("check", str(spec))
    assert "Traceback" not in result.stderr
    assert result.returncode in (0, 2)
    for line in result.stderr.splitlines():
        assert line.startswith(f"{spec}:") and (": error: " in line or ": warning: " in line)


def test_generate_refuses_a_bad_design_and_writes_nothing(tmp_path):
    spec = write(tmp_path, "bad.diaspec", "device D extends D { }\n")
    result = diaspec("generate", str(spec), "--out", str(tmp_path / "out_app"))
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == f"{spec}:1:8: error: inheritance cycle: D -> D"
    assert not (tmp_path / "out_app").exists()


def test_generate_graph_and_regenerate_through_the_cli(tmp_path):
    spec = EXAMPLES / "pick_and_place" / "pick_and_place.diaspec"
    out = tmp_path / "cell_app"
    first = diaspec("generate", str(spec), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert f"created {out / 'components' / 'target.py'} (yours to edit)" in first.stdout
    second = diaspec("generate", str(spec), "--out", str(out))
    assert second.returncode == 0 and "created" not in second.stdout
    graph = diaspec("graph", str(spec), "--out", str(tmp_path / "cell.svg"))
    assert graph.returncode == 0, graph.stderr
    svg = (tmp_path / "cell.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "Picker" in svg
    dot = (tmp_path / "cell.dot").read_text()
    assert '"dev:Camera" -> "ctx:Target" [label="detections", style=bold];' in dot
    assert '"dev:Arm" -> "ctx:ArmPose" [label="get position", style=dashed];' in dot
    assert '"ctx:Target" -> "ctl:Picker" [style=bold];' in dot
    assert '"ctl:Picker" -> "act:Conveyor.ConveyorControl";' in dot
    run = subprocess.run([sys.executable, "-m", "cell_app", "--seconds", "1"], cwd=tmp_path, env=ENV,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_new_creates_a_design_whose_app_runs(tmp_path):
    result = diaspec("new", "greenhouse", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    root = tmp_path / "greenhouse"
    assert diaspec("check", str(root / "greenhouse.diaspec")).returncode == 0
    run = subprocess.run([sys.executable, "-m", "greenhouse_app", "--trace", "--seconds", "1"], cwd=root, env=ENV,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "[     500.0 ms] order Led(lab_led).set_pattern('heartbeat', 1) by Pulse" in run.stdout
    assert "Led(lab_led): 2 order(s), last set_pattern('heartbeat', 1)" in run.stdout
    # the first full run plays the starter scenario: the lab warms up, and once it has been hot for
    # 2 s (a duration in the Heat context, not a count of ticks) the LED blinks the alarm
    full = subprocess.run([sys.executable, "-m", "greenhouse_app", "--trace"], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert full.returncode == 0, full.stderr
    lines = full.stdout.splitlines()
    assert "[       0.0 ms] publish Thermometer(lab_thermometer).temperature = 21.9" in lines
    assert "[    6000.0 ms] publish Heat = Level.HIGH" in lines
    assert "[    6000.0 ms] order Led(lab_led).set_pattern('alarm', 5) by Alarm" in lines
    assert lines[-1] == "Led(lab_led): 17 order(s), last set_pattern('heartbeat', 1)"
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "greenhouse_app/test_app.py"],
                          cwd=root, env=ENV, capture_output=True, text=True, timeout=120)
    assert test.returncode == 0, test.stdout + test.stderr
    again = diaspec("new", "greenhouse", "--dir", str(tmp_path))
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "already exists" in again.stderr


def test_invoke_tasks(tmp_path):
    from invoke import Context

    import diaspec.tasks as tasks

    assert sorted(tasks.namespace.task_names) == ["check", "generate", "graph", "new"]
    tasks.check(Context(), str(EXAMPLES / "mobile_robot" / "mobile_robot.diaspec"))
    with pytest.raises(SystemExit) as caught:
        tasks.check(Context(), str(write(tmp_path, "bad.diaspec", "device D { action Nope; }\n")))
    assert caught.value.code == 2
    tasks.generate(Context(), str(EXAMPLES / "mobile_robot" / "mobile_robot.diaspec"), str(tmp_path / "c"), lang="c")
    assert (tmp_path / "c" / "diaspec_runtime.c").exists()


def test_generate_c_with_a_host_harness_from_the_python_app(tmp_path):
    """`--host APP_DIR`: a Linux main() playing the app's scenario on its deployment, in C."""
    import shutil

    root = tmp_path / "mobile_robot"
    shutil.copytree(EXAMPLES / "mobile_robot", root, ignore=shutil.ignore_patterns("framework", "__pycache__"))
    assert diaspec("generate", "mobile_robot.diaspec", "--out", "mobile_robot_app", cwd=root).returncode == 0
    result = diaspec("generate", "mobile_robot.diaspec", "--out", "c", "--lang", "c", "--host", "mobile_robot_app", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "wrote c/host/diaspec_host.c (a Linux host main)" in result.stdout
    host = (root / "c" / "host" / "diaspec_host.c").read_text()
    assert 'ds_register_named_device(2u, DS_DEVICE_Sonar, "sonar_rear");' in host
    assert "Bumper_publish_pressed(4u, true)" in host  # the bump at 3 s (ids in deployment order)
    bad = diaspec("generate", "mobile_robot.diaspec", "--out", "c", "--lang", "c", "--host", "nowhere", cwd=root)
    assert bad.returncode == 2 and "not a generated Python app" in bad.stderr and "Traceback" not in bad.stderr
