"""End to end: build the default image for real, check its content, boot it, SSH in (host key pinned)."""
from __future__ import annotations

import gzip
import json
import stat
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetforge.errors import UserError
from fleetforge.hashing import sha256_file
from fleetforge.ssh import Connection, HostKey, PinnedKeys, Target
from images.manifest import load_manifest
from images.workspace import Workspace

pytestmark = [pytest.mark.slow]

ROOTFS_LIMIT = 24 << 20


def _cpio_entries(initramfs) -> dict[str, tuple[int, int, int]]:
    """name -> (mode, rdevmajor, rdevminor) from a gzip newc archive."""
    data = gzip.decompress(initramfs.read_bytes())
    entries, pos = {}, 0
    while True:
        header = data[pos:pos + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, rmaj, rmin)
        pos += size
        pos += -pos % 4


def test_manifest_lists_layers_packages_and_every_artifact(built_image):
    ws = built_image.workspace
    manifest = load_manifest(ws.manifest_path)
    raw = json.loads(ws.manifest_path.read_text())
    assert raw["board"]["name"].endswith("qemu-aarch64")
    assert any(layer.endswith("core/minimal") for layer in manifest.layers)
    packages = {(p.name, p.role): p for p in manifest.packages}
    assert ("busybox-static", "rootfs") in packages and ("busybox-static", "initramfs") in packages
    packages = {p.name: p for p in manifest.packages if p.role == "rootfs"}
    assert packages["dropbear-bin"].version  # e.g. 2022.83-1+deb12u3
    assert "libc6" in packages  # pulled in by apt's dependency resolution
    assert any(p.role == "kernel" and p.name.startswith("linux-image-") for p in manifest.packages)
    on_disk = sorted(p.name for p in ws.images_dir.iterdir() if p.name != "manifest.json")
    assert sorted(a.path for a in manifest.artifacts) == on_disk
    for artifact in manifest.artifacts:
        path = ws.images_dir / artifact.path
        assert artifact.size == path.stat().st_size
        assert artifact.sha256 == sha256_file(path)


def test_rootfs_is_small_pruned_and_has_the_workspace_key(built_image):
    ws = built_image.workspace
    assert (ws.images_dir / "rootfs.squashfs").stat().st_size < ROOTFS_LIMIT
    tree = ws.build_dir / "rootfs"
    assert not (tree / "usr/share/doc").exists()
    assert not list(tree.glob("usr/lib/*/gconv"))
    assert (tree / "bin/sh").is_symlink() and (tree / "sbin/init").is_symlink()
    assert (tree / "usr/sbin/dropbear").is_file()
    assert (tree / "root/.ssh/authorized_keys").read_text() == ws.ssh_key.with_suffix(".pub").read_text()
    assert (tree / "etc/hostname").read_text() == "robot\n"  # BR2_TARGET_GENERIC_HOSTNAME of core/minimal
    assert (tree / "etc/issue").read_text().startswith("Welcome to FleetForge")  # ..._ISSUE
    assert "DHCP_INTERFACE=eth0\n" in (tree / "etc/fleetforge/network").read_text()  # BR2_SYSTEM_DHCP
    assert (tree / "etc/shadow").read_text().startswith("root::")  # no root password set


def test_initramfs_has_init_modules_in_dependency_order_and_console(built_image):
    entries = _cpio_entries(built_image.workspace.images_dir / "initramfs.img")
    mode, major, minor = entries["dev/console"]
    assert stat.S_ISCHR(mode) and (major, minor) == (5, 1)
    assert entries["init"][0] & 0o111
    version = built_image.manifest.kernel_version
    order = (built_image.workspace.build_dir / "initramfs/etc/fleetforge/modules.order").read_text()
    loaded = [line.rsplit("/", 1)[1] for line in order.splitlines() if not line.startswith("#")]
    assert loaded.index("virtio_pci.ko") < loaded.index("virtio_blk.ko")
    # Dependencies first (Debian's generic kernel builds virtio in; dm-verity needs two modules).
    assert loaded.index("dm-mod.ko") < loaded.index("dm-bufio.ko") < loaded.index("dm-verity.ko")
    assert "squashfs.ko" in loaded
    for line in order.splitlines()[1:]:
        assert line.lstrip("/") in entries
        assert line.startswith(f"/lib/modules/{version}/")


