"""Debian source packages: find a version in Debian's signed index, download it verified, cache it once.

The one fetcher for every Debian source FleetForge uses: the kernel built from source, the offline
Buildroot mirror, the pass-order tuner's corpus. Each asks for a package by name, either the
newest version of some suites or a pinned version.

- The index: apt's own `apt-get update` of a private deb-src list per suite (signed Release files,
  checked by apt; the host's apt configuration is untouched), read back with `apt-cache showsrc`.
- The files: downloaded from the mirror's pool; every file's sha256 must match the index (or, for
  a pinned version no indexed suite holds any more, the .dsc's Checksums-Sha256 lines).
- The cache: CACHE_DIR/debian-source/NAME/ holds the files of each version (a .dsc appears only
  once all its files are there and verified, so a complete .dsc means a usable download);
  CACHE_DIR/debian-source-trees/ holds unpacked trees. Shared by every workspace and engineer.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import Dsc, Sources
from debian.debian_support import Version

from fleetforge.errors import UserError
from fleetforge.hashing import sha256_file
from fleetforge.paths import CACHE_DIR
from fleetforge.tools import run_tool

DEBIAN_MIRROR = os.environ.get("FLEETFORGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# The suite the offline backend's binary packages come from: a source that must match the
# binaries (the kernel built from source) comes from it.
DEFAULT_SUITES = ("bookworm",)
# An index older than this is refreshed before it answers "newest" (a pinned version it lacks
# triggers a refresh anyway).
INDEX_MAX_AGE_S = 7 * 24 * 3600
_TARBALL = re.compile(r"\.(orig(-[A-Za-z0-9-]+)?\.)?tar\.(gz|bz2|xz|lzma|zst)$")


class SourceFetchError(UserError):
    """A Debian source package could not be found, downloaded, verified or unpacked."""


@dataclass(frozen=True)
class SourceFile:
    """One file of a source package, as the index or the .dsc lists it."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SourceRelease:
    """One version of a source package that can be downloaded (not yet in the cache)."""

    name: str
    version: str
    directory: str  # pool/main/l/linux
    files: tuple[SourceFile, ...]  # the .dsc first
    suite: str  # the indexed suite that lists it; "pool" for a pinned version found by .dsc

    @property
    def upstream_version(self) -> str:
        return upstream_version(self.version)


@dataclass(frozen=True)
class SourcePackage:
    """A downloaded, verified source package in the cache: its .dsc and the files it lists."""

    name: str
    version: str
    dsc: Path

    @property
    def upstream_version(self) -> str:
        return upstream_version(self.version)

    @property
    def files(self) -> list[Path]:
        return [self.dsc.parent / f.name for f in _dsc_files(self.dsc)]

    @property
    def upstream_tarballs(self) -> list[Path]:
        """The upstream tarball(s): the .orig.tar.* (with its components), or a native package's
        .tar.*; never the debian/ tarball."""
        return [p for p in self.files if _TARBALL.search(p.name)
                and ".debian.tar." not in p.name]


def upstream_version(version: str) -> str:
    """Debian version without epoch and revision: 1:2.36-9+deb12u4 -> 2.36."""
    without_epoch = version.split(":", 1)[-1]
    return without_epoch.rsplit("-", 1)[0] if "-" in without_epoch else without_epoch


def pool_directory(name: str) -> str:
    """Where the archive keeps a source package: pool/main/<l|libX>/<name>."""
    prefix = name[:4] if name.startswith("lib") else name[0]
    return f"pool/main/{prefix}/{name}"


def _dsc_files(dsc: Path) -> list[SourceFile]:
    with open(dsc, encoding="utf-8", errors="replace") as handle:
        parsed = Dsc(handle)
    return [SourceFile(f["name"], int(f["size"]), f["sha256"])
            for f in parsed.get("Checksums-Sha256", [])]


# --- the index ----------------------------------------------------------------------------------

