"""The parts of an image, as a backend hands them to the assembly engine (images/assemble.py).

A backend (offline: Debian packages; Buildroot: its output tree) produces only these; everything
made from them (initramfs, slot image, boot partition, boot state, disk, manifest) is assembled
in one place, so both backends end with the same layout.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from images.kernel import Kernel
from images.manifest import PackageRecord


@dataclass(frozen=True)
class BootFile:
    """One file the backend puts on the boot partition (firmware, a device tree)."""

    source: Path
    name: str  # its path on the boot partition


@dataclass(frozen=True)
class ImageParts:
    """Everything an image is assembled from."""

    backend: str  # "offline" or "buildroot": recorded in the manifest
    kernel: Kernel  # image, release and its lib/modules/<release>
    busybox: Path  # the busybox the initramfs runs (its libraries, if any, in initramfs_overlays)
    rootfs_tree: Path  # the finished root filesystem tree (images.assemble.finish_rootfs ran)
    rootfs_image: Path | None  # the tree packed by the backend; None: the engine packs it
    packages: tuple[PackageRecord, ...]  # what went into the image, with versions and roles
    boot_files: tuple[BootFile, ...] = ()
    # Where the backend has each of the board's [[board.bootloader]] files (by their `file`).
    bootloader: Mapping[str, Path] = field(default_factory=dict)
    initramfs_overlays: tuple[Path, ...] = ()  # the backend's files, applied before the layers'
    kernel_warnings: tuple[str, ...] = ()  # kernel options the layers asked for and did not get
