"""Both backends end in one assembly engine: from the same parts, the Buildroot post-build and
post-image scripts (the generated files, run as Buildroot runs them) and the offline backend's
assembly give the same root filesystem additions, boot partition, disk layout and manifest.

The Buildroot output tree is synthetic (no Buildroot tree is needed): a kernel image, a static
"busybox" and kernel modules compiled here with the host's gcc (the engine reads only their ELF
applet table and .modinfo), placed where Buildroot puts them.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from checkout import LAYERS_DIR
from images.assemble import AssemblyDirs, assemble_image, finish_rootfs, pack_rootfs
from images.buildroot.defconfig import compose_defconfig
from images.buildroot.external import render_external_tree, write_external_tree
from images.buildroot.parts import SHOW_INFO_FILE
from images.buildroot.post_scripts import IMAGES_SUBDIR
from images.buildroot.toolchain import choose_toolchain
from images.debian import DebPackage
from images.kernel import Kernel
from images.layers import load_config
from images.manifest import Manifest, PackageRecord, load_manifest
from images.parts import BootFile, ImageParts
from images.workspace import Workspace

RELEASE = "6.1.0-test-arm64"
# name -> its dependencies; what the qemu boards' modules-load.d lists, plus a dependency chain.
MODULES = {"virtio": "", "virtio_ring": "virtio", "virtio_pci": "virtio,virtio_ring",
           "virtio_blk": "virtio,virtio_ring", "virtio_net": "virtio,virtio_ring",
           "virtio_rng": "virtio,virtio_ring", "squashfs": ""}
# Built into the synthetic kernel, so the initramfs skips them (the pi4 list is long).
BUILTIN = ("fixed", "gpio-regulator", "sdhci_iproc", "mmc_block", "bcm2835-dma", "vfat",
           "nls_cp437", "nls_ascii", "nls_iso8859_1", "ext4", "crc32c_generic",
           "mdio-bcm-unimac", "broadcom", "genet")
SHOW_INFO = {"busybox": "1.36.1", "dropbear": "2022.83", "linux": "6.1.0"}
VIRTIO = ["virtio", "virtio_ring", "virtio_pci", "virtio_blk", "virtio_net", "virtio_rng"]
BOARDS = {  # device trees in BINARIES_DIR, partition table, the initramfs's modules in load order
    "qemu-aarch64": ((), "gpt", [*VIRTIO, "squashfs"]),
    # The Pi's device tree and (its bootloader entries) firmware as Buildroot leaves them; its SD
    # modules are built into the synthetic kernel.
    "pi4": (("bcm2711-rpi-4-b.dtb",), "mbr", ["squashfs"]),
}


def _gcc(source: str, output: Path, *flags: str) -> None:
    c = output.with_suffix(".c")
    c.write_text(source)
    subprocess.run(["gcc", *flags, "-o", str(output), str(c)], check=True, capture_output=True)
    c.unlink()


def _buildroot_output(root: Path, boot_files: tuple[str, ...], config) -> tuple[Path, Path, Path]:
    """BASE_DIR with images/ (BINARIES_DIR) and target/ (TARGET_DIR) as Buildroot leaves them
    before the post-image script runs (the rootfs image is packed later, from the finished tree)."""
    base, binaries, target = root / "output", root / "output/images", root / "output/target"
    binaries.mkdir(parents=True)
    (binaries / "Image").write_bytes(b"ARM64 kernel image " * 1000)
    for name in (*boot_files, *(e.buildroot_path for e in config.board.bootloader)):
        (binaries / name).parent.mkdir(parents=True, exist_ok=True)
        (binaries / name).write_bytes(f"firmware {name}".encode() * 100)
    (target / "bin").mkdir(parents=True)
    _gcc('const char applets[] = "[\\0[[\\0ash\\0cat\\0init\\0mount\\0sh\\0switch_root\\0";\n'
         "int main(void) { return applets[0] == 0; }\n", target / "bin/busybox", "-static", "-Os")
    modules = target / "lib/modules" / RELEASE
    (modules / "kernel").mkdir(parents=True)
    for name, depends in MODULES.items():
        _gcc(f'const char modinfo[] __attribute__((section(".modinfo"))) = '
             f'"license=GPL\\0depends={depends}\\0name={name}";\n',
             modules / "kernel" / f"{name}.ko", "-c")
    (modules / "modules.builtin").write_text("".join(f"kernel/{n}.ko\n" for n in BUILTIN))
    (target / "etc").mkdir()
    (base / SHOW_INFO_FILE).write_text(json.dumps(
        {name: {"type": "target", "version": version} for name, version in SHOW_INFO.items()}))
    return base, binaries, target


def _offline_parts(binaries: Path, target: Path, tree: Path, config, boot_files) -> ImageParts:
    """The same parts, handed over directly as the offline backend does."""
    arch = config.board.debian_arch
    kernel = Kernel(DebPackage("linux", "6.1.0", arch, binaries / "Image"), RELEASE,
                    binaries / "Image", target / "lib/modules" / RELEASE)
    records = tuple(PackageRecord(name, version, arch, "kernel" if name == "linux" else "rootfs")
                    for name, version in sorted(SHOW_INFO.items()))
    files = tuple(BootFile(binaries / name, Path(name).name) for name in boot_files)
    bootloader = {e.file: binaries / e.buildroot_path for e in config.board.bootloader}
    return ImageParts(backend="offline", kernel=kernel, busybox=target / "bin/busybox",
                      rootfs_tree=tree, rootfs_image=None, packages=records, boot_files=files,
                      bootloader=bootloader)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _partitions(disk: Path, table: str) -> list[tuple]:
    with open(disk, "rb") as handle:
        data = handle.read(1 << 16)
    if table == "mbr":
        return [struct.unpack_from("<B3xB3xII", data, 446 + 16 * i) for i in range(4)]
    entry_lba, count, size = struct.unpack_from("<QII", data, 512 + 72)
    entries = [data[entry_lba * 512 + i * size:entry_lba * 512 + (i + 1) * size] for i in range(count)]
    return [(e[56:128].decode("utf-16-le").rstrip("\0"), *struct.unpack_from("<QQ", e, 32))
            for e in entries if any(e[32:48])]


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_buildroot_post_scripts_and_offline_assembly_agree(board, tmp_path):
    boot_names, table, modules = BOARDS[board]
    config = load_config(f"{board},core/minimal", layers_dir=LAYERS_DIR)
    workspace = Workspace("parity", tmp_path / "workspaces/parity")
    base, binaries, target = _buildroot_output(tmp_path / "buildroot", boot_names, config)
    defconfig = compose_defconfig(config, choose_toolchain(config.board.target))
    external = write_external_tree(render_external_tree(config, defconfig, workspace.root),
                                   tmp_path / "external")
    offline_tree = tmp_path / "offline-rootfs"
    subprocess.run(["cp", "-a", str(target), str(offline_tree)], check=True)

    # Buildroot: the generated scripts, with the environment Buildroot gives them.
    env = {**os.environ, "BASE_DIR": str(base), "TARGET_DIR": str(target),
           "BINARIES_DIR": str(binaries)}
    script = external / "board/fleetforge"
    subprocess.run(["sh", str(script / "post-build.sh"), str(target)], env=env, check=True)
    log = tmp_path / "pack.log"
    pack_rootfs(target, binaries / "rootfs.squashfs", "squashfs", config.image.rootfs_size, log)
    result = subprocess.run(["sh", str(script / "post-image.sh"), str(binaries)], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    buildroot_out = binaries / IMAGES_SUBDIR

    # Offline: the same parts straight into the engine.
    dirs = AssemblyDirs(out=tmp_path / "offline/images", work=tmp_path / "offline",
                        build_dir=tmp_path / "offline", log=log)
    finish_rootfs(config, workspace, offline_tree, dirs)
    parts = _offline_parts(binaries, target, offline_tree, config, boot_names)
    assemble_image(config, parts, workspace, dirs)

    # The root filesystem: the same files added (SSH key, release, network, the layers' hooks).
    assert _tree(target) == _tree(offline_tree)
    assert b"COMPATIBLE=" + config.board.compatible.encode() in \
        (target / "etc/fleetforge/release").read_bytes()
    # The boot partition: the same files, byte for byte (the initramfs is reproducible).
    boot = _tree(base / "fleetforge/boot")
    assert boot == _tree(dirs.work / "boot")
    assert {"vmlinuz", "initramfs.img", "bootstate"} | {Path(n).name for n in boot_names} | \
        {e.file for e in config.board.bootloader if e.partition == "boot"} <= set(boot)
    # The disk: the same genimage configuration and partition table.
    assert (base / "fleetforge/genimage/genimage.cfg").read_text() == \
        (dirs.work / "genimage/genimage.cfg").read_text()
    layout = _partitions(buildroot_out / "disk.img", table)
    assert layout == _partitions(dirs.out / "disk.img", table) and len(layout) == 4
    # The manifest: every field the same, but the backend that made the parts.
    ours, theirs = load_manifest(dirs.out / "manifest.json"), load_manifest(buildroot_out / "manifest.json")
    assert (ours.backend, theirs.backend) == ("offline", "buildroot")
    differing = {f.name for f in fields(Manifest) if getattr(ours, f.name) != getattr(theirs, f.name)}
    assert differing == {"backend", "artifacts"}
    assert ours.extra == theirs.extra and ours.extra["initramfs_modules"].split() == modules
    same_bytes = {"vmlinuz", "initramfs.img", "rootfs.squashfs"}
    assert [a.path for a in ours.artifacts] == [a.path for a in theirs.artifacts]
    assert {a.path for a in ours.artifacts} >= same_bytes | {"disk.img"}
    for ours_artifact, theirs_artifact in zip(ours.artifacts, theirs.artifacts):
        if ours_artifact.path in same_bytes:
            assert asdict(ours_artifact) == asdict(theirs_artifact)
