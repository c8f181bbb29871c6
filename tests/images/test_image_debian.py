"""The Debian package cache: apt verifies downloads; a damaged cached .deb is never used."""
from __future__ import annotations

import shutil

import pytest

from fleetforge.hashing import sha256_file
from fleetforge.paths import CACHE_DIR
from images.debian import DebianArchive

pytestmark = [pytest.mark.slow]


@pytest.fixture
def archive(tmp_path) -> DebianArchive:
    """A private cache seeded with the shared cache's arm64 lists (no second `apt update`)."""
    shared = CACHE_DIR / "debian" / "arm64" / "lists"
    if shared.is_dir():
        shutil.copytree(shared, tmp_path / "debian" / "arm64" / "lists")
    return DebianArchive("arm64", tmp_path)


def test_damaged_cached_deb_is_detected_and_fetched_again(archive):
    deb = archive.fetch_exact("busybox-static")
    good = sha256_file(deb.path)
    assert deb.version and deb.arch == "arm64"
    # Damage the cached file in place (same size): the memo's checksum must reject it.
    data = bytearray(deb.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    deb.path.write_bytes(bytes(data))
    again = archive.fetch_exact("busybox-static")
    assert again.path == deb.path
    assert sha256_file(again.path) == good


def test_closure_includes_dependencies_and_is_memoised(archive):
    first = archive.resolve(["dropbear-bin"])
    names = {p.name for p in first}
    assert {"dropbear-bin", "libc6", "zlib1g"} <= names
    assert all(p.path.is_file() and p.arch == "arm64" for p in first)
    assert list((archive.root / "resolved").glob("closure-*.json"))
    assert archive.resolve(["dropbear-bin"]) == first
