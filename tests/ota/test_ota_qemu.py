"""The issue's scenarios on the real image: QEMU (aarch64) running busybox + dropbear + the agent.

One image is built per session with feature/ota (trusting this session's signing key) and one VM
runs through the scenarios in order; each test starts from whatever the previous one left, which
is what a device in the field sees. A guest reboot exits QEMU (-no-reboot); the harness powers it
on again on the same SSH port, so the client sees a device that rebooted.
"""
from __future__ import annotations

import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from fleetforge.errors import UserError
from fleetforge.tools import run_tool
from ota import client, keys
from ota.bundle import Bundle, create_bundle, open_bundle
from ota.client import SshOptions
from fleetforge.ssh import ConnectionLost, Target
from images.assemble import pack_slot_image

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

LAYERS = "qemu-aarch64,core/minimal,feature/ota"
SEGMENT = 1 << 20  # small segments so "half the transfer" spans several verified segments
# The random model the big bundles add: what their delta transfers send (the rest of the slot,
# kernel included, is copied from the booted slot), so the cuts below fall inside it.
MODEL_BYTES = 6 << 20
# A health check that passes once the test releases it (at most 50 s, under HEALTH_TIMEOUT), then
# says so on the console: the boot step is held open for as long as the test needs, at any load.
SLOW_CHECK_RELEASE = "/run/release-slow-check"
SLOW_CHECK_DONE = "FLEETFORGE_SLOW_CHECK_DONE"
SLOW_CHECK = (f"n=0; while [ ! -e {SLOW_CHECK_RELEASE} ] && [ $n -lt 100 ]; do sleep 0.5; n=$((n + 1)); done\n"
              f"echo {SLOW_CHECK_DONE} > /dev/console\n")


def _usable() -> str | None:
    if shutil.which("qemu-system-aarch64") is None:
        return "qemu-system-aarch64 is not installed"
    try:
        import images.build  # noqa: F401
    except ImportError:
        return "the image backend (images/) is not in this checkout"
    return None


@dataclass(frozen=True)
class QemuBundles:
    v1: Bundle
    v2: Bundle          # v1 with /etc/fleetforge/version changed
    v3_unhealthy: Bundle  # v2 plus a health check that fails
    big: Bundle         # v1 plus 6 MB of new data: a transfer with many segments
    big2: Bundle
    slow: Bundle        # big2 plus SLOW_CHECK
    foreign: Bundle     # for another board (wrong compatible)
    rogue: Bundle       # signed by a key the device does not trust
    revoked: Bundle     # signed by a key the image trusts and revokes
    older: Bundle       # older than the factory image (1.0.0)
    compatible: str


def _squash(tree: Path, out: Path) -> tuple[Path, str]:
    """A slot image of `tree` (as the build packs one: file system + dm-verity hash tree) and its
    verity record, which the bundle must carry for a device that boots verified slots."""
    record = pack_slot_image(tree, out, rootfs_format="squashfs", rootfs_size=64 << 20,
                             log_file=out.with_suffix(".log"))
    return out, record.render()


