"""Buildroot's post-image step: the A/B disk image and manifest from Buildroot's output.

Run by the generated board/fleetforge/post-image.sh (Buildroot passes BINARIES_DIR and exports
TARGET_DIR and BASE_DIR). It uses the offline backend's writers (initramfs, genimage, manifest),
so both backends end with the same files in workspaces/NAME/images/.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from elftools.elf.elffile import ELFFile

from fleetforge.errors import UserError, exit_on_user_error
from fleetforge.tools import run_tool
from images.build import INITIAL_BOOTSTATE
from images.debian import DebPackage
from images.genimage import DiskLayout, run_genimage
from images.initramfs import build_initramfs
from images.kernel import read_module_lists
from images.kernel_source.offline import SourceKernel
from images.layers import MergedConfig, load_config
from images.manifest import BoardRecord, Manifest, PackageRecord, describe_artifacts, write_manifest

KERNEL_IMAGES = ("Image", "bzImage", "zImage")
SHOW_INFO_FILE = "fleetforge-show-info.json"  # written by the backend before `make`


def _kernel(binaries: Path, target: Path, show_info: dict) -> SourceKernel:
    image = next((binaries / n for n in KERNEL_IMAGES if (binaries / n).is_file()), None)
    if image is None:
        raise UserError(f"Buildroot built no kernel image ({', '.join(KERNEL_IMAGES)})",
                        where=str(binaries))
    releases = sorted(p.name for p in (target / "lib" / "modules").glob("*") if p.is_dir())
    if len(releases) != 1:
        raise UserError(f"expected one kernel under lib/modules, found {releases or 'none'} "
                        "(the kernel needs CONFIG_MODULES=y)", where=str(target))
    version = show_info.get("linux", {}).get("version", "unknown")
    package = DebPackage("linux (Buildroot)", version, "", image)
    return SourceKernel(package=package, version=releases[0], image=image,
                        modules_root=target / "lib" / "modules" / releases[0])


def _needed_libraries(binary: Path, target: Path) -> list[Path]:
    """The ELF interpreter and shared libraries `binary` needs, found in the target root."""
    found: list[Path] = []
    pending = [binary]
    while pending:
        with open(pending.pop(), "rb") as handle:
            elf = ELFFile(handle)
            names: list[str] = []
            for segment in elf.iter_segments():
                if segment.header.p_type == "PT_INTERP":
                    names.append(Path(segment.get_interp_name()).name)
            dynamic = elf.get_section_by_name(".dynamic")
            if dynamic is not None:
                names += [tag.needed for tag in dynamic.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
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


def _busybox_overlay(target: Path, work: Path) -> Path:
    """Buildroot's busybox is dynamically linked: give the initramfs the libraries it needs."""
    overlay = work / "initramfs-libs"
    shutil.rmtree(overlay, ignore_errors=True)
    busybox = target / "bin" / "busybox"
    for library in _needed_libraries(busybox, target):
        dest = overlay / library.relative_to(target)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library.resolve(), dest)
    # The kernel loads the interpreter by its exact path (/lib64/ld-linux-x86-64.so.2 on x86_64),
    # which Buildroot's target provides through a lib64 -> lib link. A copy, not a link: overlays
    # are copied with links followed, and an absolute link would resolve on the build host.
    interpreter = _interpreter(busybox)
    if interpreter is not None:
        dest = overlay / interpreter.lstrip("/")
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(overlay / "lib" / Path(interpreter).name, dest)
    return overlay


def _interpreter(binary: Path) -> str | None:
    with open(binary, "rb") as handle:
        for segment in ELFFile(handle).iter_segments():
            if segment.header.p_type == "PT_INTERP":
                return segment.get_interp_name()
    return None


