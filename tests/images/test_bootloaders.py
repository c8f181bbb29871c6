"""Boards' bootloaders as data ([[board.bootloader]]): raw images at their offsets, partitions of
their own, files on the boot partition; checked in the genimage layout and, for every shipped
board that has raw bootloader images, in its real built disk image read back byte by byte."""
from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest

from checkout import LAYERS_DIR
from fleetforge.errors import UserError
from images.genimage import DiskLayout, RawImage, genimage_config, run_genimage
from images.layers import load_all_layers, load_config

MiB = 1 << 20
RAW_BOARDS = sorted(layer.name for layer in load_all_layers(LAYERS_DIR)
                    if any(e.offset is not None
                           for e in layer.settings.get("board", {}).get("bootloader", ())))


def _gpt(disk: Path) -> dict[str, tuple[int, int, int]]:
    """name -> (first byte, last byte, attributes) of every GPT partition."""
    with open(disk, "rb") as handle:
        data = handle.read(1 << 16)
    assert data[512:520] == b"EFI PART"
    entry_lba, count, size = struct.unpack_from("<QII", data, 512 + 72)
    found = {}
    for i in range(count):
        entry = data[entry_lba * 512 + i * size:entry_lba * 512 + (i + 1) * size]
        first, last, attributes = struct.unpack_from("<QQQ", entry, 32)
        if first:
            found[entry[56:128].decode("utf-16-le").rstrip("\0")] = (first * 512, last * 512 + 511,
                                                                    attributes)
    return found


def _read(disk: Path, offset: int, size: int) -> bytes:
    with open(disk, "rb") as handle:
        handle.seek(offset)
        return handle.read(size)


def test_raw_images_come_first_outside_the_table_and_boot_can_start_later():
    layout = DiskLayout("gpt", "ext4", 8 * MiB, 8 * MiB, 4 * MiB, "rootfs.squashfs",
                        bootloaders=(RawImage("idbloader.img", 32 << 10),
                                     RawImage("u-boot.itb", 8 * MiB)),
                        boot_offset=16 * MiB)
    text = genimage_config(layout)
    raw = text.index("partition raw-idbloader-img {")
    assert raw < text.index("partition raw-u-boot-itb {") < text.index("partition boot {")
    assert text.count("in-partition-table = false") == 2
    assert "offset = 32K" in text and "offset = 8M" in text and "offset = 16M" in text
    assert text.count("bootable = true") == 1  # the boot partition: U-Boot's distro boot scans it


def test_a_bootloader_partition_of_its_own_needs_gpt():
    own = (RawImage("loader.bin", 32 << 10, partition="loader1"),)
    with pytest.raises(UserError, match="needs partition_table = \"gpt\""):
        genimage_config(DiskLayout("mbr", "vfat", MiB, MiB, MiB, "r", bootloaders=own))
    with pytest.raises(UserError, match="is an A/B partition name"):
        genimage_config(DiskLayout("gpt", "ext4", MiB, MiB, MiB, "r",
                                   bootloaders=(RawImage("x.bin", partition="rootfs_a"),)))


def test_genimage_writes_raw_and_partitioned_bootloaders_where_the_layout_says(tmp_path):
    inputs, boot = tmp_path / "in", tmp_path / "boot"
    inputs.mkdir()
    boot.mkdir()
    (boot / "bootstate").write_text("BOOT_ORDER=A B\n")
    payloads = {name: bytes([n + 1]) * (100_000 + n) for n, name in
                enumerate(("spl.img", "uboot.itb", "env.bin", "rootfs.squashfs"))}
    for name, data in payloads.items():
        (inputs / name).write_bytes(data)
    layout = DiskLayout("gpt", "ext4", 2 * MiB, MiB, MiB, "rootfs.squashfs",
                        bootloaders=(RawImage("spl.img", 32 << 10), RawImage("uboot.itb", 2 * MiB),
                                     RawImage("env.bin", partition="uboot-env")))
    disk = run_genimage(layout, boot_dir=boot, input_dir=inputs, output_dir=tmp_path / "out",
                        work_dir=tmp_path / "work", log_file=tmp_path / "log")
    assert _read(disk, 32 << 10, len(payloads["spl.img"])) == payloads["spl.img"]
    assert _read(disk, 2 * MiB, len(payloads["uboot.itb"])) == payloads["uboot.itb"]
    parts = _gpt(disk)
    assert list(parts) == ["uboot-env", "boot", "rootfs_a", "rootfs_b", "persist"]
    env_start = parts["uboot-env"][0]
    assert env_start >= 2 * MiB + len(payloads["uboot.itb"])  # after the raw image it follows
    assert _read(disk, env_start, len(payloads["env.bin"])) == payloads["env.bin"]
    assert parts["boot"][2] & 4  # legacy BIOS bootable: U-Boot's distro boot looks there first


@pytest.mark.slow
@pytest.mark.parametrize("board", RAW_BOARDS)
def test_shipped_boards_bootloaders_sit_at_their_offsets_in_the_built_disk(build_workspace, board):
    result = build_workspace(f"{board},core/minimal", board.replace("/", "-"))
    images, config_board = result.workspace.images_dir, result.manifest.board
    disk = images / "disk.img"
    raw = [e for e in config_board.bootloader if e.offset is not None]
    assert raw, f"{board} has no raw bootloader image"
    end = 0
    for entry in raw:
        shipped = (images / entry.file).read_bytes()  # the artifact, from its Debian package
        assert _read(disk, entry.offset, len(shipped)) == shipped, entry.file
        end = max(end, entry.offset + len(shipped))
    boot_package = {p.name for p in result.manifest.packages if p.role == "boot"}
    assert {e.package for e in raw} <= boot_package
    parts = _gpt(disk)
    assert list(parts)[-4:] == ["boot", "rootfs_a", "rootfs_b", "persist"]
    assert min(start for start, _, _ in parts.values()) >= end  # nothing over a bootloader
    boot_offset = load_config(f"{board},core/minimal").image.boot_offset
    assert parts["boot"][0] == boot_offset or (not boot_offset and parts["boot"][0] >= end)
    # The board's boot files from templates (NAME.in) are rendered: no @VARIABLE@ is left.
    for path in (result.workspace.build_dir / "boot").rglob("*"):
        if path.is_file() and path.stat().st_size < 65536:
            assert not re.search(rb"@[A-Z_]+@", path.read_bytes()), path
    listing = subprocess.run(["debugfs", "-R", "ls -p /", str(images / "boot.ext4")],
                             capture_output=True, text=True, check=True).stdout
    names = {line.split("/")[5] for line in listing.splitlines() if line.count("/") >= 6}
    assert {"vmlinuz", "initramfs.img", "bootstate"} <= names
    assert {Path(d).name for d in config_board.device_trees} <= names
