"""A synthetic Buildroot output tree (no Buildroot needed): what BASE_DIR, BINARIES_DIR and
TARGET_DIR hold when Buildroot runs FleetForge's post-build script. The kernel image, a static
"busybox", the boot chain's programs and kernel modules are compiled here with the host's gcc
(the engine reads only their ELF applet table, library needs and .modinfo), placed where
Buildroot puts them. Shared by the Buildroot tests that run the generated scripts."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from images.buildroot.parts import SHOW_INFO_FILE

RELEASE = "6.1.0-test-arm64"
# name -> its dependencies; what the qemu boards' modules-load.d lists, plus a dependency chain.
MODULES = {"virtio": "", "virtio_ring": "virtio", "virtio_pci": "virtio,virtio_ring",
           "virtio_blk": "virtio,virtio_ring", "virtio_net": "virtio,virtio_ring",
           "virtio_rng": "virtio,virtio_ring", "squashfs": "", "i6300esb": "",
           "dm_mod": "", "dm_bufio": "dm_mod", "dm_verity": "dm_bufio,dm_mod"}
# The boot chain's programs (core/minimal's programs.d), where Buildroot installs them.
PROGRAMS = ("usr/sbin/kexec", "usr/sbin/dmsetup")
# Built into the synthetic kernel, so the initramfs skips them (the pi4 list is long).
BUILTIN = ("fixed", "gpio-regulator", "sdhci_iproc", "mmc_block", "bcm2835-dma", "vfat",
           "nls_cp437", "nls_ascii", "nls_iso8859_1", "ext4", "crc32c_generic",
           "mdio-bcm-unimac", "broadcom", "genet")
SHOW_INFO = {"busybox": "1.36.1", "dropbear": "2022.83", "linux": "6.1.0"}


def gcc(source: str, output: Path, *flags: str) -> None:
    c = output.with_suffix(".c")
    c.write_text(source)
    subprocess.run(["gcc", *flags, "-o", str(output), str(c)], check=True, capture_output=True)
    c.unlink()


def buildroot_output(root: Path, boot_files: tuple[str, ...], config=None) -> tuple[Path, Path, Path]:
    """BASE_DIR with images/ (BINARIES_DIR) and target/ (TARGET_DIR) as Buildroot leaves them
    before the post-image script runs (the rootfs image is packed later, from the finished tree)."""
    base, binaries, target = root / "output", root / "output/images", root / "output/target"
    binaries.mkdir(parents=True)
    (binaries / "Image").write_bytes(b"ARM64 kernel image " * 1000)
    bootloader = tuple(e.buildroot_path for e in config.board.bootloader) if config else ()
    for name in (*boot_files, *bootloader):  # device trees, the board's bootloader files
        (binaries / name).parent.mkdir(parents=True, exist_ok=True)
        (binaries / name).write_bytes(f"firmware {name}".encode() * 100)
    (target / "bin").mkdir(parents=True)
    gcc('const char applets[] = "[\\0[[\\0ash\\0cat\\0init\\0mount\\0sh\\0switch_root\\0";\n'
        "int main(void) { return applets[0] == 0; }\n", target / "bin/busybox", "-static", "-Os")
    for program in PROGRAMS:
        (target / program).parent.mkdir(parents=True, exist_ok=True)
        gcc("int main(void) { return 0; }\n", target / program, "-static", "-Os")
    modules = target / "lib/modules" / RELEASE
    (modules / "kernel").mkdir(parents=True)
    for name, depends in MODULES.items():
        gcc(f'const char modinfo[] __attribute__((section(".modinfo"))) = '
            f'"license=GPL\\0depends={depends}\\0name={name}";\n',
            modules / "kernel" / f"{name}.ko", "-c")
    (modules / "modules.builtin").write_text("".join(f"kernel/{n}.ko\n" for n in BUILTIN))
    (target / "etc").mkdir()
    (base / SHOW_INFO_FILE).write_text(json.dumps(
        {name: {"type": "target", "version": version} for name, version in SHOW_INFO.items()}))
    return base, binaries, target


