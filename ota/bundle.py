"""Update bundles: a tar of `manifest`, `manifest.sig`, `rootfs.img` and `artifact.NAME`s; create, open, check."""
from __future__ import annotations

import hashlib
import io
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path


from fleetforge.errors import UserError
from fleetforge.paths import keys_dir

from ota import keys
from ota.artifacts import ArtifactSource, pack_artifact
from ota.certs import manifest_lines
from ota.chunking import SEGMENT_SIZE, content_chunks, segment_hashes
from ota.manifest import Artifact, Manifest
from ota.signing import Signer

SUFFIX = ".ffota"
HEADER_MEMBERS = ("manifest", "manifest.sig")
ROOTFS_MEMBER = "rootfs.img"
ARTIFACT_PREFIX = "artifact."


@dataclass(frozen=True)
class ArtifactInBundle:
    """Where an artifact's payload lies in the bundle file."""

    artifact: Artifact
    offset: int


@dataclass(frozen=True)
class Bundle:
    """An opened, checked bundle; the root filesystem is read from the file in place."""

    path: Path
    manifest: Manifest
    manifest_bytes: bytes
    signature: bytes
    rootfs_offset: int
    artifacts: tuple[ArtifactInBundle, ...] = ()

    def read(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb") as handle:
            handle.seek(self.rootfs_offset + offset)
            return handle.read(length)


def default_version(rootfs: Path) -> str:
    """A version that grows with every build: YYYY.MMDD.HHMMSS of the root filesystem's mtime."""
    return time.strftime("%Y.%m%d.%H%M%S", time.gmtime(rootfs.stat().st_mtime))


def create_bundle(rootfs: Path | None, out: Path, *, compatible: str, version: str,
                  signing_key: Signer, min_version: str = "",
                  build_id: str = "", segment_size: int = SEGMENT_SIZE,
                  artifacts: tuple[ArtifactSource, ...] = (),
                  extra: tuple[tuple[str, str], ...] = (), security_version: int = 0,
                  certificates: tuple[bytes, ...] = (), verity: str = "") -> Path:
    """Sign and write a bundle; `rootfs` None makes an artifact-only bundle (slots untouched).
    `extra`: more signed `KEY VALUE` manifest lines (e.g. a model's provenance); agents ignore
    keys they do not know. `security_version`: the anti-rollback floor it raises devices to.
    `certificates`: the signer's chain (DER, leaf first), carried as signed `cert` lines.
    `verity`: the slot image's dm-verity record (images/verity.py)."""
    extra = extra + tuple(tuple(line.split(" ", 1)) for line in manifest_lines(certificates))
    if rootfs is None and not artifacts:
        raise UserError("a bundle needs a root filesystem or at least one artifact")
    names = [a.name for a in artifacts]
    if len(set(names)) != len(names):
        raise UserError(f"artifact names must be unique ({', '.join(names)})")
    payloads = [pack_artifact(a) for a in artifacts]
    image = rootfs.read_bytes() if rootfs else b""
    digest = hashlib.sha256(image).hexdigest() if rootfs else ""
    manifest = Manifest(
        compatible=compatible, version=version,
        build_id=build_id or (digest or hashlib.sha256(b"".join(p.data for p in payloads)).hexdigest())[:16],
        rootfs_size=len(image), rootfs_sha256=digest, segment_size=segment_size if rootfs else 0,
        segments=tuple(segment_hashes(image, segment_size)) if rootfs else (),
        chunks=tuple(content_chunks(image)) if rootfs else (),
        min_version=min_version, artifacts=tuple(p.artifact for p in payloads), extra=extra,
        security_version=security_version,
        verity=verity if rootfs else "",
    )
    text = manifest.render()
    signature = signing_key.sign(text)
    mtime = int(rootfs.stat().st_mtime) if rootfs else int(time.time())
    members = [("manifest", text), ("manifest.sig", signature)]
    if rootfs:
        members.append((ROOTFS_MEMBER, image))
    members += [(ARTIFACT_PREFIX + p.artifact.name, p.data) for p in payloads]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(out)
    return out


def _sha256_of(path: Path, offset: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(offset)
        left = size
        while left:
            block = handle.read(min(left, 1 << 20))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def open_bundle(path: Path, *, trusted_keys_dir: Path | None = None, check_data: bool = True) -> Bundle:
    """Open a bundle and refuse it (UserError naming the file) unless it is intact and signed."""
    where = str(path)
    if not path.is_file():
        raise UserError("bundle not found", where=where)
    try:
        with tarfile.open(path, "r:") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if tuple(members)[:2] != HEADER_MEMBERS:
                raise UserError(f"not a FleetForge bundle (members {list(members)})", where=where)
            manifest_bytes = tar.extractfile(members["manifest"]).read()  # type: ignore[union-attr]
            signature = tar.extractfile(members["manifest.sig"]).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError) as error:
        raise UserError(f"bundle is corrupted ({error})", where=where) from None
    keys.check_signature(manifest_bytes, signature, trusted_keys_dir, where=where)
    manifest = Manifest.parse(manifest_bytes, where=f"{where}:manifest")
    expected = list(HEADER_MEMBERS) + ([ROOTFS_MEMBER] if manifest.rootfs_size else []) + \
        [ARTIFACT_PREFIX + a.name for a in manifest.artifacts]
    if list(members) != expected:
        raise UserError(f"bundle is corrupted (members {list(members)}, the signed manifest "
                        f"names {expected})", where=where)
    rootfs = members.get(ROOTFS_MEMBER)
    placed = tuple(ArtifactInBundle(a, members[ARTIFACT_PREFIX + a.name].offset_data)
                   for a in manifest.artifacts)
    bundle = Bundle(path, manifest, manifest_bytes, signature,
                    rootfs.offset_data if rootfs else 0, placed)
    if rootfs is not None and rootfs.size != manifest.rootfs_size:
        raise UserError("bundle is corrupted (rootfs size differs from the manifest)", where=where)
    for item in placed:
        if members[ARTIFACT_PREFIX + item.artifact.name].size != item.artifact.size:
            raise UserError(f"bundle is corrupted (artifact {item.artifact.name}: size differs "
                            "from the signed manifest)", where=where)
    if check_data:
        if rootfs is not None and \
                _sha256_of(path, bundle.rootfs_offset, manifest.rootfs_size) != manifest.rootfs_sha256:
            raise UserError("bundle is corrupted (rootfs sha256 differs from the signed manifest)",
                            where=where)
        for item in placed:
            if _sha256_of(path, item.offset, item.artifact.size) != item.artifact.sha256:
                raise UserError(f"bundle is corrupted (artifact {item.artifact.name}: sha256 "
                                "differs from the signed manifest)", where=where)
    return bundle
