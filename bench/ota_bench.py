"""OTA bench: install throughput as a ratio to plain `scp` and `ssh HOST 'cat > SLOT'` of the same
bytes, same run, on loopback devices (OpenSSH sshd and dropbear) and on the real QEMU guest; plus
full and delta update size on the wire.

    python bench/ota_bench.py [--loopback-mb 64] [--qemu-mb 32] [--repeat 3] [--workspace default]
                              [--no-qemu] [--no-loopback]

Loopback devices: the busybox-sh agent with slot files in RAM (/dev/shm), behind sshd or dropbear
on 127.0.0.1. The QEMU guest: the workspace's image (build it first: fleetforge build), booted
headless; `cat` writes into its inactive slot, as the install does. Each repeat measures the
baseline and the install back to back (the machine's load changes over minutes); the ratio is the
median over repeats of baseline seconds / install seconds. "install" is the whole `install`
command: signature check on the device, every segment hashed as it is written (ota-receive) and
on the medium before it counts, activation (slot manifest, boot state); "stream" is the segments
alone.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetforge.ssh import Target
from images.verity import append_hash_tree
from ota import client, keys, loopback
from ota.bundle import Bundle, create_bundle, open_bundle
from ota.client import SshOptions


@dataclass
class Pair:
    """One repeat: the baseline and the install, measured back to back."""

    baseline: float
    install: float
    stream: float

    @property
    def ratio(self) -> float:
        return self.baseline / self.install


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.machine())
    return f"{os.cpu_count()} x {cpu}"


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _timed(run: Callable[[], object]) -> float:
    started = time.monotonic()
    run()
    return time.monotonic() - started


def _ssh_args(port: int, identity: Path, known_hosts: Path) -> list[str]:
    return ["-p", str(port), "-i", str(identity), "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]


def _install(options: SshOptions, target: Target, bundle: Bundle) -> tuple[float, float]:
    """(seconds, stream seconds) of one whole install; the trial it arms is cancelled after."""
    with options.connect(target) as conn:
        started = time.monotonic()
        result = client.transfer(conn, options, bundle, show_progress=False)
        seconds = time.monotonic() - started
        conn.run([options.agent, "abort"])  # the next repeat installs from scratch
    return seconds, result.stream_seconds


def _report(label: str, baseline: str, pairs: list[Pair], size_mb: int) -> None:
    for p in pairs:
        print(f"  {label:30} {baseline} {p.baseline:6.2f} s   install {p.install:6.2f} s "
              f"(stream {p.stream:5.2f} s)   ratio {p.ratio:4.2f}   {size_mb / p.install:6.1f} MiB/s")
    ratios = [p.ratio for p in pairs]
    print(f"{label}: install / {baseline} = {statistics.median(ratios):.2f} median "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}) over {len(pairs)}   target >= 0.80")


def loopback_bench(base: Path, blob: Path, bundle: Bundle, keys_dir: Path, client_key: Path,
                   size_mb: int, repeat: int) -> None:
    for kind, start in (("openssh", loopback.start_openssh), ("dropbear", loopback.start_dropbear)):
        work = base / kind
        server = start(work / "server", client_key)
        try:
            known = work / "known_hosts"
            known.write_text(server.known_hosts_line())
            zero = work / "zero.img"
            zero.write_bytes(bytes(1 << 20))
            device = loopback.make_fake_device(work / "dev", zero, compatible="bench",
                                               trusted_keys=[keys_dir / keys.PUBLIC_NAME],
                                               slot_size=(size_mb + 8) << 20, ssh_port=server.port)
            options = SshOptions(identity=client_key, known_hosts=known, agent=device.agent)
            target = Target("127.0.0.1", server.port)
            ssh = _ssh_args(server.port, client_key, known)
            scp = ["scp", "-q", "-P", str(server.port), *ssh[2:]] + (["-O"] if kind == "dropbear" else [])
            slot_b = device.slot("B")
            scp_pairs, cat_pairs = [], []
            for _ in range(repeat):
                scp_s = _timed(lambda: subprocess.run(
                    [*scp, str(blob), f"root@127.0.0.1:{work / 'dev' / 'scp-copy.img'}"], check=True))
                cat_s = _timed(lambda: subprocess.run(
                    ["ssh", *ssh, "root@127.0.0.1", f"cat > {slot_b}"], stdin=open(blob, "rb"),
                    check=True))
                install_s, stream_s = _install(options, target, bundle)
                scp_pairs.append(Pair(scp_s, install_s, stream_s))
                cat_pairs.append(Pair(cat_s, install_s, stream_s))
            print(f"loopback {kind} ({size_mb} MiB, load {_load()}):")
            _report(f"loopback {kind}", "scp", scp_pairs, size_mb)
            _report(f"loopback {kind}", "ssh-cat", cat_pairs, size_mb)
        finally:
            device.kill_processes()
            server.stop()


def _segment_writer(ssh: list[str]) -> str:
    """What wrote the guest's segments: ota-receive, or the agent's shell path and its hasher."""
    said = subprocess.run(["ssh", *ssh, "root@127.0.0.1", "cd /run/fleetforge/ota && cat receiver; "
                           "cat hasher 2>/dev/null"], capture_output=True, text=True).stdout.split()
    if said[:1] == ["yes"]:
        return "ota-receive"
    return f"the agent's shell path ({said[1] if len(said) > 1 else '?'})"


def qemu_bench(workspace_name: str, base: Path, blob: Path, bundle_for: Callable[[str], Bundle],
               size_mb: int, repeat: int) -> None:
    from images.manifest import load_manifest
    from images.qemu import BootedMachine
    from images.workspace import Workspace

    # The guest trusts the project's signing key (keys/), which its build baked in; its disk is
    # a private copy (the workspace's image stays as built).
    workspace = Workspace.named(workspace_name)
    if not workspace.disk_image.is_file():
        print(f"qemu: no image in workspace '{workspace_name}' (run: fleetforge build); skipped")
        return
    bundle = bundle_for(load_manifest(workspace.manifest_path).board.compatible)
    copy = base / "qemu-images"
    copy.mkdir()
    for name in ("vmlinuz", "initramfs.img", "manifest.json"):
        (copy / name).symlink_to(workspace.images_dir / name)
    subprocess.run(["cp", "--sparse=always", str(workspace.disk_image), str(copy / "disk.img")],
                   check=True)
    known = base / "qemu-known-hosts"
    vm = BootedMachine.start(workspace, timeout=300, images_dir=copy)
    try:
        port = vm.check.ssh_port
        options = SshOptions(identity=workspace.ssh_key, known_hosts=known, trust_new_host=True,
                             timeout=120, activate_timeout=900)
        target = Target("127.0.0.1", port)
        client.status(target, options)  # records the guest's host key (trust on first use)
        ssh = _ssh_args(port, workspace.ssh_key, known)
        slot_b = ". /usr/lib/fleetforge/bootstate.sh && cat > \"$(find_partition rootfs_b)\""
        pairs = []
        for _ in range(repeat):
            cat_s = _timed(lambda: subprocess.run(["ssh", *ssh, "root@127.0.0.1", slot_b],
                                                  stdin=open(blob, "rb"), check=True))
            install_s, stream_s = _install(options, target, bundle)
            pairs.append(Pair(cat_s, install_s, stream_s))
        print(f"qemu guest {load_manifest(workspace.manifest_path).board.name} ({size_mb} MiB, "
              f"load {_load()}, segments written by {_segment_writer(ssh)}):")
        _report("qemu guest", "ssh-cat", pairs, size_mb)
    finally:
        vm.stop(power_off=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loopback-mb", type=int, default=64,
                        help="random image for the loopback devices (fixed costs fade with size)")
    parser.add_argument("--qemu-mb", type=int, default=32, help="random image for the QEMU guest")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workspace", default="default", help="image for the QEMU guest")
    parser.add_argument("--no-qemu", action="store_true")
    parser.add_argument("--no-loopback", action="store_true")
    args = parser.parse_args()
    print(f"machine: {_machine()}; load {_load()}; OpenSSH "
          f"{subprocess.run(['ssh', '-V'], capture_output=True, text=True).stderr.strip()}")

    base = Path(tempfile.mkdtemp(prefix="ota-bench-", dir="/dev/shm"))
    try:
        keys_dir = base / "keys"
        keys.keygen(keys_dir)
        client_key = loopback.make_client_key(base / "id_ed25519")
        def blob_of(size_mb: int) -> Path:
            blob = base / f"blob-{size_mb}.img"
            blob.write_bytes(random.Random(1).randbytes(size_mb << 20))
            return blob

        def bundle_for(blob: Path, compatible: str, keys_dir: Path | None = None, verity: str = "") -> Bundle:
            path = create_bundle(blob, base / f"{compatible}.ffota", compatible=compatible,
                                 version="9999.0.0", signing_key=keys.load_private(keys_dir),
                                 verity=verity)
            return open_bundle(path, trusted_keys_dir=keys_dir)

        if not args.no_loopback:
            blob = blob_of(args.loopback_mb)
            loopback_bench(base, blob, bundle_for(blob, "bench", keys_dir), keys_dir, client_key,
                           args.loopback_mb, args.repeat)
        if not args.no_qemu:
            blob = blob_of(args.qemu_mb)
            # The image boots verified slots only: the blob gets its dm-verity hash tree, and the
            # baseline copies the same bytes.
            record = append_hash_tree(blob, base / "verity.log").render()
            qemu_bench(args.workspace, base, blob, lambda c: bundle_for(blob, c, verity=record), args.qemu_mb,
                       args.repeat)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"load at the end: {_load()}")


if __name__ == "__main__":
    main()
