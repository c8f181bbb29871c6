"""The segment stream the device agent's `receive` reads: text record lines, raw bytes after `L`."""
from __future__ import annotations

from ota.delta import Piece


def segment_header(index: int, pieces: list[Piece]) -> bytes:
    return f"SEG {index} {len(pieces)}\n".encode()


def piece_header(piece: Piece) -> bytes:
    if piece.kind == "copy":
        return f"C {piece.source} {piece.length}\n".encode()
    return f"L {piece.length}\n".encode()  # followed by exactly `length` raw bytes


END = b"END\n"
