"""A missing Buildroot tree, a folder that is not one, and a failing make give one clear line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from checkout import REPO_ROOT
from images.buildroot.configure import configure
from images.buildroot.make import BuildrootMakeError, parse_step
from images.buildroot.tree import BuildrootTreeError, locate_tree, read_tree
from images.layers import load_config


def _invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO_ROOT, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=120)


def _broken_buildroot(folder: Path, recipe: str) -> Path:
    """A folder shaped like a Buildroot tree whose make runs `recipe` for every target."""
    (folder / "support" / "scripts").mkdir(parents=True)
    (folder / "support" / "scripts" / "br2-external").write_text("#!/bin/sh\n")
    (folder / "Config.in").write_text('mainmenu "broken"\n')
    (folder / "Makefile").write_text(f"export BR2_VERSION := 2099.01\n%:\n\t{recipe}\n")
    return folder


def test_no_tree_given_names_the_option_and_the_variable(monkeypatch):
    monkeypatch.delenv("BUILDROOT_DIR", raising=False)
    with pytest.raises(BuildrootTreeError) as error:
        locate_tree(None)
    assert "--buildroot-dir" in str(error.value) and "BUILDROOT_DIR" in str(error.value)


def test_missing_and_non_buildroot_dirs(tmp_path):
    with pytest.raises(BuildrootTreeError, match="does not exist"):
        read_tree(tmp_path / "nowhere")
    (tmp_path / "Makefile").write_text("all:\n\ttrue\n")
    with pytest.raises(BuildrootTreeError, match="is not a Buildroot tree"):
        read_tree(tmp_path)
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(BuildrootTreeError, match="is not a directory"):
        read_tree(file)


def test_cli_errors_are_one_line_exit_2_no_traceback(tmp_path):
    cases = [
        (["--buildroot-dir", str(tmp_path / "nowhere")], {}, "does not exist"),
        (["--buildroot-dir", str(tmp_path)], {}, "is not a Buildroot tree"),
        ([], {"BUILDROOT_DIR": ""}, "no Buildroot tree given"),
    ]
    for args, env, text in cases:
        env = {**env, "FLEETFORGE_WORKSPACES": str(tmp_path / "workspaces")}
        result = _invoke("buildroot.configure", "--workspace", "pytest-br", *args, env=env)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0]
        assert "Traceback" not in result.stderr


def test_failed_make_names_target_cause_and_log(tmp_path):
    tree = read_tree(_broken_buildroot(
        tmp_path / "br", "@echo '*** no such board support: $@' >&2; exit 1"))
    assert tree.version == "2099.01"
    workspace = tmp_path / "ws"
    with pytest.raises(BuildrootMakeError) as error:
        configure(load_config("qemu/aarch64,core/minimal"), tree, workspace)
    message = str(error.value)
    assert "\n" not in message
    assert "`make defconfig` failed: *** no such board support: defconfig" in message
    log = workspace / "logs" / "buildroot.log"
    assert f"(full log: {log})" in message
    assert "no such board support" in log.read_text()
    # The external tree was written whole before make ran.
    assert (workspace / "buildroot-external" / "configs" / "fleetforge_defconfig").is_file()


def test_failed_make_through_the_cli(tmp_path):
    broken = _broken_buildroot(tmp_path / "br", "@echo 'cc1: error: bad option' >&2; exit 2")
    result = _invoke("buildroot.configure", "--workspace", "pytest-br-fail",
                     "--buildroot-dir", str(broken),
                     env={"FLEETFORGE_WORKSPACES": str(tmp_path / "workspaces")})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: Buildroot `make defconfig` failed: cc1: error: bad option")
    assert "Traceback" not in result.stderr


def test_progress_lines_are_parsed_with_or_without_colour():
    step = parse_step("\x1b[7m>>> busybox 1.37.0 Building\x1b[27m")
    assert (step.package, step.version, step.step) == ("busybox", "1.37.0", "Building")
    step = parse_step(">>> host-tar 1.35 Installing to host directory")
    assert step.step == "Installing to host directory"
    assert parse_step("gcc -c foo.c") is None


def test_build_backend_switch_reaches_the_buildroot_backend(tmp_path):
    result = _invoke("build", "--backend", "buildroot", "--workspace", "pytest-br-build",
                     "--buildroot-dir", str(tmp_path / "nowhere"),
                     env={"FLEETFORGE_WORKSPACES": str(tmp_path / "workspaces")})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Buildroot tree" in lines[0] and "does not exist" in lines[0]


def test_fetch_keeps_an_existing_tree_and_refuses_another_release(tmp_path):
    from images.buildroot.tree import PINNED_RELEASE, fetch_release

    existing = _broken_buildroot(tmp_path / "br", "true")
    with pytest.raises(BuildrootTreeError, match=f"already holds Buildroot 2099.01, not {PINNED_RELEASE}"):
        fetch_release(existing)
    assert fetch_release(existing, release="2099.01").version == "2099.01"  # no clone needed
