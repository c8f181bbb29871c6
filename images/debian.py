"""Debian binary packages for a target architecture: resolve, download into the cache, verify (apt)."""
from __future__ import annotations

import fcntl
import hashlib
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.hashing import sha256_file
from fleetforge.paths import CACHE_DIR
from fleetforge.tools import ToolFailedError, run_tool

# Package lists older than this are refreshed; a build with fresh lists and a warm archive cache
# needs no network at all.
LISTS_MAX_AGE_S = 7 * 24 * 3600

_INST = re.compile(r"^Inst (\S+) (?:\[\S+\] )?\((\S+) .*\[(\S+)\]\)", re.M)


@dataclass(frozen=True)
class DebPackage:
    """One downloaded .deb: what it is and where it lies in the cache."""

    name: str
    version: str
    arch: str
    path: Path


def deb_filename(name: str, version: str, arch: str) -> str:
    """apt's archive file name (an epoch's ':' is written %3a)."""
    return f"{name}_{version.replace(':', '%3a')}_{arch}.deb"


class DebianArchive:
    """apt, pointed at its own state for one architecture, so the host's apt is never touched.

    Lists, the package cache and the downloaded archives live in CACHE_DIR/debian/<arch>/ (shared
    by workspaces, like Buildroot's dl/). apt checks every download against the signed Release
    files, so a cached .deb is as trustworthy as a fresh one.
    """

    def __init__(self, arch: str, cache_dir: Path | None = None,
                 components: tuple[str, ...] = ()) -> None:
        self.arch = arch
        self.root = (cache_dir or CACHE_DIR) / "debian" / arch
        self.archives = self.root / "archives"
        self.components = tuple(sorted(set(components) - {"main"}))
        # Lists of another set of archive areas live apart: `apt update` deletes list files its
        # sources do not name, so builds with and without e.g. non-free-firmware would undo each
        # other's lists. The downloaded .debs are shared.
        suffix = "".join(f"+{c}" for c in self.components)
        self.lists = self.root / f"lists{suffix}"
        self.apt_cache = self.root / f"apt-cache{suffix}"
        self.sources = self.root / f"sources{suffix}" if self.components else None
        self.status = self.root / "empty-status"
        self._lock_depth = 0
        self._updated = False

    def apt_options(self) -> list[str]:
        """apt's -o options that point it at this archive's own lists, cache and sources."""
        sources = [] if self.sources is None else [
            f"-oDir::Etc::SourceList={self.sources / 'sources.list'}",
            f"-oDir::Etc::SourceParts={self.sources / 'sources.list.d'}",
        ]
        return [
            f"-oAPT::Architecture={self.arch}",
            f"-oAPT::Architectures={self.arch}",
            f"-oDir::State::Lists={self.lists}",
            f"-oDir::State::status={self.status}",  # nothing installed: resolve full closures
            f"-oDir::Cache={self.apt_cache}",
            *sources,
            f"-oDir::Cache::archives={self.archives}",
            "-oDebug::NoLocking=1",  # our own lock below; the host's dpkg lock is not ours
            "-oAPT::Sandbox::User=root",
            "-oAPT::Install-Recommends=0",
            "-oAPT::Get::AllowUnauthenticated=0",
            "-q",
        ]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Several builds (other workspaces, tests) may share the cache at once.
        if self._lock_depth:  # re-entered (a retry): flock on a second fd would deadlock
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1

    def _apt(self, *args: str) -> str:
        return run_tool(["apt-get", *self.apt_options(), *args], debian_package="apt", cwd=self.archives)

    def _memo_path(self, kind: str, names: list[str]) -> Path:
        # Keyed by the query and the package lists in force: an `apt update` invalidates it.
        lists = sorted((p.name, p.stat().st_mtime_ns) for p in self.lists.glob("*_InRelease"))
        key = hashlib.sha256(json.dumps([kind, names, lists]).encode()).hexdigest()[:24]
        return self.root / "resolved" / f"{kind}-{key}.json"

    def _load_memo(self, path: Path) -> list[DebPackage] | None:
        """A previous resolution whose .debs are all still in the cache, unchanged since apt
        verified them (their sha256 was recorded then); None if anything differs."""
        try:
            records = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        found = []
        for record in records:
            deb = self.archives / record["file"]
            if not deb.is_file():
                return None
            if sha256_file(deb) != record["sha256"]:
                deb.unlink()  # damaged since apt checked it: let apt fetch and verify it again
                return None
            found.append(DebPackage(record["name"], record["version"], record["arch"], deb))
        return found

    def _save_memo(self, path: Path, found: list[DebPackage]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        records = [{"name": p.name, "version": p.version, "arch": p.arch, "file": p.path.name,
                    "sha256": sha256_file(p.path)} for p in found]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records))
        tmp.rename(path)

    def _lists_fresh(self) -> bool:
        stamps = list(self.lists.glob("*_InRelease"))
        return bool(stamps) and time.time() - min(p.stat().st_mtime for p in stamps) < LISTS_MAX_AGE_S

    def _prepare(self, refresh: bool) -> None:
        for d in (self.lists / "partial", self.archives / "partial", self.apt_cache):
            d.mkdir(parents=True, exist_ok=True)
        self.status.touch()
        if self.sources is not None:
            write_sources_with_components(self.sources, self.components)
        if (refresh and not self._updated) or not self._lists_fresh():
            self._updated = True
            try:
                self._apt("update")
            except ToolFailedError as error:
                raise UserError(
                    f"cannot update the Debian package lists for {self.arch} (network?): {error}"
                ) from None

    def resolve(self, packages: list[str], *, refresh: bool = False) -> list[DebPackage]:
        """Download `packages` and their dependency closure; return them, verified by apt."""
        with self._locked():
            self._prepare(refresh)
            memo = self._memo_path("closure", packages)
            cached = None if refresh else self._load_memo(memo)
            if cached is not None:
                return cached
            try:
                plan = self._apt("install", "-s", "--no-install-recommends", *packages)
            except ToolFailedError as error:
                if not refresh:
                    return self._retry(packages, error)
                raise UserError(f"apt cannot resolve {' '.join(packages)} for {self.arch}: {error}") from None
            found = [DebPackage(n, v, a, self.archives / deb_filename(n, v, a))
                     for n, v, a in _INST.findall(plan)]
            if found:  # apt re-checks archives already present against the signed indexes
                try:
                    self._apt("install", "-d", "-y", "--no-install-recommends", *packages)
                except ToolFailedError as error:
                    if not refresh:
                        return self._retry(packages, error)
                    raise UserError(f"downloading Debian packages failed: {error}") from None
            missing = [p.name for p in found if not p.path.exists()]
            if missing:
                raise UserError(f"apt did not download {', '.join(missing)} into {self.archives}")
            self._save_memo(memo, found)
            return found

    def _retry(self, packages: list[str], error: Exception) -> list[DebPackage]:
        # Stale lists name versions the mirror no longer has: refresh once, then give up.
        return self.resolve(packages, refresh=True)

    def fetch_exact(self, package: str, *, refresh: bool = False) -> DebPackage:
        """Download one package without its dependencies (e.g. a kernel image, unpacked only)."""
        with self._locked():
            self._prepare(refresh)
            memo = self._memo_path("exact", [package])
            cached = None if refresh else self._load_memo(memo)
            if cached:
                return cached[0]
            try:
                plan = self._apt("install", "-s", "--no-install-recommends", package)
            except ToolFailedError as error:
                if not refresh:
                    return self._retry_exact(package)
                raise UserError(f"apt does not know package '{package}' for {self.arch}: {error}") from None
            for name, version, arch in _INST.findall(plan):
                if name == package:
                    break
            else:
                raise UserError(f"apt did not plan to install '{package}' for {self.arch}")
            deb = DebPackage(name, version, arch, self.archives / deb_filename(name, version, arch))
            # apt re-checks a file already present against the signed index and re-fetches it
            # when it differs, so this is cheap for a cached file and safe for a damaged one.
            try:
                self._apt("download", f"{name}={version}")
            except ToolFailedError as error:
                if not refresh:
                    return self._retry_exact(package)
                raise UserError(f"downloading {name} failed: {error}") from None
            self._save_memo(memo, [deb])
            return deb

    def _retry_exact(self, package: str) -> DebPackage:
        return self.fetch_exact(package, refresh=True)

    def depends_of(self, package: str) -> list[str]:
        """Names of the direct Depends of the candidate version (e.g. a kernel metapackage)."""
        with self._locked():
            self._prepare(False)
            memo = self._memo_path("depends", [package])
            try:
                return json.loads(memo.read_text())
            except (OSError, ValueError):
                pass
            out = run_tool(
                ["apt-cache", *self.apt_options(), "depends", "--no-recommends", "--no-suggests", package],
                debian_package="apt",
            )
            depends = re.findall(r"^\s+Depends: (\S+)", out, re.M)
            memo.parent.mkdir(parents=True, exist_ok=True)
            memo.write_text(json.dumps(depends))
            return depends


