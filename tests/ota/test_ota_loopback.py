"""Deploys to loopback devices (OpenSSH and dropbear in front of a busybox-sh agent and file slots)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from fleetforge.errors import UserError
from ota import client
from fleetforge.ssh import ConnectionLost
from ota.states import chain_is_valid
from ota_testlib import Rig, SquashImages, install_stream, run_install

HAPPY_CHAIN = ["Download", "Verify", "Activate", "Reboot", "VerifyReboot", "Commit", "Idle"]


def test_happy_path_commits_and_keeps_persist(squash_rig: Rig, squash_images: SquashImages) -> None:
    rig, bundle = squash_rig, squash_images.v2_bundle
    before = client.status(rig.target, rig.options)
    assert (before.booted, before.state, before.slot_versions["A"]) == ("A", "Idle", "1.0.0")

    result = client.deploy(rig.target, rig.options, bundle, show_progress=False, boot_timeout=30)

    assert result.ok, result.message
    assert result.history == HAPPY_CHAIN and chain_is_valid(result.history)
    after = client.status(rig.target, rig.options)
    assert after.booted == "B" and after.committed == "B"
    assert after.slot_versions == {"A": "1.0.0", "B": "2.0.0"}
    assert after.boot_left["B"] == 3 and after.result == "committed 2.0.0 on slot B"
    assert rig.device.slot_bytes("B", bundle.manifest.rootfs_size) == squash_images.v2.read_bytes()
    assert rig.device.slot_bytes("A", 10_000) == squash_images.v1.read_bytes()[:10_000]
    assert (rig.device.persist / "user-data.txt").read_text() == "robot calibration\n"


def test_failing_health_check_rolls_back(squash_rig: Rig, squash_images: SquashImages) -> None:
    rig = squash_rig
    check = rig.device.health_dir / "50-app-starts"
    check.write_text("echo 'app crashed' >&2\nexit 1\n")

    result = client.deploy(rig.target, rig.options, squash_images.v2_bundle, show_progress=False,
                           boot_timeout=30)

    assert not result.ok
    assert result.message == "rolled back: health check 50-app-starts failed"
    assert result.history == ["Download", "Verify", "Activate", "Reboot", "VerifyReboot", "Rollback",
                              "RollbackReboot", "VerifyRollback", "Failure", "Cleanup", "Idle"]
    assert chain_is_valid(result.history)
    after = client.status(rig.target, rig.options)
    assert after.booted == "A" and after.committed == "A" and after.boot_left["B"] == 0
    assert after.slot_versions["B"] == "incomplete"
    assert rig.device.slot_bytes("A", 4096) == squash_images.v1.read_bytes()[:4096]


def test_dropped_connection_resumes_without_resending(squash_rig: Rig,
                                                      squash_images: SquashImages) -> None:
    rig, bundle = squash_rig, squash_images.v2_bundle
    half = bundle.manifest.rootfs_size // 2

    def cut(sent: int) -> None:
        if sent > half:
            raise client.LinkCut()

    with pytest.raises(ConnectionLost):
        client.deploy(rig.target, rig.options, bundle, show_progress=False, on_progress=cut)
    rig.device.wait_unlocked()  # the cut-off agent finishes the segment it holds, then exits
    mid = client.status(rig.target, rig.options)
    assert mid.state == "Download" and 0 < mid.seg_done < bundle.manifest.segment_count
    verified = mid.seg_done * bundle.manifest.segment_size

    result = client.deploy(rig.target, rig.options, bundle, show_progress=False, boot_timeout=30)

    assert result.ok and result.resumed_from == mid.seg_done
    assert result.sent_bytes == bundle.manifest.rootfs_size - verified
    assert rig.device.slot_bytes("B", bundle.manifest.rootfs_size) == squash_images.v2.read_bytes()


def test_delta_from_factory_slot_sends_under_ten_percent(squash_rig: Rig,
                                                         squash_images: SquashImages) -> None:
    rig, bundle = squash_rig, squash_images.v2_bundle
    result = client.deploy(rig.target, rig.options, bundle, show_progress=False, boot_timeout=30,
                           bases=(squash_images.v1_bundle,))
    assert result.ok, result.message
    assert 0 < result.sent_bytes < 0.10 * bundle.manifest.rootfs_size
    assert result.wire_bytes < 0.10 * bundle.manifest.rootfs_size
    assert rig.device.slot_bytes("B", bundle.manifest.rootfs_size) == squash_images.v2.read_bytes()


def _nothing_written(rig: Rig, v1: bytes) -> None:
    status = client.status(rig.target, rig.options)
    assert status.state == "Idle" and status.history == []
    assert status.boot_order == "A B" and status.boot_left == {"A": 3, "B": 3}
    assert rig.device.slot_bytes("B", len(v1)) == v1
    assert not (rig.device.state_dir / "pending.manifest").exists()


def test_wrong_compatible_refused_by_device(squash_rig: Rig, squash_images: SquashImages) -> None:
    rig = squash_rig
    (rig.device.root / "etc" / "compatible").write_text("other-board\n")
    with pytest.raises(UserError, match="bundle is for 'fleetforge-test-board' but this device is "
                                        "'other-board'"):
        client.deploy(rig.target, rig.options, squash_images.v2_bundle, show_progress=False)
    _nothing_written(rig, squash_images.v1.read_bytes())


def test_bad_signature_refused_by_device(squash_rig: Rig, squash_images: SquashImages,
                                         tmp_path: Path) -> None:
    # A client that skips its own check (or a forged manifest) must still be stopped on the device.
    rig, bundle = squash_rig, squash_images.v2_bundle
    forged = bundle.manifest_bytes.replace(b"version 2.0.0", b"version 9.0.0")
    answer = run_install(rig, install_stream(bundle, manifest=forged))
    assert answer.status != 0
    assert "bundle signature does not verify against any trusted key" in answer.stderr
    _nothing_written(rig, squash_images.v1.read_bytes())


def test_corrupted_segment_refused_by_device(squash_rig: Rig, squash_images: SquashImages) -> None:
    rig, bundle = squash_rig, squash_images.v2_bundle
    bad = bytearray(bundle.read(0, bundle.manifest.segment_size))
    bad[1000] ^= 0xFF
    answer = run_install(rig, install_stream(
        bundle, records=f"SEG 0 1\nL {len(bad)}\n".encode() + bytes(bad)))
    assert answer.status != 0
    assert "segment 0 does not match the signed manifest" in answer.stderr
    # The bytes went to the inactive slot, marked bad before the first one: never counted, never
    # booted, and activation is refused.
    status = client.status(rig.target, rig.options)
    assert (status.seg_done, status.boot_left["B"], status.boot_order) == (0, 0, "A B")
    answer = run_install(rig, install_stream(bundle))
    assert answer.status != 0 and "download incomplete (0 of" in answer.stderr


def test_unknown_host_key_refused_then_trusted_on_request(squash_rig: Rig) -> None:
    rig = squash_rig
    rig.options.known_hosts.write_text("")
    with pytest.raises(UserError, match="unknown host key ssh-ed25519 SHA256:.*--trust-new-host"):
        client.status(rig.target, rig.options)
    assert rig.options.known_hosts.read_text() == ""
    from dataclasses import replace
    trusting = replace(rig.options, trust_new_host=True)
    assert client.status(rig.target, trusting).state == "Idle"
    assert client.status(rig.target, rig.options).state == "Idle"  # now recorded


def test_changed_host_key_refused_even_with_tofu(squash_rig: Rig) -> None:
    rig = squash_rig
    fake = "AAAAC3NzaC1lZDI1NTE5AAAAIHxG3YvP5g3n6P4oF3bbZ0lYfTjJmW8vYqE2x2g7mQmN"
    rig.options.known_hosts.write_text(f"[127.0.0.1]:{rig.server.port} ssh-ed25519 {fake}\n")
    from dataclasses import replace
    with pytest.raises(UserError, match="HOST KEY CHANGED"):
        client.status(rig.target, replace(rig.options, trust_new_host=True))


def test_remote_arguments_are_quoted(squash_rig: Rig) -> None:
    rig = squash_rig
    with rig.options.connect(rig.target) as conn:
        answer = conn.run([rig.options.agent, "install", "1; touch /tmp/ff-ota-injected"])
    assert answer.status != 0 and "unknown option '1; touch /tmp/ff-ota-injected'" in answer.stderr
    assert not Path("/tmp/ff-ota-injected").exists()


def test_status_during_a_pending_trial_names_the_fallback(squash_rig: Rig,
                                                          squash_images: SquashImages) -> None:
    rig = squash_rig
    result = client.deploy(rig.target, rig.options, squash_images.v2_bundle, reboot=False,
                           show_progress=False)
    assert result.message == "installed; trial boot on next reboot"
    pending = client.status(rig.target, rig.options)
    assert (pending.state, pending.boot_order, pending.boot_left["B"]) == ("Reboot", "B A", 1)
    assert pending.committed == "A" and pending.booted == "A"
    cancelled = client.rollback(rig.target, rig.options, reboot=False)
    assert "trial of slot B cancelled" in cancelled
    after = client.status(rig.target, rig.options)
    assert (after.state, after.boot_order, after.boot_left["B"], after.committed) == \
        ("Idle", "A B", 0, "A")
    assert chain_is_valid(after.history)


def test_stalled_transfer_is_ended_so_a_new_client_can_resume(squash_rig: Rig,
                                                               squash_images: SquashImages) -> None:
    # A link that drops silently leaves the device's receive blocked on a read; the next client
    # must not be locked out forever.
    import time
    rig, bundle = squash_rig, squash_images.v2_bundle
    with open(rig.device.conf, "a") as conf:
        conf.write("STALL_TIMEOUT=2\n")
    stalled = rig.options.connect(rig.target)
    try:
        process = stalled.start([rig.options.agent, "install"])
        size = bundle.manifest.segment_length(0)
        process.write(install_stream(bundle)[:-len(b"END\n")]
                      + f"SEG 0 1\nL {size}\n".encode() + bundle.read(0, size // 2), 10)
        time.sleep(3.5)  # the blocked install's heartbeat is now older than STALL_TIMEOUT

        result = client.deploy(rig.target, rig.options, bundle, show_progress=False,
                               boot_timeout=30)
        assert result.ok, result.message
        log = (rig.device.state_dir / "log").read_text()
        assert "no progress for over 2 s" in log
        process.kill()
    finally:
        stalled.close()
    assert rig.device.slot_bytes("B", bundle.manifest.rootfs_size) == squash_images.v2.read_bytes()


def test_boot_step_writes_its_outcome_and_status_waits_for_it(rig: Rig) -> None:
    """The readiness signal (docs/ab-boot.md): "running" until the boot step has decided."""
    device = rig.device
    device.power_cycle(run_boot_step=False)
    assert client.status(rig.target, rig.options).boot_step == "running"
    assert not client.status(rig.target, rig.options).boot_settled
    done = device.run_agent("boot")
    assert done.returncode == 0, done.stderr
    assert device.boot_settled.read_text() == "good slot A\n"
    status = client.status(rig.target, rig.options)
    assert status.boot_step == "good slot A" and status.boot_settled


def test_a_boot_step_that_hangs_is_ended_by_its_time_limit(rig: Rig) -> None:
    device = rig.device
    with open(device.conf, "a") as conf:
        conf.write("BOOT_STEP_TIMEOUT=2\n")
    (device.health_dir / "60-hangs").write_text("sleep 8\n")
    device.power_cycle(run_boot_step=False)
    # Not through run_agent: the killed step's health check still holds its pipes until it ends.
    started = time.monotonic()
    done = subprocess.run([device.agent, "boot"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    assert time.monotonic() - started < 6  # ended after 2 s, not after the check's 8 s
    assert done.returncode != 0
    assert device.boot_settled.read_text().startswith(
        "timeout the boot step ran past BOOT_STEP_TIMEOUT (2 s)")
    assert client.status(rig.target, rig.options).boot_settled
