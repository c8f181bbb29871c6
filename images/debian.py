"""Debian binary packages for a target architecture: resolve, download into the cache, verify (apt)."""
from __future__ import annotations

import fcntl
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
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

    def __init__(self, arch: str, cache_dir: Path | None = None) -> None:
        self.arch = arch
        self.root = (cache_dir or CACHE_DIR) / "debian" / arch
        self.archives = self.root / "archives"
        self.lists = self.root / "lists"
        self.status = self.root / "empty-status"

    def _options(self) -> list[str]:
        return [
            f"-oAPT::Architecture={self.arch}",
            f"-oAPT::Architectures={self.arch}",
            f"-oDir::State::Lists={self.lists}",
            f"-oDir::State::status={self.status}",  # nothing installed: resolve full closures
            f"-oDir::Cache={self.root / 'apt-cache'}",
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
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _apt(self, *args: str) -> str:
        return run_tool(["apt-get", *self._options(), *args], debian_package="apt", cwd=self.archives)

    def _lists_fresh(self) -> bool:
        stamps = list(self.lists.glob("*_InRelease"))
        return bool(stamps) and time.time() - min(p.stat().st_mtime for p in stamps) < LISTS_MAX_AGE_S

    def _prepare(self, refresh: bool) -> None:
        for d in (self.lists / "partial", self.archives / "partial", self.root / "apt-cache"):
            d.mkdir(parents=True, exist_ok=True)
        self.status.touch()
        if refresh or not self._lists_fresh():
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
            try:
                plan = self._apt("install", "-s", "--no-install-recommends", *packages)
            except ToolFailedError as error:
                if not refresh:
                    return self._retry(packages, error)
                raise UserError(f"apt cannot resolve {' '.join(packages)} for {self.arch}: {error}") from None
            found = [DebPackage(n, v, a, self.archives / deb_filename(n, v, a))
                     for n, v, a in _INST.findall(plan)]
            if any(not p.path.exists() for p in found):
                try:
                    self._apt("install", "-d", "-y", "--no-install-recommends", *packages)
                except ToolFailedError as error:
                    if not refresh:
                        return self._retry(packages, error)
                    raise UserError(f"downloading Debian packages failed: {error}") from None
            missing = [p.name for p in found if not p.path.exists()]
            if missing:
                raise UserError(f"apt did not download {', '.join(missing)} into {self.archives}")
            return found

    def _retry(self, packages: list[str], error: Exception) -> list[DebPackage]:
        # Stale lists name versions the mirror no longer has: refresh once, then give up.
        return self.resolve(packages, refresh=True)

    def fetch_exact(self, package: str, *, refresh: bool = False) -> DebPackage:
        """Download one package without its dependencies (e.g. a kernel image, unpacked only)."""
        with self._locked():
            self._prepare(refresh)
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
            if not deb.path.exists():
                try:
                    self._apt("download", f"{name}={version}")
                except ToolFailedError as error:
                    if not refresh:
                        return self._retry_exact(package)
                    raise UserError(f"downloading {name} failed: {error}") from None
            return deb

    def _retry_exact(self, package: str) -> DebPackage:
        return self.fetch_exact(package, refresh=True)

    def depends_of(self, package: str) -> list[str]:
        """Names of the direct Depends of the candidate version (e.g. a kernel metapackage)."""
        with self._locked():
            self._prepare(False)
            out = run_tool(
                ["apt-cache", *self._options(), "depends", "--no-recommends", "--no-suggests", package],
                debian_package="apt",
            )
        return re.findall(r"^\s+Depends: (\S+)", out, re.M)