class SourceIndex:
    """Debian's deb-src index of some suites, kept by apt in FleetForge's own directory."""

    def __init__(self, suites: Sequence[str] = DEFAULT_SUITES, cache_dir: Path = CACHE_DIR,
                 mirror: str = DEBIAN_MIRROR) -> None:
        self.suites = tuple(suites)
        self.root = cache_dir / "apt-source"
        self.mirror = mirror

    def _suite_root(self, suite: str) -> Path:
        return self.root / suite

    def _options(self, suite: str) -> list[str]:
        root = self._suite_root(suite)
        return [
            "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={root / 'sources.list.d'}",
            "-o", f"Dir::State::Lists={root / 'lists'}",
            "-o", f"Dir::Cache={root / 'cache'}",
            "-o", "APT::Get::List-Cleanup=0",
            "-o", "Debug::NoLocking=1",  # our own lock (below); the host's apt lock is not ours
            "-o", "APT::Sandbox::User=root",
            "-q",
        ]

    def sources_stanza(self, suite: str) -> str:
        return (
            "# Generated by FleetForge (fleetforge/debian_source.py). DO NOT EDIT.\n"
            f"Types: deb-src\nURIs: {self.mirror}\nSuites: {suite}\n"
            f"Components: main\nSigned-By: {KEYRING}\n"
        )

    def prepare(self, suite: str) -> list[str]:
        """Write the private deb-src configuration of `suite`; return the apt options using it."""
        root = self._suite_root(suite)
        (root / "sources.list.d").mkdir(parents=True, exist_ok=True)
        (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (root / "sources.list").write_text("", encoding="utf-8")
        (root / "sources.list.d" / f"fleetforge-{suite}-src.sources").write_text(
            self.sources_stanza(suite), encoding="utf-8")
        return self._options(suite)

    @contextmanager
    def locked(self) -> Iterator[None]:
        # Several builds (workspaces, engineers, tests) share the cache at once.
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _fresh(self, suite: str) -> bool:
        stamps = list((self._suite_root(suite) / "lists").glob("*_InRelease"))
        return bool(stamps) and time.time() - min(p.stat().st_mtime for p in stamps) < INDEX_MAX_AGE_S

    def update(self, *, force: bool = False) -> None:
        """`apt-get update` of every suite whose lists are missing or old (or all, with force)."""
        with self.locked():
            for suite in self.suites:
                if force or not self._fresh(suite):
                    run_tool(["apt-get", *self.prepare(suite), "update"], debian_package="apt")

    def releases(self, name: str) -> list[SourceRelease]:
        """Every version of source package `name` the suites list, newest first."""
        found: dict[str, SourceRelease] = {}
        for suite in self.suites:
            if not (self._suite_root(suite) / "lists").is_dir():
                continue
            try:
                text = run_tool(["apt-cache", *self._options(suite), "showsrc", "--only-source",
                                 name], debian_package="apt")
            except UserError:  # "Unable to find a source package"
                continue
            for stanza in Sources.iter_paragraphs(text.splitlines(), use_apt_pkg=False):
                if stanza.get("Package") != name or "Version" not in stanza:
                    continue
                files = tuple(SourceFile(f["name"], int(f["size"]), f["sha256"])
                              for f in stanza.get("Checksums-Sha256", []))
                dsc = [f for f in files if f.name.endswith(".dsc")]
                rest = [f for f in files if not f.name.endswith(".dsc")]
                # The first (most stable) suite listing a version names it.
                found.setdefault(stanza["Version"], SourceRelease(
                    name, stanza["Version"], stanza["Directory"], tuple(dsc + rest), suite))
        return sorted(found.values(), key=lambda r: Version(r.version), reverse=True)


# --- downloads ----------------------------------------------------------------------------------

def _download(url: str, dest: Path, expected: SourceFile | None) -> Path:
    """Download `url` to `dest` (atomically); with `expected`, size and sha256 must match."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, partial_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    partial = Path(partial_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=120) as response:
            shutil.copyfileobj(response, out, 1 << 20)
        if expected is not None:
            size, digest = partial.stat().st_size, sha256_file(partial)
            if (size, digest) != (expected.size, expected.sha256):
                raise SourceFetchError(
                    f"{expected.name} does not match its checksum (got {size} bytes, sha256 "
                    f"{digest[:16]}..., expected {expected.size} bytes, {expected.sha256[:16]}...); "
                    f"nothing was kept, retry later or check the mirror", where=url)
        os.replace(partial, dest)
    except (OSError, urllib.error.URLError) as error:
        raise SourceFetchError(f"download failed: {error} (is {DEBIAN_MIRROR} reachable?)",
                               where=url) from None
    finally:
        partial.unlink(missing_ok=True)
    return dest


def _verified(path: Path, expected: SourceFile) -> bool:
    return path.is_file() and path.stat().st_size == expected.size \
        and sha256_file(path) == expected.sha256


def download_release(release: SourceRelease, folder: Path, mirror: str = DEBIAN_MIRROR,
                     on_step: Callable[[str], None] = lambda step: None) -> SourcePackage:
    """Every file of `release` into `folder`, verified; the .dsc is written last."""
    dsc, *rest = release.files
    for item in rest:
        target = folder / item.name
        if not _verified(target, item):
            on_step(f"download {item.name} ({item.size / 1e6:.1f} MB)")
            _download(f"{mirror}/{release.directory}/{item.name}", target, item)
    _download(f"{mirror}/{release.directory}/{dsc.name}", folder / dsc.name, dsc)
    return SourcePackage(release.name, release.version, folder / dsc.name)


def _release_from_pool(name: str, version: str, folder: Path, mirror: str) -> SourceRelease:
    """A pinned version no indexed suite lists: its .dsc from the pool, which names the rest.

    The .dsc itself then has no checksum from the signed index; its files are checked against it.
    """
    directory = pool_directory(name)
    dsc_name = f"{name}_{version.split(':', 1)[-1]}.dsc"
    staging = folder / ".pool"
    dsc = _download(f"{mirror}/{directory}/{dsc_name}", staging / dsc_name, None)
    files = _dsc_files(dsc)
    if not files:
        raise SourceFetchError("the .dsc lists no Checksums-Sha256 files", where=str(dsc))
    listed = SourceFile(dsc_name, dsc.stat().st_size, sha256_file(dsc))
    return SourceRelease(name, version, directory, (listed, *files), "pool")


def cached_packages(name: str, cache_dir: Path = CACHE_DIR) -> list[SourcePackage]:
    """Complete downloads of `name` in the cache (a .dsc whose files are all there), newest first."""
    folder = cache_dir / "debian-source" / name
    found = []
    for dsc in folder.glob(f"{name}_*.dsc"):
        try:
            files = _dsc_files(dsc)
        except (OSError, ValueError):
            continue
        if files and all((folder / f.name).is_file() for f in files):
            with open(dsc, encoding="utf-8", errors="replace") as handle:
                version = Dsc(handle).get("Version") or dsc.stem.split("_", 1)[1]
            found.append(SourcePackage(name, version, dsc))
    return sorted(found, key=lambda p: Version(p.version), reverse=True)


def fetch_source(
    name: str,
    version: str | None = None,
    *,
    cache_dir: Path = CACHE_DIR,
    suites: Sequence[str] = DEFAULT_SUITES,
    offline: bool = False,
    mirror: str = DEBIAN_MIRROR,
    on_step: Callable[[str], None] = lambda step: None,
) -> SourcePackage:
    """Source package `name` from the cache, or downloaded and verified into it once.

    `version` None: the newest version the cache holds, else the newest the suites list.
    A pinned `version`: exactly that one (from the index if a suite lists it, else from the pool).
    `offline`: the cache only; a miss says what to run with network.
    """
    folder = cache_dir / "debian-source" / name
    cached = cached_packages(name, cache_dir)
    hit = next((p for p in cached if version is None or p.version == version), None)
    if hit is not None:
        return hit
    wanted = f"{name} {version}" if version else name
    if offline:
        raise SourceFetchError(
            f"Debian source package '{wanted}' is not in the cache {folder} and downloads are off "
            f"(run the same command once with network to fill the cache)")
    index = SourceIndex(suites, cache_dir, mirror)
    release = _pick(index, name, version)
    if release is None:
        index.update(force=True)  # the package or version may be newer than our lists
        release = _pick(index, name, version)
    if release is None and version is not None:
        release = _release_from_pool(name, version, folder, mirror)
    if release is None:
        raise SourceFetchError(
            f"Debian has no source package '{name}' in {', '.join(index.suites)} "
            f"(check the name with `apt-cache showsrc {name}` or pin a version)")
    with index.locked():
        return download_release(release, folder, mirror, on_step)


def _pick(index: SourceIndex, name: str, version: str | None) -> SourceRelease | None:
    index.update()
    releases = index.releases(name)
    if version is None:
        return releases[0] if releases else None
    return next((r for r in releases if r.version == version), None)


# --- unpacking ----------------------------------------------------------------------------------

def unpack_source(package: SourcePackage, cache_dir: Path = CACHE_DIR, *,
                  patched: bool = True) -> Path:
    """The unpacked tree, made once in the cache.

    `patched`: Debian's patches applied (what Debian builds, e.g. the kernel); otherwise the
    upstream files as released (dpkg-source --skip-patches: plus a debian/ folder, nothing changed).
    Every file gets one timestamp: a patched configure.ac or Makefile.am newer than the shipped
    configure would make `make` regenerate it with autotools the build may not have yet.
    """
    suffix = "" if patched else "-upstream"
    # No epoch in the name: a ':' in a path confuses make and rsync.
    version = package.version.split(":", 1)[-1]
    dest = cache_dir / "debian-source-trees" / f"{package.name}-{version}{suffix}"
    stamp = dest / ".fleetforge-unpacked"
    if stamp.is_file() and (dest / _ONE_TIMESTAMP).is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _tree_lock(dest):
        if not stamp.is_file():  # (another build may have unpacked it while we waited)
            partial = dest.with_name(dest.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
            options = [] if patched else ["--skip-patches"]
            run_tool(["dpkg-source", "--no-check", *options, "-x", package.dsc, partial],
                     debian_package="dpkg-dev")
            partial.rename(dest)  # a tree only appears under its final name once complete
            stamp.write_text(f"{package.name} {package.version}\n", encoding="utf-8")
            for name in package.files:  # dpkg-source links the tarballs beside the tree
                link = dest.parent / name.name
                if link.is_symlink():
                    link.unlink()
        if not (dest / _ONE_TIMESTAMP).is_file():
            _one_timestamp(dest, package.dsc.stat().st_mtime)
            (dest / _ONE_TIMESTAMP).write_text("", encoding="utf-8")
    return dest


_ONE_TIMESTAMP = ".fleetforge-one-timestamp"


def _one_timestamp(tree: Path, when: float) -> None:
    for folder, dirs, files in os.walk(tree):
        for name in (*files, *dirs):
            os.utime(os.path.join(folder, name), (when, when), follow_symlinks=False)
    os.utime(tree, (when, when))


@contextmanager
def _tree_lock(dest: Path) -> Iterator[None]:
    with open(dest.with_name(dest.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
