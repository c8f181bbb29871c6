"""Publish a bundle for pull mode: a folder any static HTTP(S) server can serve.

    DIR/CHANNEL                   one line: the release devices on this channel should run
    DIR/releases/R/manifest       the signed manifest of release R, and its manifest.sig
    DIR/store/SHA256              every segment, chunk and artifact payload, named by its hash

A device (`fleetforge-ota pull URL-of-CHANNEL`) reads the channel, fetches and verifies the
manifest, then fetches only what it lacks: whole segments, or, where its booted slot holds some
of a segment's chunks, just the other chunks (the delta). Everything it fetches is checked against
the signed manifest before it reaches the slot, so the server needs no trust, only files. The
store is content-addressed: publishing a new release adds only the blobs it does not share with
the previous ones, and files are never changed in place (a device mid-download keeps reading a
consistent release); the channel file is replaced last, in one rename.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError

from ota.bundle import Bundle

STORE = "store"
RELEASES = "releases"


@dataclass(frozen=True)
class Published:
    channel: Path
    release: str      # the channel file's content: releases/VERSION-ID
    store: Path
    new_bytes: int    # bytes this release added to the store


def _write_new(path: Path, data: bytes) -> int:
    """Write a content-addressed file unless it exists; the bytes written."""
    if path.exists():
        return 0
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return len(data)


def publish(bundle: Bundle, out: Path, *, channel: str) -> Published:
    if not channel or "/" in channel or channel.startswith("."):
        raise UserError(f"channel '{channel}' must be a plain file name")
    manifest = bundle.manifest
    store = out / STORE
    store.mkdir(parents=True, exist_ok=True)
    added = 0
    if manifest.rootfs_size:
        for index, digest in enumerate(manifest.segments):
            added += _write_new(store / digest, bundle.read(index * manifest.segment_size,
                                                            manifest.segment_length(index)))
        for chunk in manifest.chunks:
            added += _write_new(store / chunk.sha256, bundle.read(chunk.offset, chunk.length))
    for item in bundle.artifacts:
        with open(bundle.path, "rb") as source:
            source.seek(item.offset)
            added += _write_new(store / item.artifact.sha256, source.read(item.artifact.size))
    release = f"{RELEASES}/{manifest.version}-{bundle.signature.hex()[:16]}"
    folder = out / release
    folder.mkdir(parents=True, exist_ok=True)
    _write_new(folder / "manifest", bundle.manifest_bytes)
    _write_new(folder / "manifest.sig", bundle.signature)
    pointer = out / channel
    tmp = pointer.with_name(pointer.name + ".tmp")
    tmp.write_text(release + "\n")
    os.replace(tmp, pointer)  # last: devices see the new release only once all of it is there
    return Published(pointer, release, store, added)
