"""The parts of an image, read from Buildroot's output (BINARIES_DIR, TARGET_DIR, `make show-info`)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from fleetforge.errors import UserError
from images.assemble import slot_image_name
from images.debian import DebPackage
from images.kernel import Kernel
from images.layers import MergedConfig
from images.manifest import PackageRecord
from images.parts import BootFile, ImageParts
from images.programs import copy_programs

KERNEL_IMAGES = ("Image", "bzImage", "zImage")
SHOW_INFO_FILE = "fleetforge-show-info.json"  # written into BASE_DIR by the backend before `make`


def buildroot_kernel(binaries: Path, target: Path, version: str) -> Kernel:
    image = next((binaries / n for n in KERNEL_IMAGES if (binaries / n).is_file()), None)
    if image is None:
        raise UserError(f"Buildroot built no kernel image ({', '.join(KERNEL_IMAGES)})",
                        where=str(binaries))
    releases = sorted(p.name for p in (target / "lib" / "modules").glob("*") if p.is_dir())
    if len(releases) != 1:
        raise UserError(f"expected one kernel under lib/modules, found {releases or 'none'} "
                        "(the kernel needs CONFIG_MODULES=y)", where=str(target))
    package = DebPackage("linux (Buildroot)", version, "", image)
    return Kernel(package=package, version=releases[0], image=image,
                  modules_root=target / "lib" / "modules" / releases[0])


def busybox_library_overlay(target: Path, work: Path) -> Path:
    """Buildroot's busybox is dynamically linked: an initramfs overlay with the libraries it needs
    (and the interpreter at the exact path the kernel loads it from)."""
    overlay = work / "initramfs-libs"
    shutil.rmtree(overlay, ignore_errors=True)
    copy_programs(["/bin/busybox"], target, overlay)
    return overlay


def package_records(show_info: dict, arch: str) -> tuple[PackageRecord, ...]:
    """The target packages Buildroot built, with versions (the kernel's role is kernel)."""
    return tuple(PackageRecord(name, str(info.get("version", "")), arch,
                               "kernel" if name == "linux" else "rootfs")
                 for name, info in sorted(show_info.items())
                 if info.get("type") == "target" and info.get("virtual") is not True)


def boot_files(binaries: Path) -> tuple[BootFile, ...]:
    """The device trees Buildroot built, for the boot partition."""
    return tuple(BootFile(dtb, dtb.name) for dtb in sorted(binaries.glob("*.dtb")))


def buildroot_parts(config: MergedConfig, binaries: Path, target: Path, base_dir: Path, *,
                    packed: bool = True) -> ImageParts:
    """The image's parts from a Buildroot build: after it packed the root filesystem (post-image),
    or, with `packed` False, before (post-build: the kernel and the target tree are done)."""
    info_path = base_dir / SHOW_INFO_FILE
    show_info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    version = show_info.get("linux", {}).get("version", "unknown")
    rootfs_image = binaries / slot_image_name(config) if packed else None
    if rootfs_image is not None and not rootfs_image.is_file():
        raise UserError(f"Buildroot built no {rootfs_image.name} (enable BR2_TARGET_ROOTFS_"
                        f"{config.image.rootfs_format.upper()} in a layer)", where=str(binaries))
    return ImageParts(
        backend="buildroot",
        kernel=buildroot_kernel(binaries, target, version),
        busybox=target / "bin" / "busybox",
        rootfs_tree=target,
        rootfs_image=rootfs_image,
        packages=package_records(show_info, config.board.debian_arch),
        boot_files=boot_files(binaries),
        bootloader={entry.file: binaries / entry.buildroot_path
                    for entry in config.board.bootloader},
        initramfs_overlays=(busybox_library_overlay(target, base_dir / "fleetforge"),),
    )
