"""The other shipped boards: qemu-x86_64 builds and boots; pi4 builds an MBR SD-card image."""
from __future__ import annotations

import struct
import subprocess

import pytest

from images.qemu import BootedMachine

pytestmark = [pytest.mark.slow]


@pytest.mark.qemu
def test_x86_64_builds_boots_and_answers_ssh(build_workspace):
    result = build_workspace("qemu-x86_64,core/minimal", "x86")
    manifest = result.manifest
    assert manifest.board.arch == "x86_64"
    # Debian's generic kernel: the cloud one has no driver for the i6300esb watchdog.
    assert manifest.kernel_version.endswith("-amd64") and "cloud" not in manifest.kernel_version
    assert {p.arch for p in manifest.packages} == {"amd64", "all"}  # debconf (kexec-tools') is "all"
    machine = BootedMachine.start(result.workspace, timeout=240)
    try:
        assert machine.check.slot == "A"
        assert machine.run("uname -m").strip() == "x86_64"
    finally:
        machine.stop(power_off=True)


def test_pi4_builds_an_mbr_sd_card_image_with_a_fat_boot_partition(build_workspace):
    result = build_workspace("pi4,core/minimal", "pi4")
    images = result.workspace.images_dir
    assert result.manifest.board.boot_tested is False
    with open(images / "disk.img", "rb") as disk:
        mbr = disk.read(512)
    assert mbr[510:512] == b"\x55\xaa"
    entries = [struct.unpack_from("<B3xB3xII", mbr, 446 + 16 * i) for i in range(4)]
    assert [e[1] for e in entries] == [0x0C, 0x83, 0x83, 0x83]  # boot, rootfs_a, rootfs_b, persist
    assert entries[0][0] == 0x80  # bootable flag on the boot partition
    assert entries[1][3] == entries[2][3]  # both slots the same size
    listing = subprocess.run(["mdir", "-b", "-i", str(images / "boot.vfat"), "::"],
                             capture_output=True, text=True, check=True).stdout
    names = {line.rsplit("/", 1)[-1].lower() for line in listing.split()}
    assert {"vmlinuz", "initramfs.img", "bootstate", "cmdline.txt"} <= names
    modules = (result.workspace.build_dir / "initramfs/etc/fleetforge/modules.order").read_text()
    assert "/vfat.ko" in modules and "/sdhci-iproc.ko" in modules  # mmc_block is built in
