"""A slot's own boot files (docs/ab-boot.md): its kernel, initramfs and command line in the root
filesystem tree, and the boot-id that tells the chooser whether it is already running them."""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
from pathlib import Path

# Inside a slot; the initramfs /init (layers/core/minimal) reads the same path.
SLOT_BOOT_DIR = "usr/lib/fleetforge/boot"
BOOT_ID_FILE = "etc/fleetforge/boot-id"  # in the initramfs: the boot-id of the pair it belongs to

_ARM64_IMAGE_MAGIC = (0x38, b"ARM\x64")  # an uncompressed arm64 Image


def tree_digest(tree: Path, *, skip: tuple[str, ...] = ()) -> str:
    """sha256 over every path, mode, link target and file content below `tree` (sorted)."""
    digest = hashlib.sha256()
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree).as_posix()
        if rel in skip:
            continue
        info = path.lstat()
        digest.update(f"{rel}\0{stat.S_IFMT(info.st_mode)}\0{stat.S_IMODE(info.st_mode)}\0".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def boot_id(kernel_image: Path, cmdline: str, initramfs_tree: Path) -> str:
    """Identity of what kexec would start: the kernel, its command line, the initramfs content."""
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(kernel_image.read_bytes()).digest())
    digest.update(hashlib.sha256(cmdline.strip().encode()).digest())
    digest.update(bytes.fromhex(tree_digest(initramfs_tree, skip=(BOOT_ID_FILE,))))
    return digest.hexdigest()[:32]


def _is_uncompressed_arm64(image: Path) -> bool:
    offset, magic = _ARM64_IMAGE_MAGIC
    with open(image, "rb") as handle:
        handle.seek(offset)
        return handle.read(len(magic)) == magic


def install_slot_boot(rootfs_tree: Path, *, kernel_image: Path, initramfs: Path, cmdline: str,
                      identity: str, watchdog_timeout: int) -> Path:
    """Put the slot's boot files into `rootfs_tree`; return their directory.

    `watchdog_timeout` ([image] watchdog_timeout) is how long a boot of this slot may take before
    the watchdog resets the board: a release knows how long its own boot and health checks take.
    Debian's arm64 kernel is an uncompressed Image (about 30 MB): stored gzipped (kexec inflates
    it), so the chooser does not spend seconds decompressing it from the squashfs. Level 6: level
    9 takes three times as long here for 0.2 % less.
    """
    target = rootfs_tree / SLOT_BOOT_DIR
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    if _is_uncompressed_arm64(kernel_image):
        with open(kernel_image, "rb") as source, open(target / "vmlinuz", "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as out:
                shutil.copyfileobj(source, out, 1 << 20)
    else:
        shutil.copyfile(kernel_image, target / "vmlinuz")
    shutil.copyfile(initramfs, target / "initramfs.img")
    (target / "cmdline.txt").write_text(cmdline.strip() + "\n")
    (target / "boot-id").write_text(identity + "\n")
    (target / "watchdog-timeout").write_text(f"{watchdog_timeout}\n")
    return target
