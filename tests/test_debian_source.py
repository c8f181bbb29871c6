"""The one Debian source fetcher (fleetforge/debian_source.py): cache, verification, pool, unpacking.

Downloads come from a local HTTP server laid out like Debian's pool: a stand-in for
deb.debian.org, whose contents change under a test. The source package itself is a real one,
built with dpkg-source (tests/conftest.py), so unpacking runs the real tool.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from fleetforge.debian_source import (
    SourceFetchError,
    SourceFile,
    SourceIndex,
    SourceRelease,
    cached_packages,
    download_release,
    fetch_source,
    pool_directory,
    unpack_source,
    upstream_version,
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def source_package(demo_source_package) -> Path:
    """A mirror folder laid out like Debian's, holding the demo source package in its pool."""
    pool = demo_source_package.parent / "mirror" / pool_directory("demo")
    pool.mkdir(parents=True, exist_ok=True)
    for built in demo_source_package.parent.glob("demo_1.0*"):
        shutil.copy2(built, pool / built.name)
    return demo_source_package.parent / "mirror"


@pytest.fixture(scope="module")
def mirror(source_package) -> str:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(source_package))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _release(pool: Path, *, tamper: str | None = None) -> SourceRelease:
    """The release as a signed index would list it (optionally with one wrong checksum)."""
    files = []
    for name in ("demo_1.0-1.dsc", "demo_1.0.orig.tar.gz", "demo_1.0-1.debian.tar.xz"):
        path = pool / name
        digest = "0" * 64 if name == tamper else _sha256(path)
        files.append(SourceFile(name, path.stat().st_size, digest))
    return SourceRelease("demo", "1.0-1", pool_directory("demo"), tuple(files), "sid")


def test_versions_and_pool_places():
    assert upstream_version("1:2.36-9+deb12u4") == "2.36"
    assert upstream_version("1.35.0") == "1.35.0"  # a native package has no revision
    assert upstream_version("1:1.2.13.dfsg-1") == "1.2.13.dfsg"
    assert pool_directory("linux") == "pool/main/l/linux"
    assert pool_directory("libzstd") == "pool/main/libz/libzstd"


def test_a_verified_download_is_cached_and_reused_offline(tmp_path, mirror, source_package):
    folder = tmp_path / "debian-source" / "demo"
    package = download_release(_release(source_package / pool_directory("demo")), folder, mirror)
    assert package.version == "1.0-1" and package.upstream_version == "1.0"
    assert [p.name for p in package.upstream_tarballs] == ["demo_1.0.orig.tar.gz"]
    assert all(p.is_file() for p in package.files)
    # Offline, the cache answers both "newest" and the pinned version; nothing else is asked.
    assert fetch_source("demo", cache_dir=tmp_path, offline=True) == package
    assert fetch_source("demo", "1.0-1", cache_dir=tmp_path, offline=True) == package
    with pytest.raises(SourceFetchError, match="'demo 2.0-1' is not in the cache"):
        fetch_source("demo", "2.0-1", cache_dir=tmp_path, offline=True)


def test_a_file_that_does_not_match_the_index_is_not_kept(tmp_path, mirror, source_package):
    folder = tmp_path / "debian-source" / "demo"
    release = _release(source_package / pool_directory("demo"), tamper="demo_1.0.orig.tar.gz")
    with pytest.raises(SourceFetchError, match="demo_1.0.orig.tar.gz does not match its checksum"):
        download_release(release, folder, mirror)
    assert sorted(p.name for p in folder.iterdir()) == []  # no .dsc, no tarball, no .part
    assert cached_packages("demo", tmp_path) == []


def test_an_incomplete_download_is_not_trusted(tmp_path, source_package):
    folder = tmp_path / "debian-source" / "demo"
    folder.mkdir(parents=True)
    shutil.copy2(source_package / pool_directory("demo") / "demo_1.0-1.dsc", folder)
    with pytest.raises(SourceFetchError, match="not in the cache"):
        fetch_source("demo", cache_dir=tmp_path, offline=True)


def test_a_pinned_version_no_suite_lists_comes_from_the_pool(tmp_path, mirror):
    # No indexed suite: the .dsc from the pool names the files and their sha256.
    package = fetch_source("demo", "1.0-1", cache_dir=tmp_path, suites=(), mirror=mirror)
    assert package.dsc == tmp_path / "debian-source" / "demo" / "demo_1.0-1.dsc"
    assert len(package.files) == 2 and all(p.is_file() for p in package.files)
    with pytest.raises(SourceFetchError, match="download failed"):
        fetch_source("demo", "9.9-1", cache_dir=tmp_path, suites=(), mirror=mirror)


def test_unpacked_with_or_without_debian_patches(tmp_path, mirror):
    package = fetch_source("demo", "1.0-1", cache_dir=tmp_path, suites=(), mirror=mirror)
    patched = unpack_source(package, tmp_path)
    upstream = unpack_source(package, tmp_path, patched=False)
    assert '"debian"' in (patched / "hello.c").read_text()
    assert '"upstream"' in (upstream / "hello.c").read_text()
    assert unpack_source(package, tmp_path) == patched  # once: the second call only looks
    # One timestamp: the patched file is not newer than the rest (make would regenerate).
    assert len({p.stat().st_mtime for p in patched.rglob("*")
                if not p.is_symlink() and not p.name.startswith(".fleetforge")}) == 1


def test_private_apt_configuration_leaves_the_host_alone(tmp_path):
    index = SourceIndex(("bookworm", "trixie"), tmp_path, "http://deb.example.org/debian")
    options = index.prepare("trixie")
    sources = tmp_path / "apt-source" / "trixie" / "sources.list.d" / "fleetforge-trixie-src.sources"
    text = sources.read_text()
    assert "Types: deb-src" in text and "Suites: trixie\n" in text
    assert "URIs: http://deb.example.org/debian" in text
    assert all(str(tmp_path) in value for value in options[1::2] if value.startswith("Dir::"))
    assert index.releases("demo") == []  # lists never fetched: nothing known, no error
