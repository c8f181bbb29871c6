"""OTA test helpers: deterministic images, and a rig (loopback device + SSH server + options)."""
from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from fleetforge.tools import run_tool
from ota import keys, loopback, protocol
from ota.bundle import Bundle
from ota.client import SshOptions
from fleetforge.ssh import Target

COMPATIBLE = "fleetforge-test-board"
SMALL_SEGMENT = 128 << 10
SQUASH_SEGMENT = 512 << 10


def make_tree(root: Path, *, seed: int = 7, files: int = 120) -> Path:
    """A tree shaped like a small root filesystem: binaries (host libraries), text, random blobs."""
    rnd = random.Random(seed)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "usr" / "lib").mkdir(parents=True, exist_ok=True)
    libs = sorted(p for p in Path("/usr/lib/x86_64-linux-gnu").glob("*.so*") if p.is_file())
    total = 0
    for lib in libs:
        if total > 6 << 20:
            break
        size = lib.stat().st_size
        if size < 2 << 20:
            shutil.copyfile(lib, root / "usr" / "lib" / lib.name)
            total += size
    for i in range(files):
        words = " ".join(rnd.choice(["robot", "servo", "wheel", "lidar", "arm", str(i)])
                         for _ in range(rnd.randint(10, 2000)))
        (root / "etc" / f"conf{i:03d}.txt").write_text(words)
    (root / "usr" / "firmware.bin").write_bytes(rnd.randbytes(2_500_000))
    (root / "etc" / "version").write_text("1.0.0\n")
    return root


def squash(tree: Path, out: Path) -> Path:
    run_tool(["mksquashfs", tree, out, "-noappend", "-quiet", "-no-progress", "-comp", "gzip",
              "-all-root", "-mkfs-time", "0", "-all-time", "0"], debian_package="squashfs-tools")
    return out


def small_image(out: Path, *, seed: int, size: int = 640 << 10) -> Path:
    """A raw image with no file system: enough for the state machine and transfer tests."""
    out.write_bytes(random.Random(seed).randbytes(size))
    return out


@dataclass(frozen=True)
class SquashImages:
    v1: Path
    v2: Path          # v1 with one file changed
    v2_bundle: Bundle
    v1_bundle: Bundle


@dataclass(frozen=True)
class SmallImages:
    v1: Path
    v2: Path
    v2_bundle: Bundle


def install_stream(bundle: Bundle, *, manifest: bytes | None = None, signature: bytes | None = None,
                   records: bytes = b"") -> bytes:
    """The bytes a client sends to `fleetforge-ota install` (ota/protocol.py), to talk to the
    agent directly: what a hostile or broken client could send."""
    text = bundle.manifest_bytes if manifest is None else manifest
    return (protocol.manifest_header(len(text)) + text
            + (bundle.signature if signature is None else signature) + records + protocol.END)


def run_install(rig: Rig, stream: bytes, *args: str):  # type: ignore[no-untyped-def]
    with rig.options.connect(rig.target) as conn:
        return conn.run([rig.options.agent, "install", *args], stdin=stream)


@dataclass(frozen=True)
class ModelBundles:
    v1: Bundle  # artifact-only: file set `model`, version 1.5.0
    v2: Bundle  # the same with other weights, version 1.6.0


@dataclass(frozen=True)
class VerifiedImages:
    """Slot images with their dm-verity hash trees, for a device that boots verified slots."""

    v1: Path
    v2: Path
    v2_bundle: Bundle  # carries v2's verity record
    v1_verity: str     # v1's record, on the device's boot partition for both slots


@dataclass
class Rig:
    """One loopback device: its files, the SSH server in front of it, and client options."""

    device: loopback.FakeDevice
    server: loopback.LoopbackServer
    options: SshOptions
    target: Target


def make_rig(tmp: Path, kind: str, image: Path, ota_keys: Path, client_key: Path, *,
             auto_reboot: bool = True, timeout: float = 20.0,
             server: loopback.LoopbackServer | None = None, verity: str = "",
             receiver: bool = True) -> Rig:
    if server is None:
        start = loopback.start_openssh if kind == "openssh" else loopback.start_dropbear
        server = start(tmp / "server", client_key)
    device = loopback.make_fake_device(tmp / "device", image, compatible=COMPATIBLE,
                                       trusted_keys=[ota_keys / keys.PUBLIC_NAME],
                                       ssh_port=server.port, auto_reboot=auto_reboot,
                                       verity=verity, receiver=receiver)
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    options = SshOptions(identity=client_key, known_hosts=known_hosts, agent=device.agent,
                         timeout=timeout)
    return Rig(device, server, options, Target("127.0.0.1", server.port))


