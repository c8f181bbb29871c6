"""FleetForge as an installed package: console scripts from any folder, relative paths, a wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from checkout import REPO_ROOT

BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FLEETFORGE_WORKSPACES"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          **kwargs)


def test_fleetforge_lists_layers_and_resolves_config_from_another_folder(tmp_path):
    result = _run([str(BIN / "fleetforge"), "layers"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "board/qemu-aarch64" in result.stdout and "feature/ota" in result.stdout
    result = _run([str(BIN / "fleetforge"), "config", "--layers", "qemu/aarch64,core/minimal",
                   "--show"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "layers/core/minimal" in result.stdout  # provenance names the shipped layer file


def test_a_project_layer_in_the_current_folder_is_found_before_the_shipped_ones(tmp_path):
    own = tmp_path / "layers" / "feature" / "hello"
    own.mkdir(parents=True)
    (own / "layer.toml").write_text('description = "a layer of this project"\n'
                                    'depends = ["core/minimal"]\n')
    result = _run([str(BIN / "fleetforge"), "layers"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "feature/hello" in result.stdout and "a layer of this project" in result.stdout


def test_work_dir_puts_workspaces_where_the_user_says_relative_to_the_current_folder(tmp_path):
    (tmp_path / "out" / "one" / "build").mkdir(parents=True)
    result = _run([str(BIN / "fleetforge"), "clean", "--workspace", "one", "--work-dir", "out"],
                  tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"removed {tmp_path / 'out' / 'one' / 'build'}" in result.stdout
    assert not (tmp_path / "out" / "one" / "build").exists()


def test_diaspec_checks_a_relative_path_from_any_folder(tmp_path):
    example = REPO_ROOT / "diaspec/examples/mobile_robot"
    shutil.copytree(example, tmp_path / "robot", ignore=shutil.ignore_patterns("*_app", "c"))
    result = _run([str(BIN / "diaspec"), "check", "robot/mobile_robot.diaspec"], tmp_path)
    assert result.returncode == 0, result.stderr
    result = _run([sys.executable, "-m", "diaspec", "check", "robot/missing.diaspec"], tmp_path)
    assert result.returncode != 0 and "robot/missing.diaspec" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ml_tuner_tunes_a_relative_file_from_any_folder(tmp_path):
    shutil.copy(REPO_ROOT / "tests/ml_tuner/data/pid.c", tmp_path / "pid.c")
    result = _run([str(BIN / "ml-tuner"), "tune", "pid.c", "--target", "aarch64-linux-gnu",
                   "--budget", "3", "--json", "--no-cache"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"candidate"' in result.stdout


@pytest.mark.slow
def test_pip_wheel_builds_a_wheel_with_the_layers_and_the_models(tmp_path):
    # Built from a copy of the checkout's files: pip writes build/ into the folder it builds.
    source = tmp_path / "source"
    listed = _run(["git", "ls-files", "-co", "--exclude-standard", "-z"], REPO_ROOT).stdout
    for name in filter(None, listed.split("\0")):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        if (REPO_ROOT / name).is_symlink():  # fleetforge/layers -> ../layers
            (source / name).symlink_to((REPO_ROOT / name).readlink())
        elif (REPO_ROOT / name).is_file():
            shutil.copy2(REPO_ROOT / name, source / name)
    result = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                   str(tmp_path / "dist"), str(source)], tmp_path)
    assert result.returncode == 0, result.stderr
    wheel, = (tmp_path / "dist").glob("fleetforge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "fleetforge/layers/core/minimal/layer.toml" in names
    assert "fleetforge/layers/feature/ota/root_overlay/usr/sbin/fleetforge-ota" in names
    assert "toolchains/targets.toml" in names and "diaspec/grammar.lark" in names
    assert "ml_tuner/data/knobs.toml" in names and "toolchains/baremetal/mps2_an386_rdimon.ld" in names
    # The low-bit runtime is built from its C sources on the user's machine.
    assert {"lowbit/runtime/lowbit.c", "lowbit/runtime/runner.c", "lowbit/runtime/lowbit.h"} <= names
    assert "fleetforge/layers/feature/models/hooks/post-build.sh" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "fleetforge = fleetforge.cli:main" in scripts and "ml-tuner" in scripts