@pytest.fixture(scope="module")
def qemu_bundles(tmp_path_factory: pytest.TempPathFactory, ota_keys: Path) -> Iterator[tuple[QemuBundles, object]]:
    reason = _usable()
    if reason:
        pytest.skip(reason)
    from image_builds import build_once

    base = tmp_path_factory.mktemp("qemu-ota")
    # The image trusts this session's key, and an old key that is also revoked (keys/revoked/):
    # the build must ship the revocation, the device must honour it.
    image_keys = base / "image-keys"
    shutil.copytree(ota_keys, image_keys)
    old_keys = base / "old-keys"
    keys.keygen(old_keys)
    (image_keys / "old.pem").write_bytes((old_keys / keys.PUBLIC_NAME).read_bytes())
    keys.revoke(image_keys / "old.pem", image_keys)
    (image_keys / "old.pem").write_bytes((old_keys / keys.PUBLIC_NAME).read_bytes())
    built = build_once(LAYERS, "ota", base / "ws", ota_keys=image_keys,
                       overrides=("image.version=1.0.0",))
    compatible = built.manifest.board.compatible
    v1_path = built.workspace.images_dir / "rootfs.squashfs"
    tree = base / "tree"
    run_tool(["unsquashfs", "-q", "-d", tree, v1_path], debian_package="squashfs-tools")
    (tree / "etc/fleetforge/version").write_text("2.0.0\n")
    v2_path = _squash(tree, base / "v2.squashfs")
    (tree / "etc/fleetforge/health.d/50-app-starts").write_text("echo 'app failed' >&2\nexit 1\n")
    v3_path = _squash(tree, base / "v3.squashfs")
    (tree / "etc/fleetforge/health.d/50-app-starts").unlink()
    (tree / "etc/fleetforge/version").write_text("3.0.0\n")
    (tree / "usr/share/model.bin").write_bytes(random.Random(5).randbytes(MODEL_BYTES))
    big_path = _squash(tree, base / "big.squashfs")
    (tree / "etc/fleetforge/version").write_text("4.0.0\n")
    (tree / "usr/share/model.bin").write_bytes(random.Random(6).randbytes(MODEL_BYTES))
    big2_path = _squash(tree, base / "big2.squashfs")
    (tree / "etc/fleetforge/version").write_text("5.0.0\n")
    (tree / "etc/fleetforge/health.d/60-slow").write_text(SLOW_CHECK)
    slow_path = _squash(tree, base / "slow.squashfs")

    key = keys.load_private(ota_keys)
    rogue_keys = base / "rogue-keys"
    keys.keygen(rogue_keys)

    def make(name: str, slot: tuple[Path, str], version: str, *, compatible_: str = compatible,
             signer=key, trusted: Path = ota_keys) -> Bundle:
        rootfs, verity = slot
        out = create_bundle(rootfs, base / f"{name}.ffota",
                            compatible=compatible_, version=version, signing_key=signer,
                            segment_size=SEGMENT, verity=verity)
        return open_bundle(out, trusted_keys_dir=trusted)

    bundles = QemuBundles(
        v1=make("v1", (v1_path, built.manifest.extra["verity"]), "1.0.0"), v2=make("v2", v2_path, "2.0.0"),
        v3_unhealthy=make("v3", v3_path, "2.5.0"),
        big=make("big", big_path, "3.0.0"), big2=make("big2", big2_path, "4.0.0"),
        slow=make("slow", slow_path, "5.0.0"),
        foreign=make("foreign", v2_path, "2.0.0", compatible_="fleetforge-qemu-x86_64"),
        rogue=make("rogue", v2_path, "2.0.0", signer=keys.load_private(rogue_keys),
                   trusted=rogue_keys),
        revoked=make("revoked", v2_path, "2.0.0", signer=keys.load_private(old_keys),
                     trusted=old_keys),
        older=make("older", v2_path, "0.9.0"),
        compatible=compatible,
    )
    yield bundles, built.workspace


@dataclass
class Vm:
    device: object  # ota_qemu.QemuDevice
    options: SshOptions
    target: Target


@pytest.fixture(scope="module")
def vm(qemu_bundles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vm]:
    from ota_qemu import QemuDevice

    _, workspace = qemu_bundles
    workdir = tmp_path_factory.mktemp("vm")
    device = QemuDevice(workspace, workdir)
    device.start()
    device.wait_ready()
    options = SshOptions(identity=workspace.ssh_key, known_hosts=workdir / "known_hosts",
                         timeout=30, activate_timeout=300)
    yield Vm(device, options, Target("127.0.0.1", device.port))
    device.remove()


def _shell(vm: Vm, command: str) -> str:
    with vm.options.connect(vm.target) as conn:
        result = conn.run(["sh", "-c", command])
    assert result.status == 0, result.stderr
    return result.stdout


