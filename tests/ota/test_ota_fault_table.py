"""The fault table (as Mender tests its state machine): every state x {error, kill -9, hang}.

Each case arms a one-shot fault on entering STATE, runs a deploy without reboot, then power-cycles
the loopback device until it settles. It asserts the outcome the state table promises (which slot
runs, the final state, the reported result), that the chain of states is one the table allows,
that the running slot's bytes are intact and /persist survived, and that a plain retry then
installs v2. The states of an artifact-only update (Switch, Check, Revert, and its Commit) have a
table of their own: the artifact's link, the hooks that ran, and a retry; so do the boot chain's
steps at the trial's power-on (watchdog, verity, kernel).
"""
from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from fleetforge.errors import UserError
from ota import client
from ota.bundle import Bundle
from fleetforge.ssh import Connection
from ota.loopback import BOOT_STEPS, LoopbackServer, start_openssh
from ota.states import chain_is_valid, states
from ota_testlib import ModelBundles, Rig, SmallImages, VerifiedImages, make_rig

FAULTS = ("error", "kill", "hang")
HANG_TIMEOUT = 1.0  # how long the boot-step runner waits before calling it a hang
FAILING_CHECK = "50-app-fails"
V1_FAILED_CHECK = f"rolled back: health check {FAILING_CHECK} failed"


@dataclass(frozen=True)
class Expect:
    """What must hold once the device has settled after a fault in a state."""

    health_fails: bool  # the trial boot's health check fails (to reach the rollback states)
    running: str        # version the booted slot holds
    state: str
    result: str         # substring of the reported result ("" = none yet)


TABLE = {
    "Download": Expect(False, "1.0.0", "Download", ""),  # resumable: kept across reboots
    "Verify": Expect(False, "1.0.0", "Idle", "failed: interrupted in Verify"),
    "Activate": Expect(False, "1.0.0", "Idle", "failed: interrupted in Activate"),
    "Reboot": Expect(False, "2.0.0", "Idle", "committed 2.0.0 on slot B"),
    "VerifyReboot": Expect(False, "1.0.0", "Idle",
                           "rolled back: device restarted during the health check"),
    "Commit": Expect(False, "1.0.0", "Idle",
                     "rolled back: device restarted before the commit was recorded"),
    "Idle": Expect(False, "2.0.0", "Idle", "committed 2.0.0 on slot B"),
    "Rollback": Expect(True, "1.0.0", "Idle", V1_FAILED_CHECK),
    "RollbackReboot": Expect(True, "1.0.0", "Idle", V1_FAILED_CHECK),
    "VerifyRollback": Expect(True, "1.0.0", "Idle", V1_FAILED_CHECK),
    "Failure": Expect(True, "1.0.0", "Idle", V1_FAILED_CHECK),
    "Cleanup": Expect(True, "1.0.0", "Idle", V1_FAILED_CHECK),
}


# Artifact-only updates (contract A): model 1.5.0 is installed, 1.6.0 is deployed.
@dataclass(frozen=True)
class ExpectArtifact:
    check_fails: bool   # the image's check hook for `model` fails (to reach Revert)
    running: str        # the model version /persist/artifacts/model points to once settled
    result: str


V2_CHECK_FAILED = "rolled back: artifact model check failed (exit 1)"  # final at once (contract A.1)
ARTIFACT_TABLE = {
    "Switch": ExpectArtifact(False, "1.5.0", "rolled back: interrupted in Switch"),
    "Check": ExpectArtifact(False, "1.5.0", "rolled back: interrupted in Check"),
    "Revert": ExpectArtifact(True, "1.5.0", V2_CHECK_FAILED),
    "Commit": ExpectArtifact(False, "1.6.0", "committed 1.6.0 (artifacts)"),
}


def test_fault_table_covers_every_state() -> None:
    assert set(TABLE) | set(ARTIFACT_TABLE) == set(states())


def _deploy_through_fault(rig: Rig, bundle: Bundle, fault: str) -> None:
    """Deploy (no reboot) while the armed fault fires. A hang is ended as a watchdog would end it:
    once the fault has fired, the device's processes are killed (the power cycle that follows
    does the same), so the client sees its link drop instead of waiting for its timeout."""
    def deploy() -> None:
        try:
            client.deploy(rig.target, rig.options, bundle, reboot=False, show_progress=False)
        except UserError:
            pass  # the fault hit the update the client runs

    worker = threading.Thread(target=deploy)
    worker.start()
    fired = rig.device.root / "fault"
    deadline = time.monotonic() + 60
    while worker.is_alive() and time.monotonic() < deadline:
        if fault == "hang" and not fired.exists():
            time.sleep(0.3)  # it hangs now
            rig.device.kill_processes()
            break
        time.sleep(0.05)
    worker.join(60)
    assert not worker.is_alive(), "the client never returned"


