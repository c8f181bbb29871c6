"""The bundle manifest: a line-based text file the device's sh agent can read, signed with Ed25519."""
from __future__ import annotations

from dataclasses import dataclass, field

from fleetforge.errors import UserError

from ota.chunking import Chunk

FORMAT = "fleetforge-ota-bundle/1"


@dataclass(frozen=True)
class Manifest:
    """What a bundle installs and for which device; every byte of it is covered by the signature."""

    compatible: str
    version: str
    build_id: str
    rootfs_size: int
    rootfs_sha256: str
    segment_size: int
    segments: tuple[str, ...]
    chunks: tuple[Chunk, ...]
    min_version: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())

    def render(self) -> bytes:
        lines = [
            f"format {FORMAT}",
            f"compatible {self.compatible}",
            f"version {self.version}",
        ]
        if self.min_version:
            lines.append(f"min_version {self.min_version}")
        lines += [
            f"build_id {self.build_id}",
            f"rootfs_size {self.rootfs_size}",
            f"rootfs_sha256 {self.rootfs_sha256}",
            f"segment_size {self.segment_size}",
        ]
        lines += [f"{key} {value}" for key, value in self.extra]
        lines += [f"seg {i} {digest}" for i, digest in enumerate(self.segments)]
        lines += [f"chunk {c.offset} {c.length} {c.sha256}" for c in self.chunks]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse(cls, text: bytes, where: str) -> Manifest:
        single: dict[str, str] = {}
        segments: list[str] = []
        chunks: list[Chunk] = []
        extra: list[tuple[str, str]] = []
        for number, raw in enumerate(text.decode("utf-8", "replace").splitlines(), 1):
            fields = raw.split()
            if not fields:
                continue
            try:
                if fields[0] == "seg":
                    if int(fields[1]) != len(segments):
                        raise ValueError("segments out of order")
                    segments.append(fields[2])
                elif fields[0] == "chunk":
                    chunks.append(Chunk(int(fields[1]), int(fields[2]), fields[3]))
                elif fields[0] in {"format", "compatible", "version", "min_version", "build_id",
                                   "rootfs_size", "rootfs_sha256", "segment_size"}:
                    single[fields[0]] = fields[1]
                else:
                    extra.append((fields[0], " ".join(fields[1:])))
            except (IndexError, ValueError) as error:
                raise UserError(f"malformed manifest line: {error}", where=f"{where}:{number}") from None
        if single.get("format") != FORMAT:
            raise UserError(f"not a {FORMAT} manifest", where=where)
        try:
            return cls(
                compatible=single["compatible"], version=single["version"],
                build_id=single["build_id"], rootfs_size=int(single["rootfs_size"]),
                rootfs_sha256=single["rootfs_sha256"], segment_size=int(single["segment_size"]),
                segments=tuple(segments), chunks=tuple(chunks),
                min_version=single.get("min_version", ""), extra=tuple(extra),
            )
        except KeyError as missing:
            raise UserError(f"manifest lacks {missing}", where=where) from None

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    def segment_length(self, index: int) -> int:
        return min(self.segment_size, self.rootfs_size - index * self.segment_size)