def test_qemu_refusals_write_nothing(vm: Vm, qemu_bundles, tmp_path: Path, ota_keys: Path) -> None:
    bundles, _ = qemu_bundles
    # Unknown host key: refused, and nothing recorded without the explicit flag.
    with pytest.raises(UserError, match="unknown host key ssh-ed25519"):
        client.status(vm.target, vm.options)
    assert not vm.options.known_hosts.exists() or vm.options.known_hosts.read_text() == ""
    before = client.status(vm.target, replace(vm.options, trust_new_host=True))  # TOFU, recorded
    assert before.booted == "A" and before.state == "Idle" and before.compatible == bundles.compatible
    _shell(vm, "echo 'wheel offsets 3 -2' > /persist/robot.conf && sync")

    with pytest.raises(UserError, match="bundle is for 'fleetforge-qemu-x86_64' but this device is"):
        client.deploy(vm.target, vm.options, bundles.foreign, show_progress=False)
    with pytest.raises(UserError, match="bundle signature does not verify against any trusted key"):
        client.deploy(vm.target, vm.options, bundles.rogue, show_progress=False)
    # The image shipped keys/revoked/ and records its version (before: no revocation in the image,
    # and a factory device read its version as 0.0.0, so any older release went in).
    with pytest.raises(UserError, match=r"bundle is signed by a revoked key \(old.pem\)"):
        client.deploy(vm.target, vm.options, bundles.revoked, show_progress=False)
    with pytest.raises(UserError, match=r"bundle version 0.9.0 is older than the running 1.0.0 "
                                        r"\(downgrade refused"):
        client.deploy(vm.target, vm.options, bundles.older, show_progress=False)
    assert _shell(vm, "cat /etc/fleetforge/version") == "1.0.0\n"
    assert before.slot_versions["A"] == "1.0.0"
    corrupted = tmp_path / "corrupted.ffota"
    data = bytearray(bundles.v2.path.read_bytes())
    data[bundles.v2.rootfs_offset + 5000] ^= 0x40
    corrupted.write_bytes(bytes(data))
    with pytest.raises(UserError, match="bundle is corrupted"):
        open_bundle(corrupted, trusted_keys_dir=ota_keys)
    after = client.status(vm.target, vm.options)
    assert (after.state, after.history, after.boot_order) == ("Idle", [], before.boot_order)
    # (A's tries may have been topped up meanwhile by the boot step's health check.)
    assert after.boot_left["B"] == before.boot_left["B"] == 3
    assert after.slot_versions == before.slot_versions


def test_qemu_happy_path_delta_commits_and_keeps_persist(vm: Vm, qemu_bundles) -> None:
    bundles, _ = qemu_bundles
    result = client.deploy(vm.target, vm.options, bundles.v2, show_progress=False,
                           boot_timeout=240, bases=(bundles.v1,))
    assert result.ok, result.message
    assert result.history == ["Download", "Verify", "Activate", "Reboot", "VerifyReboot", "Commit",
                              "Idle"]
    assert result.sent_bytes < 0.10 * bundles.v2.manifest.rootfs_size  # delta of a one-file change
    status = client.status(vm.target, vm.options)
    assert (status.booted, status.committed, status.slot_versions["B"]) == ("B", "B", "2.0.0")
    assert status.result == "committed 2.0.0 on slot B"
    assert vm.device.boots[-1] == "B"
    assert _shell(vm, "cat /etc/fleetforge/version") == "2.0.0\n"
    assert _shell(vm, "cat /persist/robot.conf") == "wheel offsets 3 -2\n"


def test_qemu_failing_health_check_rolls_back(vm: Vm, qemu_bundles) -> None:
    bundles, _ = qemu_bundles
    boots = len(vm.device.boots)
    result = client.deploy(vm.target, vm.options, bundles.v3_unhealthy, show_progress=False,
                           boot_timeout=300)
    assert not result.ok
    assert result.message == "rolled back: health check 50-app-starts failed"
    vm.device.wait_boots(boots + 2)
    assert vm.device.boots[boots:] == ["A", "B"]  # the trial, then back to the committed slot
    status = client.status(vm.target, vm.options)
    assert (status.booted, status.committed, status.slot_versions["B"]) == ("B", "B", "2.0.0")
    assert status.boot_left["A"] == 0 and status.slot_versions["A"] == "incomplete"
    assert _shell(vm, "cat /persist/robot.conf") == "wheel offsets 3 -2\n"


