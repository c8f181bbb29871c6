"""Both backends end in one assembly engine: from the same parts, the Buildroot post-build and
post-image scripts (the generated files, run as Buildroot runs them) and the offline backend's
assembly give the same root filesystem additions, boot partition, disk layout and manifest.

The Buildroot output tree is synthetic (synthetic_buildroot.py: no Buildroot tree is needed).
"""
from __future__ import annotations

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
from images.buildroot.post_scripts import IMAGES_SUBDIR
from images.buildroot.toolchain import choose_toolchain
from images.debian import DebPackage
from images.kernel import Kernel
from images.layers import load_config
from images.manifest import Manifest, PackageRecord, load_manifest
from images.parts import BootFile, ImageParts
from images.workspace import Workspace
from synthetic_buildroot import RELEASE, SHOW_INFO, buildroot_output

VIRTIO = ["virtio", "virtio_ring", "virtio_pci", "virtio_blk", "virtio_net", "virtio_rng"]
DM_VERITY = ["dm_mod", "dm_bufio", "dm_verity"]
BOARDS = {  # device trees in BINARIES_DIR, partition table, the initramfs's modules in load order
    "qemu-aarch64": ((), "gpt", [*VIRTIO, "i6300esb", "squashfs", *DM_VERITY]),
    # The Pi's device tree and (its bootloader entries) firmware as Buildroot leaves them; its SD
    # modules are built into the synthetic kernel.
    "pi4": (("bcm2711-rpi-4-b.dtb",), "mbr", ["squashfs", *DM_VERITY]),
}


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
def test_buildroot_post_scripts_and_offline_assembly_agree(board, tmp_path, monkeypatch):
    # One build time for both assemblies (the image's version is its build time), however long
    # the first one takes.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764460800")
    boot_names, table, modules = BOARDS[board]
    config = load_config(f"{board},core/minimal", layers_dir=LAYERS_DIR)
    workspace = Workspace("parity", tmp_path / "workspaces/parity")
    base, binaries, target = buildroot_output(tmp_path / "buildroot", boot_names, config)
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
    # S01mount's mount points exist in both (Buildroot's skeleton has neither).
    assert (target / "boot").is_dir() and (target / "persist").is_dir()
    assert b"COMPATIBLE=" + config.board.compatible.encode() in \
        (target / "etc/fleetforge/release").read_bytes()
    # The boot partition: the same files, byte for byte (the initramfs is reproducible).
    boot = _tree(base / "fleetforge/boot")
    assert boot == _tree(dirs.work / "boot")
    assert {"vmlinuz", "initramfs.img", "bootstate", "slot-A.verity", "slot-B.verity"} | \
        {Path(n).name for n in boot_names} | \
        {e.file for e in config.board.bootloader if e.partition == "boot"} <= set(boot)
    # The slot carries its own kernel and initramfs (docs/ab-boot.md), installed before packing.
    slot_boot = target / "usr/lib/fleetforge/boot"
    assert (slot_boot / "initramfs.img").read_bytes() == boot["initramfs.img"]
    assert (slot_boot / "boot-id").read_text().strip()
    assert (slot_boot / "cmdline.txt").read_text() == f"console={config.board.console} quiet panic=5\n"
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
