"""A build workspace `workspaces/NAME/`: where its build tree, images, SSH key and logs live."""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetforge.errors import UserError
from fleetforge.paths import workspaces_dir

DEFAULT_WORKSPACE = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace; independent workspaces never share build output (only the cache)."""

    name: str
    root: Path

    @classmethod
    def named(cls, name: str = DEFAULT_WORKSPACE, base: Path | None = None) -> Workspace:
        if not _NAME.fullmatch(name):
            raise UserError(f"invalid workspace name '{name}' (use letters, digits, . _ -)")
        return cls(name, (base or workspaces_dir()) / name)

    @property
    def build_dir(self) -> Path:
        """Intermediate trees (rootfs, initramfs, staging); safe to delete."""
        return self.root / "build"

    @property
    def images_dir(self) -> Path:
        """Final artifacts: disk image, kernel, initramfs, rootfs, manifest."""
        return self.root / "images"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def ssh_key(self) -> Path:
        return self.root / "ssh" / "id_ed25519"

    @property
    def device_host_key(self) -> Path:
        """The device's SSH host key (dropbear's format): seeded into the image's persist
        partition, so the first boot already has it and the boot check can pin it."""
        return self.root / "ssh" / "dropbear_ed25519_host_key"

    @property
    def device_host_key_pub(self) -> Path:
        """Its public half, as a known_hosts key (`ssh-ed25519 AAAA...`)."""
        return self.root / "ssh" / "device_host_key.pub"

    @property
    def manifest_path(self) -> Path:
        return self.images_dir / "manifest.json"

    @property
    def disk_image(self) -> Path:
        return self.images_dir / "disk.img"

    def replace_images(self, finished: Path, *, copy: bool = False) -> None:
        """Swap finished images in at the very end of a build: a failed build leaves the old ones.

        `copy`: `finished` stays where it is (Buildroot's output keeps its own images).
        """
        if copy:
            staging = self.root / "images.partial"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(finished, staging)
            finished = staging
        shutil.rmtree(self.images_dir, ignore_errors=True)
        finished.rename(self.images_dir)

    def ensure_ssh_key(self) -> Path:
        """Create the workspace's SSH key once; its .pub becomes root's authorized_keys."""
        key = self.ssh_key
        if key.exists() and key.with_suffix(".pub").exists():
            return key
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        tmp = key.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        key.with_suffix(".pub").write_bytes(public + f" fleetforge-{self.name}\n".encode())
        tmp.rename(key)
        return key

    def ensure_device_host_key(self) -> Path:
        """Create the device's Ed25519 host key once, in dropbear's format: SSH strings
        "ssh-ed25519" and seed||public (what `dropbearkey -t ed25519` writes)."""
        key = self.device_host_key
        if key.exists() and self.device_host_key_pub.exists():
            return key
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Ed25519PrivateKey.generate()
        raw = serialization.Encoding.Raw
        seed = private.private_bytes(raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        public = private.public_key().public_bytes(raw, serialization.PublicFormat.Raw)

        def string(data: bytes) -> bytes:
            return len(data).to_bytes(4, "big") + data

        tmp = key.with_suffix(".tmp")
        tmp.write_bytes(string(b"ssh-ed25519") + string(seed + public))
        tmp.chmod(0o600)
        self.device_host_key_pub.write_bytes(private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b"\n")
        tmp.rename(key)
        return key