def test_qemu_dropped_connection_resumes(vm: Vm, qemu_bundles) -> None:
    bundles, _ = qemu_bundles
    bundle = bundles.big
    def cut(sent: int) -> None:
        if sent > MODEL_BYTES // 2:
            raise client.LinkCut()

    with pytest.raises(ConnectionLost):
        client.deploy(vm.target, vm.options, bundle, reboot=False, show_progress=False,
                      on_progress=cut)
    deadline = time.monotonic() + 60
    while True:  # the cut-off agent writes what it already holds, then exits
        mid = client.status(vm.target, vm.options)
        try:
            with vm.options.connect(vm.target) as conn:
                busy = conn.run(["sh", "-c", "test -d /run/fleetforge/ota/lock && "
                                 "kill -0 $(cat /run/fleetforge/ota/lock/pid)"]).status == 0
        except UserError:
            busy = True
        if not busy or time.monotonic() > deadline:
            break
        time.sleep(1)
    mid = client.status(vm.target, vm.options)
    assert mid.state == "Download" and 0 < mid.seg_done < bundle.manifest.segment_count
    result = client.deploy(vm.target, vm.options, bundle, show_progress=False, boot_timeout=240)
    assert result.ok, result.message
    assert result.resumed_from == mid.seg_done
    verified = mid.seg_done * bundle.manifest.segment_size
    assert result.sent_bytes <= bundle.manifest.rootfs_size - verified
    status = client.status(vm.target, vm.options)
    assert (status.booted, status.slot_versions["A"]) == ("A", "3.0.0")


def test_qemu_power_cut_during_slot_write(vm: Vm, qemu_bundles) -> None:
    bundles, _ = qemu_bundles
    bundle = bundles.big2
    boots = len(vm.device.boots)
    cut = {"done": False}

    def pull_the_plug(sent: int) -> None:
        if not cut["done"] and sent > MODEL_BYTES // 3:
            cut["done"] = True
            vm.device.power_cut()

    with pytest.raises(UserError):
        client.deploy(vm.target, vm.options, bundle, show_progress=False, reboot=False,
                      on_progress=pull_the_plug)
    assert cut["done"]
    vm.device.wait_boots(boots + 1)
    assert vm.device.boots[-1] == "A"  # the committed slot, not the half-written one
    status = client.status(vm.target, vm.options)
    assert status.booted == "A" and status.slot_versions["A"] == "3.0.0"
    with vm.options.connect(vm.target) as conn:
        digest = conn.run([vm.options.agent, "slot-hash", str(bundles.big.manifest.rootfs_size)])
    assert digest.stdout.strip() == bundles.big.manifest.rootfs_sha256  # slot A is intact

    result = client.deploy(vm.target, vm.options, bundle, show_progress=False, boot_timeout=240)
    assert result.ok, result.message
    status = client.status(vm.target, vm.options)
    assert (status.booted, status.committed, status.slot_versions["B"]) == ("B", "B", "4.0.0")
    assert _shell(vm, "cat /persist/robot.conf") == "wheel offsets 3 -2\n"


