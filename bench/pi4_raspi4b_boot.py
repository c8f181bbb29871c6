"""Boot the pi4 SD-card image's own boot files in QEMU's raspi4b machine, up to FLEETFORGE_READY.

Not a CI test: bookworm's QEMU 7.2 has no raspi4b (QEMU 9.0 added it). It needs a newer one, e.g.
bookworm-backports' qemu-system-arm .deb (fetched with apt from a bookworm-backports source) only
unpacked, not installed, so the team's QEMU stays as it is (its libraries are all in bookworm):

    dpkg-deb -x qemu-system-arm_1%3a10.0.2+ds-2+deb13u1~bpo12+1_amd64.deb /tmp/q
    fleetforge build --layers pi4,core/minimal --workspace pi4
    .venv/bin/python bench/pi4_raspi4b_boot.py --qemu /tmp/q/usr/bin/qemu-system-aarch64

What it boots is read back from disk.img's FAT partition (vmlinuz, initramfs.img, the dtb and
cmdline.txt the Pi firmware would load), with the QEMU model's gaps patched in a copy of the
device tree (fdtput, Debian package device-tree-compiler), all named in QEMU_GAPS:
- the HDMI/display blocks and their interrupt controller abort the kernel (not emulated);
- the firmware GPIO expander is not emulated, so the SD card's supply regulators cannot probe:
  their supply links are dropped (on a Pi they probe, their modules are in the initramfs);
- QEMU wires the card to the legacy EMMC controller (a Pi 4 uses EMMC2; both are sdhci-iproc);
- the mini UART (ttyS1) stalls the kernel on QEMU's shared AUX interrupt, so the console is the
  PL011 (ttyAMA0), and unused clocks QEMU does not model are left alone (clk_ignore_unused).
Prints the time to the marker, the partition the initramfs booted and whether /persist mounted.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from fleetforge.tools import run_tool, start_tool
from images.workspace import Workspace

DTB = "bcm2711-rpi-4-b.dtb"
# (node, action, property): what QEMU's raspi4b lacks, patched in the copy it boots.
QEMU_GAPS = (
    *((f"/soc/{node}", "disable", "") for node in (
        "interrupt-controller@7ef00100", "hdmi@7ef00700", "i2c@7ef04500", "hdmi@7ef05700",
        "i2c@7ef09500", "hvs@7e400000", "pixelvalve@7e206000", "pixelvalve@7e207000",
        "pixelvalve@7e20a000", "pixelvalve@7e216000", "pixelvalve@7ec12000")),
    ("/emmc2bus/mmc@7e340000", "delete", "vqmmc-supply"),
    ("/emmc2bus/mmc@7e340000", "delete", "vmmc-supply"),
    *(("/soc/mmc@7e300000", "delete", prop)
      for prop in ("mmc-pwrseq", "non-removable", "pinctrl-0", "pinctrl-names")),
)


def boot_partition_offset(disk: Path) -> int:
    mbr = disk.read_bytes()[:512]
    return int.from_bytes(mbr[446 + 8:446 + 12], "little") * 512


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qemu", default="qemu-system-aarch64", help="a QEMU with -M raspi4b")
    parser.add_argument("--workspace", default="pi4")
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()
    images = Workspace.named(args.workspace).images_dir
    disk = images / "disk.img"
    work = Path(tempfile.mkdtemp(prefix="pi4-raspi4b-"))
    try:
        part = f"{disk}@@{boot_partition_offset(disk)}"
        for name in ("vmlinuz", "initramfs.img", DTB, "cmdline.txt"):
            run_tool(["mcopy", "-n", "-i", part, f"::{name}", work / name], debian_package="mtools")
        dtb = work / DTB
        for node, action, prop in QEMU_GAPS:
            if action == "disable":
                run_tool(["fdtput", "-t", "s", dtb, node, "status", "disabled"],
                         debian_package="device-tree-compiler")
            else:
                run_tool(["fdtput", "-d", dtb, node, prop], debian_package="device-tree-compiler")
        cmdline = (work / "cmdline.txt").read_text().strip()
        cmdline = re.sub(r"console=\S+", "console=ttyAMA0,115200", cmdline) + " clk_ignore_unused"
        sd = work / "sd.img"
        shutil.copyfile(disk, sd)
        size = 1 << (sd.stat().st_size - 1).bit_length()  # QEMU wants a power-of-two SD card
        os.truncate(sd, size)
        (work / "no-modules").mkdir()  # keep the host QEMU's plugin modules out of another build
        env = {**os.environ, "QEMU_MODULE_DIR": str(work / "no-modules")}
        started = time.monotonic()
        process = start_tool(
            [args.qemu, "-M", "raspi4b", "-kernel", work / "vmlinuz", "-initrd",
             work / "initramfs.img", "-dtb", dtb, "-append", cmdline,
             "-drive", f"file={sd},if=sd,format=raw", "-display", "none", "-monitor", "none",
             "-audio", "none", "-serial", "stdio", "-serial", "null", "-no-reboot"],
            debian_package="qemu-system-arm", env=env)
        result, lines = 1, []
        assert process.stdout is not None
        try:
            for raw in process.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                lines.append(line)
                if "FLEETFORGE_INIT_FAILED" in line or time.monotonic() - started > args.timeout:
                    break
                if "FLEETFORGE_READY" in line:
                    result = 0
                    break
        finally:
            process.kill()
            process.wait()
        seconds = time.monotonic() - started
        log = "\n".join(lines)
        booted = re.search(r"initramfs: booting slot (\w) \((\S+)\)", log)
        print(f"QEMU: {run_tool([args.qemu, '--version'], debian_package='qemu-system-arm').splitlines()[0]}")
        print(f"cmdline: {cmdline}")
        print(f"booted: {booted.group(0) if booted else 'no slot booted'}")
        print(f"/persist mounted: {'cannot mount /persist' not in log}")
        print(("FLEETFORGE_READY" if result == 0 else "FAILED") + f" after {seconds:.1f} s")
        if result:
            print("\n".join(lines[-30:]))
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