def _power_cycle(rig: Rig) -> None:
    try:
        rig.device.power_cycle(timeout=HANG_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass  # the boot step hung; the next power cycle kills it


def _settle(rig: Rig, conn: Connection) -> client.DeviceStatus:
    status = client.read_status(conn, rig.options)
    for _ in range(6):
        if status.state in ("Idle", "Download") and not rig.device.reboot_requested:
            break
        _power_cycle(rig)
        status = client.read_status(conn, rig.options)
    return status


def _version_of_running_slot(rig: Rig, images: SmallImages | VerifiedImages) -> str:
    data = rig.device.slot_bytes(rig.device.booted(), images.v1.stat().st_size)
    return {images.v1.read_bytes(): "1.0.0", images.v2.read_bytes(): "2.0.0"}.get(data, "corrupt")


def _power_cycle_until_settled(rig: Rig, conn: Connection, expect: Expect,
                               images: SmallImages | VerifiedImages, fault_file: str) -> None:
    """Power the device on until it settles; assert what the table promises."""
    _power_cycle(rig)
    settled = _settle(rig, conn)
    assert not (rig.device.root / fault_file).exists(), "the fault never fired"
    assert (settled.state, _version_of_running_slot(rig, images)) == (expect.state, expect.running)
    assert expect.result in settled.result
    assert chain_is_valid(settled.history), settled.history
    assert (rig.device.persist / "user-data.txt").read_text() == "robot calibration\n"


def _retry_installs_v2(rig: Rig, conn: Connection, bundle: Bundle,
                       images: SmallImages | VerifiedImages) -> None:
    """A plain retry (with a healthy system) always gets the device to v2."""
    client.deploy(rig.target, rig.options, bundle, reboot=False, show_progress=False)
    _power_cycle(rig)
    final = client.read_status(conn, rig.options)
    assert final.result.startswith("committed 2.0.0"), final
    assert _version_of_running_slot(rig, images) == "2.0.0"
    assert final.booted == final.committed


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory: pytest.TempPathFactory, client_key: Path) -> Iterator[LoopbackServer]:
    server = start_openssh(tmp_path_factory.mktemp("fault-sshd"), client_key)
    yield server
    server.stop()


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("state", list(TABLE))
def test_fault_in_state(state: str, fault: str, fast_path: Path, small_images: SmallImages,
                        ota_keys: Path, client_key: Path, fault_server: LoopbackServer) -> None:
    expect = TABLE[state]
    rig = make_rig(fast_path, "openssh", small_images.v1, ota_keys, client_key,
                   auto_reboot=False, server=fault_server)
    conn = rig.options.connect(rig.target)
    try:
        check = rig.device.health_dir / FAILING_CHECK
        if expect.health_fails:
            check.write_text("exit 1\n")
        rig.device.set_fault(f"{state}:{fault}")
        _deploy_through_fault(rig, small_images.v2_bundle, fault)
        _power_cycle_until_settled(rig, conn, expect, small_images, "fault")
        if fault != "kill":
            return  # the retry below is the same for every kind of fault; run it once per state
        check.unlink(missing_ok=True)
        if expect.running != "2.0.0":
            _retry_installs_v2(rig, conn, small_images.v2_bundle, small_images)
        final = client.read_status(conn, rig.options)
        assert final.result.startswith("committed 2.0.0"), final
        assert final.booted == final.committed
    finally:
        conn.close()
        rig.device.kill_processes()


# The boot chain's steps at the trial boot's power-on (docs/ab-boot.md), on a device that boots
# verified slots: the loopback device runs the shipped bootchain.sh, and a fault stops the power-on
# at a step (ota/loopback.py POWER_ON). Arming the watchdog comes before the slot is chosen, so
# the trial keeps its try; after that, the trial's one try is spent and the old slot comes back.
TRIAL_DID_NOT_COME_UP = "rolled back: trial boot of slot B did not come up"
BOOT_CHAIN_TABLE = {
    "watchdog": Expect(False, "2.0.0", "Idle", "committed 2.0.0 on slot B"),
    "verity": Expect(False, "1.0.0", "Idle", TRIAL_DID_NOT_COME_UP),
    "kernel": Expect(False, "1.0.0", "Idle", TRIAL_DID_NOT_COME_UP),
}


