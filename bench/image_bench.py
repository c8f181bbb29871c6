"""Image build and boot figures: cold vs warm-cache build, overlay rebuild, boot-to-healthy, sizes.

    python bench/image_bench.py [--layers L] [--keep]

Runs the real commands (`fleetforge build`, `fleetforge qemu --check`) in subprocesses with a temporary
workspace directory and a temporary, initially empty download cache, so the cold build really
downloads. Targets (issue 2): warm full build < 60 s, overlay rebuild < 15 s,
boot-to-healthy < 10 s, root filesystem < 24 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INVOKE = Path(sys.executable).with_name("invoke")
# A file every image has; the bench appends a comment line and restores it afterwards.
OVERLAY_FILE = REPO / "layers/core/minimal/root_overlay/etc/profile"
TARGETS = {"warm_build_s": 60.0, "overlay_rebuild_s": 15.0, "boot_to_healthy_s": 10.0,
           "rootfs_mb": 24.0}


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run([str(INVOKE), *args], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"bench: invoke {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return seconds, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="", help="layers to build (default: the default image)")
    parser.add_argument("--keep", action="store_true", help="keep the temp cache and workspaces")
    options = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="image-bench-"))
    env = {**os.environ, "FLEETFORGE_CACHE": str(tmp / "cache"),
           "FLEETFORGE_WORKSPACES": str(tmp / "workspaces")}
    layers = ["--layers", options.layers] if options.layers else []
    figures: dict[str, float] = {}
    original = OVERLAY_FILE.read_bytes()
    try:
        figures["cold_build_s"], _ = timed(["build", *layers, "--workspace", "cold"], env)
        figures["warm_build_s"], _ = timed(["build", *layers, "--workspace", "warm"], env)
        OVERLAY_FILE.write_bytes(original + b"# image_bench: overlay change\n")
        figures["overlay_rebuild_s"], _ = timed(["build", *layers, "--workspace", "warm"], env)
        OVERLAY_FILE.write_bytes(original)
        _, out = timed(["qemu", "--check", "--workspace", "warm"], env)
        match = re.search(r"console marker after ([\d.]+) s, SSH answered after ([\d.]+) s", out)
        if not match:
            sys.exit(f"bench: unexpected qemu --check output: {out}")
        figures["boot_marker_s"] = float(match[1])
        figures["boot_to_healthy_s"] = float(match[2])
        manifest = json.loads((tmp / "workspaces/warm/images/manifest.json").read_text())
        sizes = {a["path"]: a["size"] for a in manifest["artifacts"]}
        rootfs = next(v for k, v in sizes.items() if k.startswith("rootfs."))
        figures["rootfs_mb"] = rootfs / 1e6
        figures["disk_image_mb"] = sizes["disk.img"] / 1e6
        figures["initramfs_mb"] = sizes["initramfs.img"] / 1e6
        figures["kernel_mb"] = sizes["vmlinuz"] / 1e6
        figures["cache_mb"] = sum(p.stat().st_size for p in (tmp / "cache").rglob("*.deb")) / 1e6
    finally:
        OVERLAY_FILE.write_bytes(original)
        if not options.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}; board: {manifest['board']['name']}")
    print(f"{'figure':<22}{'value':>10}  target")
    for name, value in figures.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"< {target:g}  {'ok' if value < target else 'MISSED'}"
        print(f"{name:<22}{value:>10.2f}  {verdict}")
    print(f"warm/cold build ratio: {figures['warm_build_s'] / figures['cold_build_s']:.2f}; "
          f"overlay rebuild / warm build: {figures['overlay_rebuild_s'] / figures['warm_build_s']:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
