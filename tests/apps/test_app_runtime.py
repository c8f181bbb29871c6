"""The device side of apps, layers/feature/apps/.../fleetforge-app, run here with busybox sh on a
fake root (its folders moved by FLEETFORGE_APPS_CONF, as on a device by /etc/fleetforge/apps.conf):
which version runs after an app update and after a root filesystem update, health, a crash loop.
The programs are sh scripts standing in for compiled apps (the QEMU test runs real ones)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from checkout import LAYERS_DIR

RUNNER = LAYERS_DIR / "feature" / "apps" / "root_overlay" / "usr" / "sbin" / "fleetforge-app"

pytestmark = pytest.mark.skipif(shutil.which("busybox") is None,
                                reason="busybox (requirements/ota.apt) runs the device script")


@dataclass
class FakeRoot:
    root: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["busybox", "sh", str(RUNNER), *args], env=self.env,
                              capture_output=True, text=True, timeout=30)
        if check:
            assert done.returncode == 0, f"{args}: {done.stdout} {done.stderr}"
        return done

    def app(self, folder: Path, trace: str, build_id: str, *, crash: bool = False) -> Path:
        (folder / "bin").mkdir(parents=True, exist_ok=True)
        (folder / ".fleetforge").mkdir(exist_ok=True)
        body = "exit 3" if crash else "while :; do echo \"$TRACE $1\"; sleep 0.2; done"
        program = folder / "bin" / "rover"
        program.write_text(f"#!/bin/sh\nTRACE='{trace}'\n{body}\n")
        program.chmod(0o755)
        (folder / "app.env").write_text("PROGRAM=rover\nARGS=--trace\nSETTLE=1\n"
                                        "HEALTH='tail -n 1 \"$APP_LOG\" | grep -q tick'\n")
        (folder / ".fleetforge" / "build-id").write_text(build_id + "\n")
        return folder

    def log(self) -> str:
        return (self.root / "log" / "rover.log").read_text()


@pytest.fixture
def fake_root(tmp_path: Path) -> Iterator[FakeRoot]:
    conf = tmp_path / "apps.conf"
    conf.write_text("".join(f"{key}={tmp_path / name}\n" for key, name in (
        ("IMAGE_DIR", "image"), ("ART_DIR", "artifacts"), ("STATE_DIR", "state"),
        ("RUN_DIR", "run"), ("LOG_DIR", "log"))))
    fake = FakeRoot(tmp_path, {**os.environ, "FLEETFORGE_APPS_CONF": str(conf)})
    yield fake
    fake.run("stop", "rover", check=False)


def test_an_update_runs_over_its_image_build_only(fake_root):
    image = fake_root.app(fake_root.root / "image" / "rover", "image tick", "build-1")
    store = fake_root.app(fake_root.root / "artifacts" / ".store" / "app-rover@1", "update tick",
                          "update-1")
    (fake_root.root / "artifacts" / "app-rover").symlink_to(store)
    fake_root.run("start", "rover")  # installed but never activated: the image's app
    assert fake_root.run("dir", "rover").stdout.strip() == str(image)
    fake_root.run("check", "rover", "--wait", "10")
    assert "image tick --trace" in fake_root.log()
    fake_root.run("activate", "rover")  # what the OTA agent's hook does after the switch
    fake_root.run("check", "rover", "--wait", "10")
    assert fake_root.run("dir", "rover").stdout.strip() == str(fake_root.root / "artifacts" / "app-rover")
    assert (fake_root.root / "state" / "rover.base").read_text().strip() == "build-1"
    # A root filesystem update ships another build of the app: that build runs, not the update.
    (image / ".fleetforge" / "build-id").write_text("build-2\n")
    fake_root.run("restart", "rover")
    fake_root.run("check", "rover", "--wait", "10")
    assert fake_root.run("dir", "rover").stdout.strip() == str(image)
    assert "made over another build" in fake_root.run("dir", "rover").stderr
    # Rolled back to the first root filesystem: the update applies again.
    (image / ".fleetforge" / "build-id").write_text("build-1\n")
    fake_root.run("restart", "rover")
    assert fake_root.run("dir", "rover").stdout.strip().endswith("artifacts/app-rover")


def test_a_crashing_app_is_restarted_and_never_healthy(fake_root):
    fake_root.app(fake_root.root / "image" / "rover", "", "build-1", crash=True)
    fake_root.run("start", "rover")
    started = time.monotonic()
    failed = fake_root.run("check", "rover", "--wait", "2", check=False)
    assert failed.returncode == 1 and time.monotonic() - started >= 2
    assert "rover is not healthy:" in failed.stderr
    assert fake_root.log().count("rover exited with status 3") >= 2  # restarted, with back-off


def test_a_bad_name_is_refused(fake_root):
    refused = fake_root.run("start", "../etc", check=False)
    assert refused.returncode == 2 and "usage:" in refused.stderr
