"""Write a gzip-compressed newc cpio archive (an initramfs) from a directory, owned by root."""
from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

# Extra nodes the kernel needs before /init can mount devtmpfs (its first console output).
DEVICE_NODES = (("dev/console", stat.S_IFCHR | 0o600, 5, 1),)


def _header(ino: int, mode: int, nlink: int, size: int, rdev: tuple[int, int], name: bytes) -> bytes:
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    return b"070701" + b"".join(b"%08X" % f for f in fields) + name + b"\0"


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def write_initramfs(source: Path, output: Path) -> None:
    """Archive `source` deterministically: sorted, uid/gid 0, mtime 0, plus /dev/console."""
    entries: list[bytes] = []
    ino = 1
    paths = sorted(p for p in source.rglob("*"))
    for path in paths:
        rel = path.relative_to(source).as_posix().encode()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            data = os.readlink(path).encode()
        elif stat.S_ISREG(st.st_mode):
            data = path.read_bytes()
        else:
            data = b""
        nlink = 2 if stat.S_ISDIR(st.st_mode) else 1
        header = _header(ino, st.st_mode, nlink, len(data), (0, 0), rel)
        entries.append(header + _pad(len(header)) + data + _pad(len(data)))
        ino += 1
    for name, mode, major, minor in DEVICE_NODES:
        if not (source / name).exists():
            header = _header(ino, mode, 1, 0, (major, minor), name.encode())
            entries.append(header + _pad(len(header)))
            ino += 1
    trailer = _header(0, 0, 1, 0, (0, 0), b"TRAILER!!!")
    entries.append(trailer + _pad(len(trailer)))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    # No file name and mtime 0 in the gzip header: the same tree gives the same bytes.
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                               compresslevel=6, mtime=0) as gz:
        for entry in entries:
            gz.write(entry)
    tmp.rename(output)
