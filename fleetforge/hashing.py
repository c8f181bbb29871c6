"""Content hashes of files, streamed so large images never sit in memory."""
from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

_BLOCK = 1 << 20
_ZEROS = bytes(_BLOCK)


def _update_zeros(digest: "hashlib._Hash", count: int) -> None:
    while count > 0:
        step = min(count, _BLOCK)
        digest.update(_ZEROS[:step] if step < _BLOCK else _ZEROS)
        count -= step


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes.

    Disk images are mostly holes (sparse): those read as zeros, so they are hashed as zeros
    without reading them (SEEK_DATA/SEEK_HOLE), which is several times faster for a disk image.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        fd = handle.fileno()
        size = os.fstat(fd).st_size
        position = 0
        while position < size:
            try:
                data = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as error:
                if error.errno != errno.ENXIO:  # ENXIO: only a hole is left
                    raise
                data = size
            _update_zeros(digest, data - position)
            if data >= size:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            handle.seek(data)
            remaining = hole - data
            while remaining > 0:
                block = handle.read(min(remaining, _BLOCK))
                if not block:
                    break
                digest.update(block)
                remaining -= len(block)
            position = hole
    return digest.hexdigest()
