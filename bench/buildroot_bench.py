"""Buildroot offline bench: build, boot, update over the air and roll back (not CI: too long).

1. The baseline of the same run: the offline backend's image of the same layers.
2. `fleetforge build --backend buildroot --offline` of the same layers from an empty Buildroot
   output folder (the shared caches stay: Debian sources, the relocated toolchain): build time.
3. The Buildroot image boots in QEMU to healthy.
4. A QEMU device running the offline image takes the Buildroot root filesystem over the air (trial
   boot, health check, commit), then rolls back to the offline one.
Prints the machine, the load, the build time, the rootfs size against the offline image's and the
per-package version report (Buildroot's version, the Debian version used, the path taken).

    nice -n 10 .venv/bin/python bench/buildroot_bench.py --buildroot-dir /path/to/buildroot-2026.02.3
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from images.build import build
from images.buildroot.mirror import REPORT_TEXT
from images.manifest import load_manifest
from images.qemu import boot_check
from images.workspace import Workspace
from ota import client, keys
from ota.bundle import create_bundle, open_bundle
from ota.client import SshOptions
from fleetforge.ssh import Target

LAYERS = "qemu/aarch64,core/minimal,feature/ota"
REPO = Path(__file__).resolve().parent.parent


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _qemu_device_class():
    # The OTA suite's QEMU device (reboots = QEMU restarted on the same port): one copy, loaded
    # from its file rather than by editing sys.path.
    spec = importlib.util.spec_from_file_location("ota_qemu", REPO / "tests" / "ota" / "ota_qemu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.QemuDevice


def _shell(options: SshOptions, target: Target, command: str) -> str:
    with options.connect(target) as conn:
        result = conn.run(["sh", "-c", command])
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildroot-dir", default=os.environ.get("BUILDROOT_DIR"),
                        help="Buildroot tree (default: $BUILDROOT_DIR)")
    parser.add_argument("--work", type=Path, help="bench folder (default: a new temporary one)")
    parser.add_argument("--buildroot-workspace", type=Path,
                        help="an already built Buildroot workspace to rebuild instead of building "
                             "from an empty output folder (the time printed is then a rebuild's)")
    args = parser.parse_args()
    if not args.buildroot_dir:
        parser.error("give --buildroot-dir or set BUILDROOT_DIR")
    work = (args.work or Path(tempfile.mkdtemp(prefix="buildroot-bench-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["FLEETFORGE_OTA_KEYS"] = str(work / "keys")  # both images trust this key
    if not (work / "keys").is_dir():
        keys.keygen(work / "keys")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; "
          f"load at start {_load()}")

    offline_ws = Workspace.named("offline", base=work)
    if args.buildroot_workspace:
        given = args.buildroot_workspace.absolute()
        br_ws = Workspace(given.name, given)
    else:
        br_ws = Workspace.named("buildroot", base=work)
        shutil.rmtree(br_ws.root, ignore_errors=True)  # an empty output folder
    # One SSH key for both images: after the update the device runs the Buildroot root
    # filesystem, whose authorized_keys must still let the client in.
    if br_ws.ssh_key.is_file():
        shutil.copytree(br_ws.ssh_key.parent, offline_ws.ssh_key.parent, dirs_exist_ok=True)
    started = time.monotonic()
    build(LAYERS, workspace=offline_ws)
    offline_seconds = time.monotonic() - started
    shutil.copytree(offline_ws.ssh_key.parent, br_ws.ssh_key.parent, dirs_exist_ok=True)
    started = time.monotonic()
    build(LAYERS, workspace=br_ws, backend="buildroot", offline=True,
          buildroot_dir=args.buildroot_dir)
    br_seconds = time.monotonic() - started
    print(f"load after the builds {_load()}")

    sizes = {name: (ws.images_dir / "rootfs.squashfs").stat().st_size
             for name, ws in (("offline", offline_ws), ("buildroot", br_ws))}
    check = boot_check(br_ws, timeout=300)

    QemuDevice = _qemu_device_class()
    device = QemuDevice(offline_ws, work / "vm")
    device.start()
    try:
        device.wait_ready(300)
        target = Target("127.0.0.1", device.port)
        # A fresh VM of a fresh build has a new host key: recorded once, here. It lives on
        # /persist, so after the update the Buildroot root filesystem answers with the same key.
        (work / "vm" / "known_hosts").unlink(missing_ok=True)
        options = SshOptions(identity=offline_ws.ssh_key, known_hosts=work / "vm" / "known_hosts",
                             timeout=30, activate_timeout=300, trust_new_host=True)
        before = client.status(target, options)
        signer = keys.load_private(work / "keys")
        compatible = load_manifest(offline_ws.manifest_path).board.compatible
        # The device checks the slot against its dm-verity record at boot (docs/ab-boot.md).
        verity = load_manifest(br_ws.manifest_path).extra.get("verity", "")
        bundle = open_bundle(create_bundle(br_ws.images_dir / "rootfs.squashfs",
                                           work / "buildroot.ffota", compatible=compatible,
                                           version="2.0.0", signing_key=signer, verity=verity),
                             trusted_keys_dir=work / "keys")
        # The offline image records its build time as version: this bundle (2.0.0) is "older".
        update = client.deploy(target, options, bundle, show_progress=False, boot_timeout=300,
                               allow_downgrade=True)
        if not update.ok:  # the device rolled back by itself: say why, with the agent's log
            raise SystemExit(f"OTA offline -> Buildroot failed: {update.message}\n"
                             + _shell(options, target, "tail -n 30 /persist/ota/log"))
        after = client.status(target, options)
        userland = _shell(options, target, "busybox | head -1")
        boots = len(device.boots)
        message = client.rollback(target, options, reboot=True)
        device.wait_boots(boots + 1, timeout=300)
        device.wait_ready(300)
        back = client.status(target, options)
        userland_back = _shell(options, target, "busybox | head -1")
    finally:
        device.remove()

    print(f"\nload at the end {_load()}")
    print(f"offline backend build (baseline): {offline_seconds:.0f} s")
    kind = "rebuild of " + str(br_ws.root) if args.buildroot_workspace else \
        "build from an empty output folder"
    print(f"Buildroot --offline {kind}: {br_seconds:.0f} s ({br_seconds / 60:.1f} min)")
    print(f"rootfs.squashfs: Buildroot {sizes['buildroot'] / 1e6:.2f} MB, offline "
          f"{sizes['offline'] / 1e6:.2f} MB, ratio {sizes['buildroot'] / sizes['offline']:.2f}")
    print(f"Buildroot image boot: healthy, console marker after {check.marker_seconds:.1f} s, "
          f"SSH after {check.ssh_seconds:.1f} s")
    print(f"OTA offline -> Buildroot: {'ok' if update.ok else 'FAILED'} ({update.message}); "
          f"slot {before.booted} -> {after.booted}, {update.seconds:.0f} s, "
          f"{update.sent_bytes / 1e6:.1f} MB sent; busybox now: {userland}")
    print(f"rollback: {message}; booted {back.booted} again; busybox now: {userland_back}")
    print("\nper-package sources (Buildroot version, Debian version, path):")
    print((br_ws.images_dir / REPORT_TEXT).read_text())
    if not (update.ok and after.booted != before.booted and back.booted == before.booted):
        raise SystemExit("the over-the-air update or the rollback did not end as expected")


if __name__ == "__main__":
    main()