def test_boot_chain_table_covers_every_step() -> None:
    assert tuple(BOOT_CHAIN_TABLE) == BOOT_STEPS


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("step", list(BOOT_CHAIN_TABLE))
def test_fault_in_boot_chain_step(step: str, fault: str, fast_path: Path,
                                  verified_images: VerifiedImages, ota_keys: Path, client_key: Path,
                                  fault_server: LoopbackServer) -> None:
    expect = BOOT_CHAIN_TABLE[step]
    rig = make_rig(fast_path, "openssh", verified_images.v1, ota_keys, client_key,
                   auto_reboot=False, server=fault_server, verity=verified_images.v1_verity)
    rig.device.watchdog_s = HANG_TIMEOUT  # a power-on that hangs longer is reset
    conn = rig.options.connect(rig.target)
    try:
        installed = client.deploy(rig.target, rig.options, verified_images.v2_bundle, reboot=False,
                                  show_progress=False)
        assert installed.message == "installed; trial boot on next reboot"
        rig.device.set_boot_fault(f"{step}:{fault}")
        _power_cycle_until_settled(rig, conn, expect, verified_images, "boot-fault")
        if fault == "kill" and expect.running != "2.0.0":  # the refused slot is rewritten
            _retry_installs_v2(rig, conn, verified_images.v2_bundle, verified_images)
    finally:
        conn.close()
        rig.device.kill_processes()


def _install_model_hooks(rig: Rig) -> Path:
    """The image's hooks for artifact `model` (ARTIFACT_HOOKS_DIR/model): each call is logged."""
    hooks = rig.device.root / "etc" / "artifacts.d" / "model"
    hooks.mkdir(parents=True, exist_ok=True)
    log = rig.device.root / "hooks.log"
    (hooks / "activate").write_text(f'#!/bin/sh\necho "activate $ARTIFACT_DIR" >> {log}\n')
    (hooks / "activate").chmod(0o755)
    _model_check(rig, fails=False)
    with open(rig.device.conf, "a") as conf:
        conf.write("HEALTH_TIMEOUT=1\n")  # how long a failing check is retried
    return log


def _model_check(rig: Rig, *, fails: bool) -> None:
    check = rig.device.root / "etc" / "artifacts.d" / "model" / "check"
    check.write_text(f"#!/bin/sh\nexit {int(fails)}\n")
    check.chmod(0o755)


def _model_version(rig: Rig) -> str:
    meta = rig.device.persist / "artifacts" / "model" / ".fleetforge-artifact"
    fields = dict(line.split(" ", 1) for line in meta.read_text().splitlines())
    return fields["version"]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("state", list(ARTIFACT_TABLE))
def test_artifact_fault_in_state(state: str, fault: str, fast_path: Path, small_images: SmallImages,
                                 model_bundles: ModelBundles, ota_keys: Path, client_key: Path,
                                 fault_server: LoopbackServer) -> None:
    expect = ARTIFACT_TABLE[state]
    rig = make_rig(fast_path, "openssh", small_images.v1, ota_keys, client_key,
                   auto_reboot=False, server=fault_server)
    conn = rig.options.connect(rig.target)
    try:
        log = _install_model_hooks(rig)
        assert client.deploy(rig.target, rig.options, model_bundles.v1, show_progress=False).ok
        _model_check(rig, fails=expect.check_fails)
        v1_dir = str((rig.device.persist / "artifacts" / "model").resolve())
        rig.device.set_fault(f"{state}:{fault}")
        _deploy_through_fault(rig, model_bundles.v2, fault)
        _power_cycle(rig)
        settled = _settle(rig, conn)

        assert not (rig.device.root / "fault").exists(), "the fault never fired"
        assert (settled.state, _model_version(rig)) == ("Idle", expect.running)
        assert expect.result in settled.result, settled.result
        assert chain_is_valid(settled.history), settled.history
        store = rig.device.persist / "artifacts" / ".store"
        assert len(list(store.iterdir())) == 1  # the version not in use is gone
        assert not (rig.device.state_dir / "artifacts.previous").exists()
        if expect.running == "1.5.0" and state != "Switch":
            # Switched back after the new version's activate ran: the old one is activated again.
            assert log.read_text().splitlines()[-1] == f"activate {v1_dir}"
        if fault != "kill":
            return
        _model_check(rig, fails=False)
        retry = client.deploy(rig.target, rig.options, model_bundles.v2, show_progress=False)
        assert retry.ok and _model_version(rig) == "1.6.0", retry.message
    finally:
        conn.close()
        rig.device.kill_processes()
