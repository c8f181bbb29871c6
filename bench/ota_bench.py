"""OTA bench: full and delta update time and bytes on the wire, and transfer throughput as a ratio
to plain `scp` of the same file over the same loopback link.

Devices are loopback devices (OpenSSH sshd and dropbear on 127.0.0.1, the busybox-sh agent, slot
files in RAM); the scp baseline copies the same root filesystem image to the same server, into
the same RAM directory, in the same run. Run:

    python bench/ota_bench.py [--size-mb 64] [--repeat 3] [--rootfs workspaces/NAME/images/rootfs.squashfs]
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ota import client, keys, loopback
from ota.bundle import create_bundle, open_bundle
from ota.client import SshOptions
from fleetforge.ssh import Target


@dataclass
class Row:
    server: str
    case: str
    seconds: float
    sent_mb: float
    wire_mb: float
    note: str = ""


def _scp_seconds(server: loopback.LoopbackServer, known_hosts: Path, source: Path, dest: Path) -> float:
    args = ["scp", "-q", "-P", str(server.port), "-i", str(server.client_key),
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes"]
    if server.kind == "dropbear":
        args.append("-O")  # dropbear has no SFTP server: the classic scp protocol
    started = time.monotonic()
    subprocess.run(args + [str(source), f"root@127.0.0.1:{dest}"], check=True)
    return time.monotonic() - started


def _one_file_change(rootfs: Path, out: Path, work: Path) -> Path:
    """The same image with one file changed, re-squashed with the image backend's settings."""
    tree = work / "tree"
    subprocess.run(["unsquashfs", "-q", "-d", str(tree), str(rootfs)], check=True)
    target = next(p for p in sorted(tree.rglob("*")) if p.is_file() and not p.is_symlink()
                  and p.stat().st_size > 1000)
    target.write_bytes(target.read_bytes() + b"\n# bench change\n")
    subprocess.run(["mksquashfs", str(tree), str(out), "-noappend", "-all-root", "-comp", "xz",
                    "-no-progress", "-mkfs-time", "0", "-all-time", "0", "-quiet"], check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=64, help="random image for throughput")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rootfs", type=Path, help="a built squashfs for the delta case "
                        "(default: the newest workspaces/*/images/rootfs.squashfs)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="ota-bench-", dir="/dev/shm"))
    try:
        keys.keygen(base / "keys")
        signer = keys.load_private(base / "keys")
        client_key = loopback.make_client_key(base / "id_ed25519")
        blob = base / "blob.img"
        blob.write_bytes(random.Random(1).randbytes(args.size_mb << 20))
        full = open_bundle(create_bundle(blob, base / "full.ffota", compatible="bench",
                                         version="2.0.0", signing_key=signer),
                           trusted_keys_dir=base / "keys")
        zero = base / "zero.img"
        zero.write_bytes(bytes(1 << 20))
        rootfs = args.rootfs or max(Path("workspaces").glob("*/images/rootfs.squashfs"),
                                    key=lambda p: p.stat().st_mtime, default=None)
        delta_pair = None
        if rootfs:
            v2 = _one_file_change(rootfs, base / "v2.squashfs", base)
            b1 = open_bundle(create_bundle(rootfs, base / "v1.ffota", compatible="bench",
                                           version="1.0.0", signing_key=signer),
                             trusted_keys_dir=base / "keys")
            b2 = open_bundle(create_bundle(v2, base / "v2.ffota", compatible="bench",
                                           version="2.0.0", signing_key=signer),
                             trusted_keys_dir=base / "keys")
            delta_pair = (rootfs, b1, b2)

        rows: list[Row] = []
        ratios: dict[str, list[float]] = {}
        stream_ratios: dict[str, list[float]] = {}
        for kind, start in (("openssh", loopback.start_openssh), ("dropbear", loopback.start_dropbear)):
            for attempt in range(args.repeat):
                work = base / f"{kind}-{attempt}"
                server = start(work / "server", client_key)
                try:
                    known = work / "known_hosts"
                    known.write_text(server.known_hosts_line())
                    device = loopback.make_fake_device(work / "dev", zero, compatible="bench",
                                                       trusted_keys=[base / "keys" / keys.PUBLIC_NAME],
                                                       slot_size=(args.size_mb + 8) << 20,
                                                       ssh_port=server.port, auto_reboot=True)
                    options = SshOptions(identity=client_key, known_hosts=known, agent=device.agent)
                    target = Target("127.0.0.1", server.port)
                    scp_s = _scp_seconds(server, known, blob, work / "dev" / "scp-copy.img")
                    with options.connect(target) as conn:
                        started = time.monotonic()
                        result = client.transfer(conn, options, full, show_progress=False)
                        deploy_s = time.monotonic() - started
                        wire = conn.wire_bytes
                    ratio = scp_s / deploy_s
                    stream_ratio = scp_s / result.stream_seconds
                    ratios.setdefault(kind, []).append(ratio)
                    stream_ratios.setdefault(kind, []).append(stream_ratio)
                    rows.append(Row(kind, f"full {args.size_mb} MiB (begin+stream+re-verify+activate)",
                                    deploy_s, result.sent_bytes / 1e6, wire / 1e6,
                                    f"scp {scp_s:.2f} s, ratio {ratio:.2f}; stream alone "
                                    f"{result.stream_seconds:.2f} s, ratio {stream_ratio:.2f}"))
                    if delta_pair and attempt == 0:
                        rootfs_v1, b1, b2 = delta_pair
                        dev2 = loopback.make_fake_device(work / "dev2", rootfs_v1, compatible="bench",
                                                         trusted_keys=[base / "keys" / keys.PUBLIC_NAME],
                                                         ssh_port=server.port, auto_reboot=True)
                        o2 = replace(options, agent=dev2.agent)
                        for label, bases in (("full", ()), ("delta", (b1,))):
                            if label == "delta":
                                dev2.power_cycle()  # back to a device that runs v1 on A
                                shutil.rmtree(dev2.state_dir, ignore_errors=True)
                                (dev2.boot_dir / "bootstate").unlink(missing_ok=True)
                                (dev2.root / "run" / "booted-slot").write_text("A\n")
                            r = client.deploy(target, o2, b2, show_progress=False,
                                              boot_timeout=60, bases=bases)
                            rows.append(Row(kind, f"{label} update of {rootfs_v1.name} "
                                            f"({b2.manifest.rootfs_size / 1e6:.1f} MB), one file "
                                            "changed, incl. reboot+health check",
                                            r.seconds, r.sent_bytes / 1e6, r.wire_bytes / 1e6,
                                            f"{100 * r.sent_bytes / b2.manifest.rootfs_size:.1f}% "
                                            f"of full; {r.message}"))
                finally:
                    server.stop()
                    shutil.rmtree(work, ignore_errors=True)

        print(f"{'server':9} {'case':70} {'seconds':>8} {'sent MB':>8} {'wire MB':>8}  note")
        for row in rows:
            print(f"{row.server:9} {row.case:70} {row.seconds:8.2f} {row.sent_mb:8.2f} "
                  f"{row.wire_mb:8.2f}  {row.note}")
        for kind, values in ratios.items():
            print(f"{kind}: throughput ratio to scp, whole install (median of {len(values)}): "
                  f"{statistics.median(values):.2f}; segment stream alone: "
                  f"{statistics.median(stream_ratios[kind]):.2f}  (target >= 0.8)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
