"""The one table of typed layer settings: `[board]` and `[image]` keys, their parsers, defaults and help.

Validation, `fleetforge config --show` and docs/layers.md all read this table (as mkosi does).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def parse_size(value: Any) -> int:
    """'32M', '1G', '512K' or an int (bytes) -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", str(value), re.IGNORECASE)
    if not match:
        raise ValueError(f"expected a size such as 32M or 1G, got {value!r}")
    number, unit = match.groups()
    return int(number) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit.upper()]


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


def parse_str(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"expected a non-empty string, got {value!r}")


def parse_str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ValueError(f"expected a list of non-empty strings, got {value!r}")


def parse_seconds(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3600:
        return value
    raise ValueError(f"expected a whole number of seconds from 0 to 3600, got {value!r}")


def one_of(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value in choices:
            return value
        raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")

    return parse


@dataclass(frozen=True)
class SettingSpec:
    """One key of a layer.toml table."""

    key: str
    parse: Callable[[Any], Any]
    default: Any  # None = required
    help: str


BOARD_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("arch", one_of("aarch64", "x86_64", "arm"), None, "CPU architecture of the board"),
    SettingSpec("debian_arch", one_of("arm64", "amd64", "armhf"), None,
                "Debian architecture whose prebuilt packages the offline backend uses"),
    SettingSpec("compatible", parse_str, None, "string an update bundle must match exactly"),
    SettingSpec("qemu_system", parse_str, "", "QEMU system emulator (empty: not boot-testable)"),
    SettingSpec("qemu_machine", parse_str, "", "QEMU -M machine"),
    SettingSpec("qemu_cpu", parse_str, "", "QEMU -cpu model"),
    SettingSpec("qemu_devices", parse_str_list, (),
                "extra QEMU -device models the board has, e.g. [\"i6300esb\"] (its watchdog)"),
    SettingSpec("console", parse_str, "ttyS0", "kernel console device"),
    SettingSpec("kernel", one_of("debian", "source"), "debian",
                "debian: Debian's prebuilt kernel package; source: built with the layers' fragments"),
    SettingSpec("kernel_package", parse_str, "", "Debian kernel package (kernel = debian)"),
    SettingSpec("kernel_image", parse_str, "vmlinuz",
                "kernel file name prefix under /boot in the kernel package (kernel = debian)"),
    SettingSpec("kernel_defconfig", parse_str, "defconfig",
                "kernel make targets applied in order for the base config, e.g. "
                "'tinyconfig kvm_guest.config' (kernel = source)"),
    SettingSpec("device_trees", parse_str_list, (),
                "device tree blobs from the kernel package (paths below its dtb directory, e.g. "
                "broadcom/bcm2711-rpi-4-b.dtb), copied onto the boot partition for the firmware"),
    SettingSpec("boot_tested", parse_bool, False, "whether the image is boot-tested in QEMU"),
)

IMAGE_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("partition_table", one_of("gpt", "mbr"), "gpt", "partition table type"),
    SettingSpec("boot_fstype", one_of("ext4", "vfat"), "ext4", "boot partition file system"),
    SettingSpec("boot_size", parse_size, 64 << 20, "boot partition size"),
    SettingSpec("rootfs_format", one_of("squashfs", "ext4"), "squashfs", "root slot file system"),
    SettingSpec("rootfs_size", parse_size, 64 << 20, "size of each root slot (A and B)"),
    SettingSpec("persist_size", parse_size, 32 << 20, "persistent data partition size"),
    SettingSpec("watchdog_timeout", parse_seconds, 120,
                "seconds a boot of this image may take, from the initramfs arming the board's "
                "watchdog to the boot's commit decision, before the watchdog resets the board and "
                "the previous slot boots (0: no watchdog; docs/ab-boot.md)"),
)

LAYER_KEYS = {"description", "depends", "board", "image"}


@dataclass(frozen=True)
class Board:
    """The board a build targets (from the one board layer)."""

    name: str
    arch: str
    debian_arch: str
    compatible: str
    qemu_system: str
    qemu_machine: str
    qemu_cpu: str
    qemu_devices: tuple[str, ...]
    console: str
    kernel: str
    kernel_package: str
    kernel_image: str
    kernel_defconfig: str
    device_trees: tuple[str, ...]
    boot_tested: bool


@dataclass(frozen=True)
class ImageLayout:
    """Disk image settings, merged over all layers (sizes in bytes)."""

    partition_table: str
    boot_fstype: str
    boot_size: int
    rootfs_format: str
    rootfs_size: int
    persist_size: int
    watchdog_timeout: int