HOST_SOURCE_LIST = Path("/etc/apt/sources.list")
HOST_SOURCE_PARTS = Path("/etc/apt/sources.list.d")


def add_components(text: str, components: tuple[str, ...], deb822: bool) -> str:
    """The host's apt sources `text` with `components` added wherever `main` is enabled.

    Mirrors, suites and keys stay the host's; only the archive areas grow (as a user adds
    `non-free-firmware` to their sources for firmware packages).
    """
    out = []
    for line in text.splitlines():
        if deb822 and re.match(r"Components:", line, re.I):
            areas = line.split(":", 1)[1].split()
        elif not deb822 and re.match(r"\s*deb\s", line):
            areas = line.split()
        else:
            out.append(line)
            continue
        if "main" in areas:
            line += "".join(f" {c}" for c in components if c not in areas)
        out.append(line)
    return "\n".join(out) + "\n"


def write_sources_with_components(target: Path, components: tuple[str, ...], *,
                                  host_list: Path = HOST_SOURCE_LIST,
                                  host_parts: Path = HOST_SOURCE_PARTS) -> None:
    """Write the host's sources (`host_list`, `host_parts`), with `components` added, below
    `target` (apt's Dir::Etc parts)."""
    parts = target / "sources.list.d"
    parts.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, str] = {}
    if host_list.is_file():
        wanted["sources.list"] = add_components(host_list.read_text(), components, False)
    for source in sorted(host_parts.glob("*")):
        if source.suffix in (".list", ".sources"):
            wanted[f"sources.list.d/{source.name}"] = add_components(
                source.read_text(), components, source.suffix == ".sources")
    for old in parts.iterdir():
        if f"sources.list.d/{old.name}" not in wanted:
            old.unlink()
    if "sources.list" not in wanted:
        (target / "sources.list").unlink(missing_ok=True)
    for name, text in wanted.items():
        path = target / name
        if not path.is_file() or path.read_text() != text:  # unchanged: keep the mtime
            path.write_text(text)


