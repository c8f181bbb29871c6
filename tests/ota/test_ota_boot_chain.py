"""The boot chain on the real image (docs/ab-boot.md), through signed updates: a release that
cannot start, one that hangs, and one that changes only the kernel.

One VM (QEMU aarch64, TCG) runs the scenarios in order. Reboots and watchdog resets restart the
guest inside the same QEMU process, so every return to the old slot is the device's own doing:
no power cycle (each test asserts QEMU was started once).
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetforge.errors import UserError
from fleetforge.tools import run_tool
from images.slot_boot import SLOT_BOOT_DIR, boot_id, install_slot_boot
from images.assemble import pack_slot_image
from ota import client, keys
from ota.bundle import Bundle, create_bundle, open_bundle
from ota.client import SshOptions
from fleetforge.ssh import Target

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

LAYERS = "qemu-aarch64,core/minimal,feature/ota"
SEGMENT = 1 << 20
HANG_WATCHDOG_S = 20  # the hanging release's own [image] watchdog_timeout
TRIAL_FAILED = "rolled back: trial boot of slot B did not come up"
# The stand-in for a kernel fix: Debian's kernel with its version string changed (`uname -v`).
# Building a real second kernel takes hours here; this one is a different binary that boots.
KERNEL_VERSION_OLD, KERNEL_VERSION_NEW = b"#1 SMP Debian", b"#2 SMP Debian"


@dataclass(frozen=True)
class ChainBundles:
    factory: Bundle     # what both slots hold: the delta base the device proves it runs
    no_init: Bundle     # signed, verified, and without /sbin/init
    hangs: Bundle       # its first init script never returns; a 20 s watchdog
    new_kernel: Bundle  # the same root filesystem with another kernel binary


@pytest.fixture(scope="module")
def ota_image(tmp_path_factory: pytest.TempPathFactory, ota_keys: Path):
    """The QEMU image with feature/ota, trusting this session's signing key, version 1.0.0."""
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 is not installed")
    from image_builds import build_once

    return build_once(LAYERS, "boot-chain", tmp_path_factory.mktemp("boot-chain-ws"),
                      ota_keys=ota_keys, overrides=("image.version=1.0.0",))


@pytest.fixture(scope="module")
def chain_bundles(ota_image, ota_keys: Path, tmp_path_factory: pytest.TempPathFactory) -> ChainBundles:
    base = tmp_path_factory.mktemp("boot-chain")
    workspace = ota_image.workspace
    tree = base / "tree"
    run_tool(["unsquashfs", "-q", "-d", tree, workspace.images_dir / "rootfs.squashfs"],
             debian_package="squashfs-tools")
    key = keys.load_private(ota_keys)

    def signed(name: str, image: Path, version: str, verity: str) -> Bundle:
        path = create_bundle(image, base / f"{name}.ffota", compatible=ota_image.manifest.board.compatible,
                             version=version, signing_key=key, segment_size=SEGMENT, verity=verity)
        return open_bundle(path, trusted_keys_dir=ota_keys)

    def bundle(name: str, version: str) -> Bundle:
        image = base / f"{name}.img"
        record = pack_slot_image(tree, image, rootfs_format="squashfs", rootfs_size=64 << 20,
                                 log_file=base / "pack.log")
        return signed(name, image, version, record.render())

    factory = signed("factory", workspace.images_dir / "rootfs.squashfs", "1.0.0",
                     ota_image.manifest.extra["verity"])

    init = tree / "sbin" / "init"
    target = init.readlink()
    init.unlink()
    no_init = bundle("no-init", "2.0.0")
    init.symlink_to(target)

    hang = tree / "etc" / "init.d" / "S00hang"
    hang.write_text("#!/bin/sh\necho 'S00hang: this release hangs here'\nwhile :; do sleep 1; done\n")
    hang.chmod(0o755)
    timeout_file = tree / SLOT_BOOT_DIR / "watchdog-timeout"
    normal_timeout = int(timeout_file.read_text())
    timeout_file.write_text(f"{HANG_WATCHDOG_S}\n")
    hangs = bundle("hangs", "2.1.0")
    hang.unlink()

    kernel = (workspace.images_dir / "vmlinuz").read_bytes()
    assert kernel.count(KERNEL_VERSION_OLD) == 2  # the banner and `uname -v`
    patched = base / "vmlinuz-new"
    patched.write_bytes(kernel.replace(KERNEL_VERSION_OLD, KERNEL_VERSION_NEW))
    cmdline = ota_image.manifest.kernel_cmdline
    install_slot_boot(tree, kernel_image=patched, initramfs=workspace.images_dir / "initramfs.img",
                      cmdline=cmdline, identity=boot_id(patched, cmdline, workspace.build_dir / "initramfs"),
                      watchdog_timeout=normal_timeout)
    new_kernel = bundle("new-kernel", "3.0.0")
    return ChainBundles(factory, no_init, hangs, new_kernel)


