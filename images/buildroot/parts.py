"""The parts of an image, read from Buildroot's output (BINARIES_DIR, TARGET_DIR, `make show-info`)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from elftools.elf.elffile import ELFFile

from fleetforge.errors import UserError
from images.assemble import slot_image_name
from images.debian import DebPackage
from images.kernel import Kernel
from images.layers import MergedConfig
from images.manifest import PackageRecord
from images.parts import BootFile, ImageParts

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


def _elf_needs(binary: Path) -> tuple[str | None, list[str]]:
    """The ELF interpreter's path and the DT_NEEDED names of `binary`."""
    with open(binary, "rb") as handle:
        elf = ELFFile(handle)
        interpreter = None
        for segment in elf.iter_segments():
            if segment.header.p_type == "PT_INTERP":
                interpreter = segment.get_interp_name()
        dynamic = elf.get_section_by_name(".dynamic")
        needed = [] if dynamic is None else [
            tag.needed for tag in dynamic.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
    return interpreter, needed


def needed_libraries(binary: Path, target: Path) -> list[Path]:
    """The ELF interpreter and shared libraries `binary` needs, found in the target root."""
    found: list[Path] = []
    pending = [binary]
    while pending:
        interpreter, names = _elf_needs(pending.pop())
        if interpreter is not None:
            names.insert(0, Path(interpreter).name)
        for name in names:
            path = next((d / name for d in (target / "lib", target / "usr" / "lib")
                         if (d / name).exists()), None)
            if path is None:
                raise UserError(f"{binary.name} needs {name}, which is not in the target root",
                                where=str(target))
            if path not in found:
                found.append(path)
                pending.append(path.resolve())
    return found


def busybox_library_overlay(target: Path, work: Path) -> Path:
    """Buildroot's busybox is dynamically linked: an initramfs overlay with the libraries it needs."""
    overlay = work / "initramfs-libs"
    shutil.rmtree(overlay, ignore_errors=True)
    busybox = target / "bin" / "busybox"
    for library in needed_libraries(busybox, target):
        dest = overlay / library.relative_to(target)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library.resolve(), dest)
    # The kernel loads the interpreter by its exact path (/lib64/ld-linux-x86-64.so.2 on x86_64),
    # which Buildroot's target provides through a lib64 -> lib link. A copy, not a link: overlays
    # are copied with links followed, and an absolute link would resolve on the build host.
    interpreter, _ = _elf_needs(busybox)
    if interpreter is not None:
        dest = overlay / interpreter.lstrip("/")
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(overlay / "lib" / Path(interpreter).name, dest)
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


def buildroot_parts(config: MergedConfig, binaries: Path, target: Path, base_dir: Path) -> ImageParts:
    """The image's parts from a finished Buildroot build (before FleetForge's post-image step)."""
    info_path = base_dir / SHOW_INFO_FILE
    show_info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    version = show_info.get("linux", {}).get("version", "unknown")
    rootfs_image = binaries / slot_image_name(config)
    if not rootfs_image.is_file():
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