def test_disk_has_the_ab_partitions(built_image):
    # Read the GPT directly: header at LBA 1, 128-byte entries from LBA 2, names in UTF-16LE.
    with open(built_image.workspace.disk_image, "rb") as disk:
        header = disk.read(1024)[512:]
        assert header[:8] == b"EFI PART"
        entry_lba, count, size = struct.unpack_from("<QII", header, 72)
        disk.seek(entry_lba * 512)
        table = disk.read(count * size)
    parts = []
    for i in range(count):
        entry = table[i * size:(i + 1) * size]
        first, last = struct.unpack_from("<QQ", entry, 32)
        if first:
            parts.append((entry[56:128].decode("utf-16-le").rstrip("\0"), (last - first + 1) * 512))
    assert [name for name, _ in parts] == ["boot", "rootfs_a", "rootfs_b", "persist"]
    squashfs = built_image.workspace.images_dir / "rootfs.squashfs"
    assert parts[1][1] == parts[2][1] >= squashfs.stat().st_size


@pytest.mark.qemu
def test_boots_healthy_and_ssh_accepts_the_workspace_key(booted_machine):
    check = booted_machine.check
    assert check.hostname == "robot"
    assert check.slot == "A"
    assert check.outcome == "good"  # the marker waited for the boot step, and says what it decided
    assert check.ssh_seconds < 120
    with booted_machine.ssh() as conn:  # pinned to the host key the build created
        def run(command: str) -> str:
            result = conn.run(["sh", "-c", command])
            assert result.status == 0, result.stderr
            return result.stdout

        assert run("cat /run/fleetforge/booted-slot").strip() == "A"
        assert run("hostname").strip() == "robot"
        mounts = run("cat /proc/mounts")
        assert " / squashfs ro" in mounts
        assert " /persist ext4 rw" in mounts and " /boot ext4 rw" in mounts
        assert run("ls /persist/dropbear").split() == ["dropbear_ed25519_host_key"]
        # The marker came after the boot step: S90markgood (or feature/ota's agent) committed A.
        assert run("cat /run/fleetforge/boot-settled") == "good slot A\n"
        assert "BOOT_A_LEFT=3" in run("cat /boot/bootstate")
        assert run("cat /etc/fleetforge/release").count("COMPATIBLE=") == 1
        assert "inet addr:10.0.2.15" in run("ifconfig eth0")


@pytest.mark.qemu
def test_ssh_rejects_a_key_that_is_not_the_workspaces(booted_machine, tmp_path):
    stranger = tmp_path / "stranger"
    stranger.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()))
    stranger.chmod(0o600)
    pinned = PinnedKeys((HostKey.parse(booted_machine.workspace.device_host_key_pub.read_text()),))
    with pytest.raises(UserError, match="the device refused key stranger for user root"):
        Connection(Target("127.0.0.1", booted_machine.check.ssh_port), identity=stranger,
                   host_keys=pinned, timeout=10)


@pytest.mark.qemu
def test_boot_check_refuses_a_guest_with_another_host_key(booted_machine, tmp_path):
    # The build seeded the device's host key and the boot check pins it: a guest (or anything
    # on its port) answering with another key is refused, and nothing records it.
    other = Workspace("other", tmp_path / "other")
    other.ensure_device_host_key()
    with pytest.raises(UserError, match="HOST KEY CHANGED"):
        Connection(Target("127.0.0.1", booted_machine.check.ssh_port),
                   identity=booted_machine.workspace.ssh_key,
                   host_keys=PinnedKeys((HostKey.parse(other.device_host_key_pub.read_text()),)),
                   timeout=10)
