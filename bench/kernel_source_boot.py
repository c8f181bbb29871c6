"""Build the kernel = "source" board's image, boot it in QEMU, and check the fragments took effect.

Not a CI test (it needs Debian's Linux source, 140 MB, and minutes of compiling); rerun by hand:

    FLEETFORGE_CACHE=~/.cache/fleetforge nice -n 10 .venv/bin/python bench/kernel_source_boot.py

Prints the kernel build time (or "cached"), the image build time, the boot time to the
FLEETFORGE_READY marker and SSH, and what the running kernel says about itself: its release,
CONFIG_IKCONFIG_PROC from /proc/config.gz (set only by the board layer's fragment, tinyconfig
leaves it off), and a module from the fragment (CONFIG_DUMMY=m) loaded with modprobe.
"""
from __future__ import annotations

import argparse
import time

from images.build import build
from images.qemu import BootedMachine
from images.workspace import Workspace


def run(machine: BootedMachine, command: str) -> str:
    with machine.ssh() as conn:
        result = conn.run(["sh", "-c", command], timeout=30)
    return (result.stdout + result.stderr).strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="board/qemu-x86_64-src,core/minimal")
    parser.add_argument("--workspace", default="kernel-source-bench")
    args = parser.parse_args()
    workspace = Workspace.named(args.workspace)

    started = time.monotonic()
    result = build(args.layers, workspace=workspace)
    build_seconds = time.monotonic() - started
    manifest = result.manifest
    print(f"image built in {build_seconds:.1f} s: kernel {manifest.kernel_version}")

    machine = BootedMachine.start(workspace, timeout=300)
    try:
        check = machine.check
        print(f"booted: READY marker and SSH after {check.ssh_seconds:.1f} s")
        facts = {
            "uname -r": run(machine, "uname -r"),
            "/proc/config.gz": run(machine, "zcat /proc/config.gz | grep -E "
                                           "'^CONFIG_(IKCONFIG_PROC|SQUASHFS|MISC_FILESYSTEMS)='"),
            "modprobe dummy": run(machine, "modprobe dummy && grep -w dummy /proc/modules "
                                          "| cut -d' ' -f1"),
            "booted slot": run(machine, "cat /run/fleetforge/booted-slot"),
        }
    finally:
        machine.stop()
    for key, value in facts.items():
        print(f"{key}: {value}")
    ok = (facts["uname -r"] == manifest.kernel_version
          and "CONFIG_IKCONFIG_PROC=y" in facts["/proc/config.gz"]
          and facts["modprobe dummy"] == "dummy")
    print("RESULT:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