def test_qemu_readiness_and_boot_state_changes_wait_for_a_slow_boot_step(vm: Vm, qemu_bundles) -> None:
    """Issue 17: the console marker comes after the boot step (held open by SLOW_CHECK here) and
    says its outcome; a boot-state change made over SSH meanwhile waits for the agent's lock."""
    bundles, _ = qemu_bundles
    boots = len(vm.device.boots)
    trial = "A" if client.status(vm.target, vm.options).booted == "B" else "B"
    outcome: dict[str, client.DeployResult] = {}
    deploying = threading.Thread(target=lambda: outcome.update(result=client.deploy(
        vm.target, vm.options, bundles.slow, show_progress=False, boot_timeout=300)))
    deploying.start()
    try:
        deadline = time.monotonic() + 300
        while True:  # the trial boot is up (SSH answers) and its boot step is running
            assert time.monotonic() < deadline, "the trial boot never ran its boot step"
            try:
                status = client.status(vm.target, vm.options)
                if status.booted == trial and status.boot_step == "running":
                    break
            except UserError:
                pass  # rebooting
            time.sleep(0.5)
        # A user's change to the boot state while the agent decides: it waits for the agent's
        # lock, so when it returns the boot step's outcome is written (before: it returned at
        # once, and the agent's later decision overwrote it).
        change: dict[str, str] = {}
        changing = threading.Thread(target=lambda: change.update(out=_shell(
            vm, ". /usr/lib/fleetforge/bootstate.sh && bootstate_mark_good /boot/bootstate "
                f"{'B' if trial == 'A' else 'A'} && cat /run/fleetforge/boot-settled")))
        changing.start()
        changing.join(timeout=3)
        assert changing.is_alive(), change  # waiting for the boot step
        assert not vm.device.console.read_text(errors="replace").count(SLOW_CHECK_DONE)
        _shell(vm, f"touch {SLOW_CHECK_RELEASE}")
        changing.join(timeout=120)
        assert change["out"].startswith(f"committed 5.0.0 on slot {trial}"), change
    finally:
        deploying.join(timeout=400)
    assert outcome["result"].ok, outcome["result"].message
    vm.device.wait_boots(boots + 1)  # S99ready prints it after the boot step settled
    assert vm.device.boots[boots:] == [trial] and vm.device.outcomes[-1] == "committed"
    console = vm.device.console.read_text(errors="replace")
    assert console.count(SLOW_CHECK_DONE) == 1  # only this boot has the check
    assert console.index(SLOW_CHECK_DONE) < console.rindex("FLEETFORGE_READY")  # marker after it
    status = client.status(vm.target, vm.options)
    assert (status.booted, status.committed, status.boot_left[trial]) == (trial, trial, 3)
    assert status.boot_step == f"committed 5.0.0 on slot {trial}"


def test_invoke_bundle_packs_the_built_workspace(qemu_bundles, ota_keys: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from checkout import REPO_ROOT
    from images.manifest import load_manifest

    _, workspace = qemu_bundles
    env = {**os.environ, "FLEETFORGE_WORKSPACES": str(workspace.root.parent),
           "FLEETFORGE_OTA_KEYS": str(ota_keys)}
    done = subprocess.run([sys.executable, "-m", "invoke", "bundle", "--workspace", workspace.name,
                           "--version", "7.1.0"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    path = workspace.root / "bundles" / f"{workspace.name}-7.1.0.ffota"
    bundle = open_bundle(path, trusted_keys_dir=ota_keys)
    built = load_manifest(workspace.manifest_path)
    assert (built.image_version, built.security_version) == ("1.0.0", 0)  # --set image.version
    rootfs = built.artifact("rootfs.squashfs")
    assert bundle.manifest.compatible == built.board.compatible
    assert (bundle.manifest.rootfs_size, bundle.manifest.rootfs_sha256) == (rootfs.size, rootfs.sha256)
    assert bundle.manifest.version == "7.1.0" and bundle.manifest.chunks

    # Artifacts only: a model file and a file set, no root filesystem.
    (tmp_path / "model.tflite").write_bytes(b"\x1c\x00TFL3" * 1000)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "classes.txt").write_text("wheel\n")
    done = subprocess.run([sys.executable, "-m", "invoke", "bundle", "--workspace", workspace.name,
                           "--version", "7.2.0", "--no-rootfs",
                           "--artifact", f"model={tmp_path / 'model.tflite'}",
                           "--artifact", f"labels={tmp_path / 'labels'}"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    only = open_bundle(workspace.root / "bundles" / f"{workspace.name}-7.2.0.ffota",
                       trusted_keys_dir=ota_keys)
    assert only.manifest.rootfs_size == 0 and not only.manifest.segments
    assert [(a.name, a.kind, a.filename) for a in only.manifest.artifacts] == \
        [("model", "file", "model.tflite"), ("labels", "tree", "-")]
    assert only.manifest.artifacts[0].size == 6000
    (workspace.root / "bundles" / f"{workspace.name}-7.2.0.ffota").unlink()  # not a delta base
