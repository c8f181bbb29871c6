"""Update bundles: a tar of `manifest`, `manifest.sig` and `rootfs.img`; create, open, check."""
from __future__ import annotations

import hashlib
import io
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetforge.errors import UserError

from ota import keys
from ota.chunking import SEGMENT_SIZE, content_chunks, segment_hashes
from ota.manifest import Manifest

SUFFIX = ".ffota"
MEMBERS = ("manifest", "manifest.sig", "rootfs.img")


@dataclass(frozen=True)
class Bundle:
    """An opened, checked bundle; the root filesystem is read from the file in place."""

    path: Path
    manifest: Manifest
    manifest_bytes: bytes
    signature: bytes
    rootfs_offset: int

    def read(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb") as handle:
            handle.seek(self.rootfs_offset + offset)
            return handle.read(length)


def default_version(rootfs: Path) -> str:
    """A version that grows with every build: YYYY.MMDD.HHMMSS of the root filesystem's mtime."""
    return time.strftime("%Y.%m%d.%H%M%S", time.gmtime(rootfs.stat().st_mtime))


def create_bundle(rootfs: Path, out: Path, *, compatible: str, version: str,
                  signing_key: Ed25519PrivateKey, min_version: str = "",
                  build_id: str = "", segment_size: int = SEGMENT_SIZE) -> Path:
    image = rootfs.read_bytes()
    digest = hashlib.sha256(image).hexdigest()
    manifest = Manifest(
        compatible=compatible, version=version, build_id=build_id or digest[:16],
        rootfs_size=len(image), rootfs_sha256=digest, segment_size=segment_size,
        segments=tuple(segment_hashes(image, segment_size)), chunks=tuple(content_chunks(image)),
        min_version=min_version,
    )
    text = manifest.render()
    signature = signing_key.sign(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("manifest", text), ("manifest.sig", signature)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(rootfs.stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("rootfs.img")
        info.size = len(image)
        info.mtime = int(rootfs.stat().st_mtime)
        tar.addfile(info, io.BytesIO(image))
    tmp.rename(out)
    return out


def open_bundle(path: Path, *, trusted_keys_dir: Path | None = None, check_data: bool = True) -> Bundle:
    """Open a bundle and refuse it (UserError naming the file) unless it is intact and signed."""
    where = str(path)
    if not path.is_file():
        raise UserError("bundle not found", where=where)
    try:
        with tarfile.open(path, "r:") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if tuple(members) != MEMBERS:
                raise UserError(f"not a FleetForge bundle (members {list(members)})", where=where)
            manifest_bytes = tar.extractfile(members["manifest"]).read()  # type: ignore[union-attr]
            signature = tar.extractfile(members["manifest.sig"]).read()  # type: ignore[union-attr]
            rootfs = members["rootfs.img"]
    except (tarfile.TarError, OSError) as error:
        raise UserError(f"bundle is corrupted ({error})", where=where) from None
    trusted = keys.load_trusted(trusted_keys_dir or keys.KEYS_DIR)
    if not trusted:
        raise UserError("no trusted OTA public key to check the bundle with (run: invoke ota.keygen)",
                        where=str(trusted_keys_dir or keys.KEYS_DIR))
    if not keys.signature_ok(manifest_bytes, signature, trusted):
        raise UserError("bundle signature does not verify against any trusted key", where=where)
    manifest = Manifest.parse(manifest_bytes, where=f"{where}:manifest")
    bundle = Bundle(path, manifest, manifest_bytes, signature, rootfs.offset_data)
    if rootfs.size != manifest.rootfs_size:
        raise UserError("bundle is corrupted (rootfs size differs from the manifest)", where=where)
    if check_data:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            handle.seek(bundle.rootfs_offset)
            left = manifest.rootfs_size
            while left:
                block = handle.read(min(left, 1 << 20))
                if not block:
                    break
                digest.update(block)
                left -= len(block)
        if digest.hexdigest() != manifest.rootfs_sha256:
            raise UserError("bundle is corrupted (rootfs sha256 differs from the signed manifest)",
                            where=where)
    return bundle
