"""The bundle manifest: a line-based text file the device's sh agent can read, signed with Ed25519."""
from __future__ import annotations

from dataclasses import dataclass, field

import re

from fleetforge.errors import UserError

from ota.chunking import Chunk

FORMAT = "fleetforge-ota-bundle/1"
# Bundles with artifacts (or without a root filesystem) say /2: an agent that only knows /1 refuses
# them instead of taking an artifact-only bundle for an empty root filesystem.
FORMAT_ARTIFACTS = "fleetforge-ota-bundle/2"
FORMATS = (FORMAT, FORMAT_ARTIFACTS)
ARTIFACT_KINDS = ("file", "tree")  # one file, or a file set (a tar unpacked into the directory)
# An artifact's name and a file artifact's file name are one path component each (never . or ..):
# the device builds paths from them, so a signed manifest is still checked (the agent checks the
# same pattern).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
VERSION_PATTERN = re.compile(r"[A-Za-z0-9.+-]{1,64}")


@dataclass(frozen=True)
class Artifact:
    """An extra update artifact (a model, a file set), installed under /persist/artifacts/NAME/."""

    name: str
    kind: str        # "file" or "tree"
    size: int        # bytes of the payload in the bundle (the file, or the tar of the file set)
    sha256: str
    filename: str    # the file's name inside the artifact directory ("-" for a tree)

    def render(self) -> str:
        return f"artifact {self.name} {self.kind} {self.size} {self.sha256} {self.filename}"

    def check(self) -> None:
        """Refuse names the device would turn into paths outside /persist/artifacts."""
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"artifact name '{self.name}' must match {NAME_PATTERN.pattern}")
        if self.kind == "file" and (not NAME_PATTERN.fullmatch(self.filename)):
            raise ValueError(f"artifact {self.name}: file name '{self.filename}' must be one plain "
                             f"name ({NAME_PATTERN.pattern})")
        if self.kind == "tree" and self.filename != "-":
            raise ValueError(f"artifact {self.name}: a file set has no file name")


@dataclass(frozen=True)
class Manifest:
    """What a bundle installs and for which device; every byte of it is covered by the signature."""

    compatible: str
    version: str
    build_id: str
    rootfs_size: int          # 0: the bundle carries only artifacts and leaves the slots alone
    rootfs_sha256: str
    segment_size: int
    segments: tuple[str, ...]
    chunks: tuple[Chunk, ...]
    min_version: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())
    artifacts: tuple[Artifact, ...] = field(default=())
    # Anti-rollback: a device refuses bundles below the highest security version it ever committed
    # or ran (stored on /persist); unlike `version`, no option lowers it.
    security_version: int = 0
    # The root filesystem's dm-verity record (images/verity.py, docs/ab-boot.md): the device stores
    # it for the slot at Activate and its boot chain refuses the slot unless the content matches.
    verity: str = ""

    @property
    def format(self) -> str:
        return FORMAT if self.rootfs_size and not self.artifacts else FORMAT_ARTIFACTS

    def render(self) -> bytes:
        lines = [
            f"format {self.format}",
            f"compatible {self.compatible}",
            f"version {self.version}",
        ]
        if self.min_version:
            lines.append(f"min_version {self.min_version}")
        if self.security_version:
            lines.append(f"security_version {self.security_version}")
        lines.append(f"build_id {self.build_id}")
        if self.rootfs_size:
            lines += [
                f"rootfs_size {self.rootfs_size}",
                f"rootfs_sha256 {self.rootfs_sha256}",
                f"segment_size {self.segment_size}",
            ]
            if self.verity:
                lines.append(f"verity {self.verity}")
        lines += [f"{key} {value}" for key, value in self.extra]
        lines += [a.render() for a in self.artifacts]
        lines += [f"seg {i} {digest}" for i, digest in enumerate(self.segments)]
        lines += [f"chunk {c.offset} {c.length} {c.sha256}" for c in self.chunks]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse(cls, text: bytes, where: str) -> Manifest:
        single: dict[str, str] = {}
        segments: list[str] = []
        chunks: list[Chunk] = []
        extra: list[tuple[str, str]] = []
        artifacts: list[Artifact] = []
        for number, raw in enumerate(text.decode("utf-8", "replace").splitlines(), 1):
            fields = raw.split()
            if not fields:
                continue
            try:
                if fields[0] == "seg":
                    if int(fields[1]) != len(segments):
                        raise ValueError("segments out of order")
                    segments.append(fields[2])
                elif fields[0] == "artifact":
                    if len(fields) != 6 or fields[2] not in ARTIFACT_KINDS:
                        raise ValueError("expected: artifact NAME file|tree SIZE SHA256 FILENAME")
                    artifact = Artifact(fields[1], fields[2], int(fields[3]), fields[4], fields[5])
                    artifact.check()
                    artifacts.append(artifact)
                elif fields[0] == "chunk":
                    chunks.append(Chunk(int(fields[1]), int(fields[2]), fields[3]))
                elif fields[0] == "verity":
                    single["verity"] = " ".join(fields[1:])
                elif fields[0] in {"format", "compatible", "version", "min_version", "build_id",
                                   "rootfs_size", "rootfs_sha256", "segment_size",
                                   "security_version"}:
                    single[fields[0]] = fields[1]
                else:
                    extra.append((fields[0], " ".join(fields[1:])))
            except (IndexError, ValueError) as error:
                raise UserError(f"malformed manifest line: {error}", where=f"{where}:{number}") from None
        if single.get("format") not in FORMATS:
            raise UserError(f"not a {' or '.join(FORMATS)} manifest", where=where)
        try:
            manifest = cls(
                compatible=single["compatible"], version=single["version"],
                build_id=single["build_id"], rootfs_size=int(single.get("rootfs_size", "0")),
                rootfs_sha256=single.get("rootfs_sha256", ""),
                segment_size=int(single.get("segment_size", "0")),
                segments=tuple(segments), chunks=tuple(chunks),
                min_version=single.get("min_version", ""), extra=tuple(extra),
                artifacts=tuple(artifacts),
                security_version=int(single.get("security_version", "0")),
                verity=single.get("verity", ""),
            )
        except KeyError as missing:
            raise UserError(f"manifest lacks {missing}", where=where) from None
        except ValueError as error:
            raise UserError(f"malformed manifest: {error}", where=where) from None
        if not VERSION_PATTERN.fullmatch(manifest.version):
            raise UserError(f"version '{manifest.version}' must match {VERSION_PATTERN.pattern}",
                            where=where)
        return manifest

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    def segment_length(self, index: int) -> int:
        return min(self.segment_size, self.rootfs_size - index * self.segment_size)