def assemble(config: MergedConfig, workspace: Path, binaries: Path, target: Path,
             base_dir: Path) -> Path:
    """Disk image, artifacts and manifest into `binaries`/fleetforge; return that folder."""
    info_path = base_dir / SHOW_INFO_FILE
    show_info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    work = base_dir / "fleetforge"
    out = binaries / "fleetforge"
    log = workspace / "logs" / "buildroot-post-image.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    kernel = _kernel(binaries, target, show_info)
    overlays = config.initramfs_overlays
    modules = kernel.module_closure(read_module_lists(overlays))
    build_initramfs(busybox=target / "bin" / "busybox", kernel_version=kernel.version,
                    modules=modules, overlays=(_busybox_overlay(target, work), *overlays),
                    tree=work / "initramfs", output=out / "initramfs.img")
    rootfs_name = f"rootfs.{config.image.rootfs_format}"
    if not (binaries / rootfs_name).is_file():
        raise UserError(f"Buildroot built no {rootfs_name} (enable BR2_TARGET_ROOTFS_"
                        f"{config.image.rootfs_format.upper()} in a layer)", where=str(binaries))
    shutil.copy2(binaries / rootfs_name, out / rootfs_name)
    cmdline = f"console={config.board.console} quiet panic=5"
    boot = work / "boot"
    shutil.rmtree(boot, ignore_errors=True)
    boot.mkdir(parents=True)
    shutil.copy2(kernel.image, out / "vmlinuz")
    shutil.copy2(kernel.image, boot / "vmlinuz")
    shutil.copy2(out / "initramfs.img", boot / "initramfs.img")
    (boot / "bootstate").write_text(INITIAL_BOOTSTATE)
    (boot / "cmdline.txt").write_text(cmdline + "\n")
    # Boot files Buildroot built for the board (device trees; the Pi's firmware from rpi-firmware).
    for dtb in sorted(binaries.glob("*.dtb")):
        shutil.copy2(dtb, boot / dtb.name)
    if (binaries / "rpi-firmware").is_dir():
        shutil.copytree(binaries / "rpi-firmware", boot, dirs_exist_ok=True)
    for layer in config.layers:  # the layers' boot files last: they win (e.g. the Pi's config.txt)
        if layer.resources is not None and (layer.resources / "boot").is_dir():
            shutil.copytree(layer.resources / "boot", boot, dirs_exist_ok=True)
    image = config.image
    layout = DiskLayout(image.partition_table, image.boot_fstype, image.boot_size,
                        image.rootfs_size, image.persist_size, rootfs_name)
    run_genimage(layout, boot_dir=boot, input_dir=out, output_dir=out,
                 work_dir=work / "genimage", log_file=log)
    env = {**os.environ, "BINARIES_DIR": str(out)}
    for hook in config.post_image_hooks:
        run_tool(["sh", hook, out], debian_package="dash", env=env, log_file=log)
    board = config.board
    packages = [PackageRecord(name, str(info.get("version", "")), board.debian_arch,
                              "kernel" if name == "linux" else "rootfs")
                for name, info in sorted(show_info.items())
                if info.get("type") == "target" and info.get("virtual") is not True]
    names = sorted(p.name for p in out.iterdir() if p.is_file())
    manifest = Manifest(
        workspace=workspace.name, layers=list(config.layer_names), backend="buildroot",
        board=BoardRecord.of(board),
        kernel_version=kernel.version, kernel_cmdline=cmdline, config_digest=config.digest(),
        packages=packages, artifacts=describe_artifacts(out, names),
        extra={"initramfs_modules": " ".join(m.name for m in modules)},
    )
    write_manifest(manifest, out / "manifest.json")
    return out


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--layers", required=True)
    parser.add_argument("binaries_dir", type=Path)
    args = parser.parse_args(argv)
    base_dir = Path(os.environ.get("BASE_DIR", args.binaries_dir.parent))
    target = Path(os.environ.get("TARGET_DIR", base_dir / "target"))
    assemble(load_config(args.layers), args.workspace, args.binaries_dir, target, base_dir)


if __name__ == "__main__":
    main()
