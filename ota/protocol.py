"""The update stream: what `fleetforge-ota install` reads on stdin (push over SSH), and what the
agent builds itself from fetched files for `fleetforge-ota pull`.

    MANIFEST <size>\\n  <size bytes of manifest> <64-byte Ed25519 signature>
    SEG <i> <n>\\n      then n pieces, in order:
        C <offset> <length>\\n     copy from the booted slot (delta)
        L <length>\\n<bytes>       bytes sent in the stream
    ART <name> <size>\\n<size bytes>   an artifact's payload
    END\\n

The device answers on stdout, one line each: `BEGIN TARGET=.. SEG_DONE=.. KEY=.. ARTIFACTS_DONE=..
ACTIVATED=0|1` once the manifest is verified (the client starts at SEG_DONE and skips the staged
artifacts), `OK <i>` when segment i is verified and written, `OK ART <name>` when an artifact is
verified and staged, and `DONE <message>` once the update is activated. A refusal is one
`ERR <reason>` line on stderr and a non-zero exit.
"""
from __future__ import annotations

from dataclasses import dataclass

from ota.delta import Piece


def manifest_header(size: int) -> bytes:
    return f"MANIFEST {size}\n".encode()


def segment_header(index: int, pieces: list[Piece]) -> bytes:
    return f"SEG {index} {len(pieces)}\n".encode()


def piece_header(piece: Piece) -> bytes:
    if piece.kind == "copy":
        return f"C {piece.source} {piece.length}\n".encode()
    return f"L {piece.length}\n".encode()  # followed by exactly `length` raw bytes


def artifact_header(name: str, size: int) -> bytes:
    return f"ART {name} {size}\n".encode()


END = b"END\n"


@dataclass(frozen=True)
class Answer:
    """One line of the device's answer: `kind` is BEGIN, OK, ART, DONE."""

    kind: str
    text: str

    @classmethod
    def parse(cls, line: bytes) -> Answer | None:
        words = line.decode("utf-8", "replace").rstrip("\n").split(" ", 1)
        if words[0] == "OK" and len(words) == 2 and words[1].startswith("ART "):
            return cls("ART", words[1][4:])
        if words[0] in ("BEGIN", "OK", "DONE"):
            return cls(words[0], words[1] if len(words) == 2 else "")
        return None

    def fields(self) -> dict[str, str]:
        return dict(f.split("=", 1) for f in self.text.split() if "=" in f)
