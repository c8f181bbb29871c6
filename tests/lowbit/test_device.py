"""On the booted QEMU image (aarch64, with feature/models): the cross-compiled runner checks a
model in the guest, and a model sent as a signed OTA artifact is committed only when the device
reproduces its golden outputs bit for bit; otherwise the old model stays (contract A).

One image (the default layers plus feature/models, trusting this session's OTA key) is built and
booted once for the module."""
from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from image_builds import build_once
from lowbit_testlib import SMALL, make

from fleetforge.cli import main
from fleetforge.ssh import Target
from images.manifest import load_manifest
from images.qemu import BootedMachine
from lowbit.deploy import model_bundle
from lowbit.pipeline import GOLDEN_OUTPUT, MODEL_FILE, write_model_dir
from ota import client, keys
from ota.bundle import open_bundle
from ota.client import SshOptions

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

LAYERS = "qemu-aarch64,core/minimal,feature/ota,feature/models"


@dataclass
class Device:
    machine: object
    workspace: object
    options: SshOptions
    target: Target
    keys: Path

    def shell(self, command: str, stdin: bytes = b"") -> tuple[int, str]:
        with self.options.connect(self.target) as conn:
            result = conn.run(["sh", "-c", command], stdin=stdin, timeout=120)
        return result.status, result.stdout.decode() if isinstance(result.stdout, bytes) else result.stdout


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 is not installed")
    
    base = tmp_path_factory.mktemp("lowbit-device")
    key_dir = base / "keys"
    keys.keygen(key_dir)
    built = build_once(LAYERS, "models", base / "ws", ota_keys=key_dir)  # the image trusts key_dir
    machine = BootedMachine.start(built.workspace, timeout=240)
    try:
        options = SshOptions(identity=built.workspace.ssh_key, known_hosts=base / "known_hosts",
                             trust_new_host=True, timeout=30, activate_timeout=300)
        yield Device(machine, built.workspace, options,
                     Target("127.0.0.1", machine.check.ssh_port), key_dir)
    finally:
        machine.stop(power_off=False)


def _model_dir(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model, shape = SMALL["digits"]()
    compiled = make(f"digits{seed}", model, shape)
    images = torch.rand(3, *shape, generator=torch.Generator().manual_seed(seed))
    return write_model_dir(path, compiled.blob, images)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_runner_checks_a_model_in_the_guest(device: Device, tmp_path: Path) -> None:
    model = _model_dir(tmp_path / "m", seed=1)
    status, out = device.shell("mkdir -p /tmp/m/golden && cat > /tmp/m/model.lbit", (model / MODEL_FILE).read_bytes())
    assert status == 0
    for name in ("golden/input.bin", "golden/output.bin"):
        assert device.shell(f"cat > /tmp/m/{name}", (model / name).read_bytes())[0] == 0
    status, out = device.shell("lowbit-run --check /tmp/m/model.lbit /tmp/m/golden/input.bin /tmp/m/golden/output.bin")
    assert status == 0 and "bit-exact (neon kernels)" in out


def test_deploy_commits_a_model_that_checks(device: Device, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`fleetforge model.deploy` (the console script's main, in this process) to the booted image."""
    model = _model_dir(tmp_path / "digits-w2", seed=2)
    monkeypatch.setenv("FLEETFORGE_WORKSPACES", str(device.workspace.root.parent))
    monkeypatch.setenv("FLEETFORGE_OTA_KEYS", str(device.keys))
    main(["model.deploy", "--host", f"root@127.0.0.1:{device.target.port}", "--model", str(model),
          "--workspace", device.workspace.name, "--version", "1.0.0",
          "--identity", str(device.options.identity),
          "--known-hosts", str(device.options.known_hosts), "--trust-new-host"])  # raises on failure
    status, out = device.shell("sha256sum /persist/artifacts/model/model.lbit")
    assert status == 0 and out.split()[0] == _sha(model / MODEL_FILE)
    installed = {a.name: a for a in client.status(device.target, device.options).artifacts}
    assert installed["model"].version == "1.0.0"


def test_mismatch_keeps_the_old_model(device: Device, tmp_path: Path) -> None:
    """A model whose outputs on the device differ from its golden vectors (here: golden outputs
    off by one, as a miscompiled or tampered model would be) is rolled back, not committed."""
    status, before = device.shell("sha256sum /persist/artifacts/model/model.lbit")
    assert status == 0
    model = _model_dir(tmp_path / "digits-bad", seed=3)
    golden = np.frombuffer((model / GOLDEN_OUTPUT).read_bytes(), "<i4").copy()
    golden[0] += 1
    (model / GOLDEN_OUTPUT).write_bytes(golden.tobytes())
    compatible = open_compatible(device)
    path = model_bundle(model, tmp_path / "bad.ffota", compatible=compatible, keys=device.keys,
                        version="2.0.0")
    started = time.monotonic()
    result = client.deploy(device.target, device.options, open_bundle(path, trusted_keys_dir=device.keys),
                           show_progress=False)
    assert not result.ok and "check failed (exit 1)" in result.message
    # A mismatch is final (contract A.1): no retries until the 60 s HEALTH_TIMEOUT.
    assert time.monotonic() - started < 50
    status, after = device.shell("sha256sum /persist/artifacts/model/model.lbit")
    assert status == 0 and after == before
    installed = {a.name: a for a in client.status(device.target, device.options).artifacts}
    assert installed["model"].version == "1.0.0"  # the committed model of the previous test


def open_compatible(device: Device) -> str:
    return load_manifest(device.workspace.manifest_path).board.compatible
