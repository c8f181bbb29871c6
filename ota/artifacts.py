"""Extra update artifacts (a model, a file set): parse `NAME=PATH`, pack each into a bundle payload."""
from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError

from ota.manifest import NAME_PATTERN, Artifact


@dataclass(frozen=True)
class ArtifactSource:
    """What the user asked for: `--artifact NAME=PATH` (a file, or a directory = a file set)."""

    name: str
    path: Path

    @classmethod
    def parse(cls, text: str) -> ArtifactSource:
        name, sep, path = text.partition("=")
        if not sep or not path:
            raise UserError(f"--artifact wants NAME=PATH, got '{text}'")
        if not NAME_PATTERN.fullmatch(name):
            raise UserError(f"artifact name '{name}' must match {NAME_PATTERN.pattern}")
        source = Path(path)
        if not (source.is_file() or source.is_dir()):
            raise UserError("artifact not found (a file or a directory)", where=str(source))
        return cls(name, source)


@dataclass(frozen=True)
class ArtifactPayload:
    """An artifact ready for a bundle: its manifest line and the bytes that cross the network."""

    artifact: Artifact
    data: bytes


def _file_set_tar(root: Path) -> bytes:
    """A reproducible tar of a directory: sorted, owner root, mtime 0, regular files and dirs only,
    so two builders of the same tree sign the same hash."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise UserError("a file set may hold only regular files and directories",
                                where=str(path))
            info = tarfile.TarInfo(rel)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            info.mode = path.stat().st_mode & 0o755
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = path.stat().st_size
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
    return out.getvalue()


def pack_artifact(source: ArtifactSource) -> ArtifactPayload:
    if source.path.is_dir():
        kind, filename, data = "tree", "-", _file_set_tar(source.path)
    else:
        if not NAME_PATTERN.fullmatch(source.path.name):
            raise UserError(f"artifact file name must match {NAME_PATTERN.pattern}",
                            where=str(source.path))
        kind, filename, data = "file", source.path.name, source.path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    return ArtifactPayload(Artifact(source.name, kind, len(data), digest, filename), data)