@dataclass
class Vm:
    device: object  # ota_qemu.QemuDevice
    options: SshOptions
    target: Target

    def shell(self, command: str) -> str:
        with self.options.connect(self.target) as conn:
            result = conn.run(["sh", "-c", command])
        assert result.status == 0, result.stderr
        return result.stdout

    def console_since(self, offset: int) -> str:
        return self.device.console.read_bytes()[offset:].decode("utf-8", "replace")


@pytest.fixture(scope="module")
def vm(ota_image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vm]:
    from ota_qemu import QemuDevice

    workdir = tmp_path_factory.mktemp("chain-vm")
    device = QemuDevice(ota_image.workspace, workdir, guest_reboots=True)
    device.start()
    device.wait_ready()
    options = SshOptions(identity=ota_image.workspace.ssh_key, known_hosts=workdir / "known_hosts",
                         timeout=30, activate_timeout=300, trust_new_host=True)
    yield Vm(device, options, Target("127.0.0.1", device.port))
    device.remove()


def _deploy_and_wait(vm: Vm, bundle: Bundle, base: Bundle) -> tuple[client.DeployResult, str]:
    """Deploy, then wait for the boot the deploy ended in to print FLEETFORGE_READY: S99ready
    prints it after the boot step settled, and the client may see that settling first."""
    boots = len(vm.device.boots)
    offset = vm.device.console.stat().st_size
    result = client.deploy(vm.target, vm.options, bundle, show_progress=False, boot_timeout=300,
                           bases=(base,))
    vm.device.wait_boots(boots + 1)
    return result, vm.console_since(offset)


def test_a_signed_release_without_init_is_refused_and_the_old_slot_boots(vm: Vm, chain_bundles) -> None:
    boots = len(vm.device.boots)
    result, console = _deploy_and_wait(vm, chain_bundles.no_init, chain_bundles.factory)
    assert (result.ok, result.message) == (False, TRIAL_FAILED)
    assert "FLEETFORGE_SLOT_REFUSED slot=B: it has no /sbin/init" in console
    assert vm.device.boots[boots:] == ["A"]  # back on A in the same power-on, no shell
    assert vm.device.starts == 1
    status = client.status(vm.target, vm.options)
    assert (status.booted, status.boot_left["B"]) == ("A", 0)


def test_a_release_that_hangs_is_reset_by_the_watchdog_and_the_old_slot_boots(vm: Vm, chain_bundles) -> None:
    boots = len(vm.device.boots)
    started = time.monotonic()
    result, console = _deploy_and_wait(vm, chain_bundles.hangs, chain_bundles.factory)
    assert (result.ok, result.message) == (False, TRIAL_FAILED)
    trial = console.index("initramfs: booting slot B")
    assert f"the boot of slot B must settle within {HANG_WATCHDOG_S} s" in console[:trial]
    assert "S00hang: this release hangs here" in console[trial:]
    assert "initramfs: booting slot A" in console[trial:]  # the chooser again, after the reset
    assert vm.device.boots[boots:] == ["A"]
    assert vm.device.starts == 1
    assert time.monotonic() - started > HANG_WATCHDOG_S


def test_a_kernel_only_update_boots_its_own_kernel_and_rolls_back(vm: Vm, chain_bundles) -> None:
    old_kernel = vm.shell("uname -v").strip()
    assert old_kernel.startswith(KERNEL_VERSION_OLD.decode())
    result, console = _deploy_and_wait(vm, chain_bundles.new_kernel, chain_bundles.factory)
    assert result.ok, result.message
    assert "initramfs: starting slot B's own kernel" in console  # kexec: not the chooser's kernel
    assert vm.shell("uname -v").strip() == old_kernel.replace(KERNEL_VERSION_OLD.decode(),
                                                              KERNEL_VERSION_NEW.decode())
    cmdline = vm.shell("cat /proc/cmdline")
    assert "fleetforge.slot=B" in cmdline and "fleetforge.verity=1,4096,4096," in cmdline
    assert vm.shell("grep ' / ' /proc/mounts").startswith("/dev/mapper/root / squashfs ro")

    offset = vm.device.console.stat().st_size
    client.rollback(vm.target, vm.options, reboot=True)
    deadline = time.monotonic() + 240
    while True:
        try:
            if client.status(vm.target, vm.options).booted == "A":
                break
        except UserError:  # rebooting: no SSH for a while
            pass
        assert time.monotonic() < deadline, vm.console_since(offset)[-2000:]
        time.sleep(1)
    assert vm.shell("uname -v").strip() == old_kernel
    assert "fleetforge.slot=" not in vm.shell("cat /proc/cmdline")  # the chooser's own kernel
    assert "initramfs: booting slot A" in vm.console_since(offset)
    assert vm.device.starts == 1
