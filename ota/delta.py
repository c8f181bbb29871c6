"""Delta planning: which bytes of each segment the device copies from its booted slot, which cross."""
from __future__ import annotations

from dataclasses import dataclass

from ota.chunking import Chunk
from ota.manifest import Manifest


@dataclass(frozen=True)
class Piece:
    """Part of a segment: `copy` bytes from the device's booted slot at `source`, or `send` them
    from the bundle at `source` (an offset in the new image)."""

    kind: str  # "copy" or "send"
    source: int
    length: int


def parse_device_index(text: str) -> dict[str, int]:
    """The chunk lines of the device's booted slot (sent after BEGIN) as sha256 -> offset there."""
    index: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0] == "chunk":
            index.setdefault(fields[3], int(fields[1]))
    return index


def plan_segment(manifest: Manifest, segment: int, have: dict[str, int]) -> list[Piece]:
    """Pieces that rebuild one segment; adjacent pieces of the same kind and source are merged."""
    start = segment * manifest.segment_size
    end = start + manifest.segment_length(segment)
    pieces: list[Piece] = []
    for chunk in _chunks_overlapping(manifest.chunks, start, end):
        lo, hi = max(start, chunk.offset), min(end, chunk.offset + chunk.length)
        old = have.get(chunk.sha256)
        piece = (Piece("copy", old + (lo - chunk.offset), hi - lo) if old is not None
                 else Piece("send", lo, hi - lo))
        if pieces and pieces[-1].kind == piece.kind and \
                pieces[-1].source + pieces[-1].length == piece.source:
            pieces[-1] = Piece(piece.kind, pieces[-1].source, pieces[-1].length + piece.length)
        else:
            pieces.append(piece)
    if not manifest.chunks:  # a manifest without chunk table: send everything
        pieces = [Piece("send", start, end - start)]
    return pieces


def _chunks_overlapping(chunks: tuple[Chunk, ...], start: int, end: int) -> list[Chunk]:
    # Chunks are sorted by offset; a bisect keeps planning linear over the whole image.
    import bisect
    offsets = [c.offset for c in chunks]
    first = max(0, bisect.bisect_right(offsets, start) - 1)
    out = []
    for chunk in chunks[first:]:
        if chunk.offset >= end:
            break
        if chunk.offset + chunk.length > start:
            out.append(chunk)
    return out


def bytes_to_send(manifest: Manifest, have: dict[str, int], first_segment: int = 0) -> int:
    return sum(p.length for s in range(first_segment, manifest.segment_count)
               for p in plan_segment(manifest, s, have) if p.kind == "send")
