"""An image with an app layer (tests/apps/data/layers/app/sample) booted in QEMU: the app runs as
a service and its trace is readable over SSH; `fleetforge deploy --app` updates only the app
(no reboot), and a broken app is rolled back to the previous version by its health check."""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.image import APP_SIZES_NAME
from fleetforge.cli import main as fleetforge
from images.build import BuildResult, build
from images.qemu import BootedMachine
from images.workspace import Workspace

pytestmark = pytest.mark.qemu

TEST_LAYERS = Path(__file__).parent / "data" / "layers"
LAYERS = "board/qemu-aarch64,core/minimal,feature/ota,app/sample"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A user's project folder: its own keys and workspaces (as `fleetforge` run in it has)."""
    root = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLEETFORGE_OTA_KEYS", str(root / "keys"))
        patch.setenv("FLEETFORGE_WORKSPACES", str(root / "workspaces"))
        yield root


@pytest.fixture(scope="module")
def app_image(project: Path) -> BuildResult:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLEETFORGE_LAYER_PATH", str(TEST_LAYERS))
        return build(LAYERS, workspace=Workspace.named("apps"))


@pytest.fixture(scope="module")
def device(app_image: BuildResult) -> Iterator[BootedMachine]:
    machine = BootedMachine.start(app_image.workspace, timeout=180)
    yield machine
    machine.stop(power_off=True)


def test_the_image_boots_into_the_running_app(app_image, device):
    assert device.run("fleetforge-app status sample").strip() == (
        "sample: healthy, running /usr/lib/fleetforge/apps/sample")
    # The check an OTA commit waits for (the agent runs every health.d script with sh).
    device.run("HEALTH_TIMEOUT=10 sh /etc/fleetforge/health.d/50-app-sample")
    trace = device.run("fleetforge-app log sample")
    assert "starting /usr/lib/fleetforge/apps/sample/bin/sample --serve" in trace
    assert "sample tick 1 telemetry 05b25b9c" in trace
    sizes = json.loads((app_image.workspace.images_dir / APP_SIZES_NAME).read_text())
    (binary,) = sizes["binaries"]
    assert binary["program"] == "sample" and binary["target"] == "aarch64-linux-gnu"
    assert binary["shipped"]["flash"] <= binary["oz"]["flash"]


def _deploy(device: BootedMachine, project: Path) -> None:
    fleetforge(["deploy", "--app", "sample", "--workspace", "apps",
                "--host", f"root@127.0.0.1:{device.check.ssh_port}",
                "--identity", str(device.workspace.ssh_key), "--trust-new-host",
                "--known-hosts", str(project / "known_hosts")])


def test_app_only_update_and_automatic_rollback(device, project, monkeypatch, capsys):
    # The user's copy of the app in the project's own ./layers (found before the shipped ones).
    app = project / "layers" / "app" / "sample"
    shutil.copytree(TEST_LAYERS / "app" / "sample", app)
    toml = app / "app.toml"
    # Plain -Oz keeps the update's rebuild short here; tests/apps/test_scons_build.py tunes.
    toml.write_text(toml.read_text().replace("budget = 6", 'budget = 6\noptimize = "Oz"'))
    main = app / "src" / "main.c"
    main.write_text(main.read_text().replace('"sample tick %lu', '"sample v2 tick %lu'))
    monkeypatch.chdir(project)
    monkeypatch.delenv("FLEETFORGE_LAYER_PATH", raising=False)
    # An app the image does not carry cannot be updated alone: said before anything is sent.
    shutil.copytree(app, project / "layers" / "app" / "other")
    other = project / "layers" / "app" / "other" / "app.toml"
    other.write_text(other.read_text().replace('name = "sample"', 'name = "other"'))
    with pytest.raises(SystemExit):
        fleetforge(["deploy", "--app", "other", "--workspace", "apps", "--host", "root@127.0.0.1:1"])
    assert "does not carry app other" in capsys.readouterr().err
    slot = device.run("cat /run/fleetforge/booted-slot")
    boot_id = device.run("cat /proc/sys/kernel/random/boot_id")

    _deploy(device, project)
    assert "installed artifacts" in capsys.readouterr().out
    assert device.run("fleetforge-app status sample").strip() == (
        "sample: healthy, running /persist/artifacts/app-sample")
    assert "sample v2 tick" in device.run("fleetforge-app log sample | tail -n 1")

    # Broken on purpose: it crashes right after its first trace line.
    main.write_text(main.read_text().replace(
        "        fflush(stdout);\n", "        fflush(stdout);\n        *(volatile int *)0 = 1;\n"))
    with pytest.raises(SystemExit) as failed:
        _deploy(device, project)
    assert failed.value.code == 2
    assert "rolled back: artifact app-sample check failed" in capsys.readouterr().err
    # The previous version (v2) runs again, healthy; nothing rebooted.
    device.run("fleetforge-app check sample --wait 10")
    assert "sample v2 tick" in device.run("fleetforge-app log sample | tail -n 1")
    assert device.run("readlink /persist/artifacts/app-sample") != ""
    assert device.run("cat /run/fleetforge/booted-slot") == slot
    assert device.run("cat /proc/sys/kernel/random/boot_id") == boot_id
