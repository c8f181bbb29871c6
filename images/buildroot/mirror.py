"""The offline source mirror: every Buildroot package's source from the nearest Debian source package.

For each package of the configured build that downloads something (show-info), the mirror picks a
Debian source package version (debian_sources.toml names the Debian package) and takes one of:
- `dl-dir`: Debian's upstream tarball is byte-identical to Buildroot's download (same sha256 as
  Buildroot's .hash file): it is linked into BR2_DL_DIR under Buildroot's file name, so Buildroot
  checks its hash and applies its own patches as online.
- `override`: the nearest version, unpacked with Debian's patches, is given to Buildroot as
  `<PKG>_OVERRIDE_SRCDIR` in $(O)/local.mk (Buildroot rsyncs it; its own patches are not applied).
- `host-tool`: only for a host tool whose table entry allows it (when no Debian source of it can
  be downloaded, or always with `host_only`): the build machine's installed Debian package
  provides the programs.
- `unmatched`: no Debian source known or found; named with the reason, and the build stops.
The choice is locked per workspace (mirror-lock.json): later builds reuse it with no network.
Buildroot itself may not download: its only download site is an empty local folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from debian.debian_support import Version

from fleetforge.debian_source import (
    SourceFetchError,
    SourceIndex,
    SourceRelease,
    fetch_source,
    unpack_source,
    upstream_version,
)
from fleetforge.errors import UserError
from fleetforge.paths import CACHE_DIR

RULES_FILE = Path(__file__).with_name("debian_sources.toml")
LOCK_FILE = "mirror-lock.json"
REPORT_FILE = "mirror-report.json"
REPORT_TEXT = "mirror-report.txt"
NO_DOWNLOADS_DIR = "offline-no-downloads"  # BR2_PRIMARY_SITE: empty, so a download fails loudly
DL_PATH, OVERRIDE_PATH, HOST_TOOL_PATH, UNMATCHED = "dl-dir", "override", "host-tool", "unmatched"


class MirrorError(UserError):
    """The offline mirror cannot give Buildroot every source it needs."""


@dataclass(frozen=True)
class BuildrootPackage:
    """A package of the configured build that downloads its source (from `make show-info`)."""

    name: str  # busybox, host-tar
    version: str
    dl_dir: str  # the folder under BR2_DL_DIR
    downloads: tuple[str, ...]  # file names

    @property
    def base(self) -> str:
        """The package its rules and .hash file belong to: host-tar -> tar."""
        return self.name.removeprefix("host-")

    @property
    def make_prefix(self) -> str:
        """Buildroot's variable prefix: host-libzlib -> HOST_LIBZLIB."""
        return self.name.upper().replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class Rule:
    """debian_sources.toml's entry for one Buildroot package."""

    debian: tuple[str, ...]
    suites: tuple[str, ...]
    why: str = ""
    host_package: str = ""  # the Debian binary package a host build may use instead
    host_programs: tuple[str, ...] = ()  # ... its programs, as paths below $(HOST_DIR)
    host_only: bool = False  # the host package always uses host_package (why says why)


@dataclass(frozen=True)
class Rules:
    suites: tuple[str, ...]
    packages: Mapping[str, Rule]

    def for_package(self, package: BuildrootPackage) -> Rule | None:
        return self.packages.get(package.name) or self.packages.get(package.base)


@dataclass(frozen=True)
class MirrorEntry:
    """One line of the report: a Buildroot package and where its source comes from."""

    package: str
    buildroot_version: str
    path: str  # DL_PATH, OVERRIDE_PATH or UNMATCHED
    reason: str
    debian_source: str = ""
    debian_version: str = ""
    suite: str = ""
    files: tuple[str, ...] = field(default=())  # Buildroot's download names (dl-dir)


def load_rules(path: Path = RULES_FILE) -> Rules:
    """Read the mapping table; a bad entry names the file and the package."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise MirrorError(str(error), where=str(path)) from None
    suites = tuple(table.get("suites", ()))
    packages = {}
    for name, entry in table.get("package", {}).items():
        if not entry.get("debian"):
            raise MirrorError(f"package {name}: `debian` (Debian source names) is missing",
                              where=str(path))
        packages[name] = Rule(tuple(entry["debian"]), tuple(entry.get("suites", suites)),
                              entry.get("why", ""), entry.get("host_package", ""),
                              tuple(entry.get("host_programs", ())),
                              bool(entry.get("host_only", False)))
    return Rules(suites, packages)


def packages_needing_sources(show_info: Mapping[str, dict]) -> list[BuildrootPackage]:
    """Every package of `make show-info` that downloads a file, by name."""
    found = []
    for name, info in sorted(show_info.items()):
        files = tuple(d["source"] for d in info.get("downloads", []) if d.get("source"))
        if info.get("virtual") is True or not files:
            continue
        found.append(BuildrootPackage(name, str(info.get("version") or ""),
                                      str(info.get("dl_dir") or name), files))
    return found


# --- matching -----------------------------------------------------------------------------------

_NUMBERS = re.compile(r"\d+(?:\.\d+)*")


def numeric_version(version: str) -> tuple[int, ...]:
    """The leading dotted numbers of an upstream version, Debian repacks unwrapped:
    1:1.3.dfsg+really1.3.2-4 -> (1, 3, 2); 1.35+dfsg -> (1, 35); 30+20221128 -> (30,)."""
    text = upstream_version(version)
    if "+really" in text:
        text = text.split("+really", 1)[1]
    found = _NUMBERS.match(text)
    return tuple(int(p) for p in found.group(0).split(".")) if found else ()


def distance(wanted: tuple[int, ...], offered: tuple[int, ...]) -> tuple[int, int, int]:
    """How far a Debian version is from Buildroot's, smaller is nearer: components in common
    first (6.12 is nearer 6.19 than 7.0 is), then the gap at the first difference, then older
    before newer is worse (a newer release of the same series keeps the recipe's options)."""
    common = 0
    for a, b in zip(wanted, offered):
        if a != b:
            break
        common += 1
    a = wanted[common] if common < len(wanted) else 0
    b = offered[common] if common < len(offered) else 0
    return (-common, abs(a - b), 0 if b >= a else 1)


def _hashes(tree: Path, package: BuildrootPackage) -> dict[str, str]:
    """Buildroot's sha256 of each file the package downloads (its .hash file)."""
    candidates = [tree / "package" / package.base / f"{package.base}.hash",
                  tree / package.base / f"{package.base}.hash"]  # linux/linux.hash
    found: dict[str, str] = {}
    for path in candidates:
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[0] == "sha256":
                    found[parts[2]] = parts[1]
    return found


def choose(package: BuildrootPackage, rule: Rule | None,
           releases_of: Callable[[str, tuple[str, ...]], list[SourceRelease]],
           hashes: Mapping[str, str], unavailable: Mapping[str, str] | None = None) -> MirrorEntry:
    """The mirror's decision for one package (pure: the index and hashes are given).

    `unavailable`: Debian versions that failed to download, with the error (skipped).
    """
    def unmatched(reason: str) -> MirrorEntry:
        return MirrorEntry(package.name, package.version, UNMATCHED, reason)

    if rule is None:
        return unmatched(f"no Debian source package known for '{package.base}' (add it to "
                         f"images/buildroot/debian_sources.toml)")
    unavailable = unavailable or {}
    if package.name.startswith("host-") and rule.host_only:
        return MirrorEntry(package.name, package.version, HOST_TOOL_PATH,
                           f"the build machine's Debian package {rule.host_package} provides "
                           f"{', '.join(rule.host_programs)}: {rule.why}", rule.host_package, "",
                           "host")
    listed = [r for name in rule.debian for r in releases_of(name, rule.suites)]
    if not listed:
        return unmatched(f"Debian has no source package {' or '.join(rule.debian)} in "
                         f"{', '.join(rule.suites)}")
    order = {suite: i for i, suite in enumerate(rule.suites)}
    # Stable suites first, then the newest Debian revision: min() and the loop below keep the
    # first of equals.
    releases = sorted((r for r in listed if f"{r.name} {r.version}" not in unavailable),
                      key=lambda r: (order.get(r.suite, len(order)), _NewestFirst(r.version)))
    if not releases:
        failed = "; ".join(f"{k}: {v}" for k, v in unavailable.items())
        if package.name.startswith("host-") and rule.host_package:
            return MirrorEntry(package.name, package.version, HOST_TOOL_PATH,
                               f"no Debian source could be downloaded ({failed}); the build "
                               f"machine's Debian package {rule.host_package} provides "
                               f"{', '.join(rule.host_programs)}", rule.host_package, "", "host")
        return unmatched(f"no listed Debian version could be downloaded: {failed}")
    # Byte-identical: Buildroot's one download is Debian's one upstream tarball.
    if len(package.downloads) == 1 and package.downloads[0] in hashes:
        want = hashes[package.downloads[0]]
        for release in releases:
            tarballs = [f for f in release.files if _is_upstream_tarball(f.name)]
            if len(tarballs) == 1 and tarballs[0].sha256 == want:
                return MirrorEntry(package.name, package.version, DL_PATH,
                                   f"{tarballs[0].name} is byte-identical to {package.downloads[0]} "
                                   f"(Buildroot's hash holds, its patches apply)",
                                   release.name, release.version, release.suite,
                                   package.downloads)
    wanted = numeric_version(package.version)
    best = min(releases, key=lambda r: distance(wanted, numeric_version(r.version)))
    same = numeric_version(best.version) == wanted
    why = "same upstream version" if same else \
        f"nearest to {package.version} in {', '.join(rule.suites)}"
    if rule.why:
        why += f"; {rule.why}"
    if unavailable:
        why += f"; not downloadable: {', '.join(unavailable)}"
    return MirrorEntry(package.name, package.version, OVERRIDE_PATH,
                       f"{why} (Debian's patches, not Buildroot's)",
                       best.name, best.version, best.suite)


class _NewestFirst(Version):
    """A Debian version that sorts newest first."""

    def __lt__(self, other: object) -> bool:
        return Version.__gt__(self, other)  # type: ignore[arg-type]


def _is_upstream_tarball(name: str) -> bool:
    return bool(re.search(r"\.(orig\.)?tar\.(gz|bz2|xz|lzma|zst)$", name)) \
        and ".debian.tar." not in name and "orig-" not in name


# --- writing it ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class OfflineMirror:
    """The mirror of one workspace's Buildroot build."""

    output: Path  # Buildroot's O=
    dl_dir: Path  # BR2_DL_DIR (shared by workspaces, like Buildroot's dl/)
    cache_dir: Path = CACHE_DIR

    @property
    def local_mk(self) -> Path:
        return self.output / "local.mk"

    @property
    def no_downloads(self) -> Path:
        return self.output / NO_DOWNLOADS_DIR

    def symbols(self) -> list[tuple[str, str]]:
        """Defconfig lines: the mirror's BR2_DL_DIR, and a download site that has nothing."""
        return [("BR2_DL_DIR", f'"{self.dl_dir}"'),
                ("BR2_PRIMARY_SITE", f'"file://{self.no_downloads}"'),
                ("BR2_PRIMARY_SITE_ONLY", "y")]


def releases_from_index(index: SourceIndex) -> Callable[[str, tuple[str, ...]], list[SourceRelease]]:
    def releases_of(name: str, suites: tuple[str, ...]) -> list[SourceRelease]:
        return [r for r in index.releases(name) if r.suite in suites]
    return releases_of


def _lock_key(packages: list[BuildrootPackage], rules: Rules) -> dict:
    """What the locked choice depends on: Buildroot's packages and the mapping table."""
    return {"packages": [[p.name, p.version, list(p.downloads)] for p in packages],
            "rules": hashlib.sha256(repr(rules).encode()).hexdigest()}


def resolve(packages: list[BuildrootPackage], tree: Path, mirror: OfflineMirror,
            rules: Rules | None = None,
            on_step: Callable[[str], None] = lambda step: None) -> list[MirrorEntry]:
    """Choose and download every package's Debian source (verified, into the shared cache).

    The choice is kept in the workspace's lock while it fits these packages, so later builds
    reuse it with no network. A chosen version that fails to download is skipped for the next
    nearest one (the reason stays in the report when none is left).
    """
    rules = rules or load_rules()
    lock = mirror.output / LOCK_FILE
    if lock.is_file():
        saved = json.loads(lock.read_text())
        if saved.get("key") == _lock_key(packages, rules):
            return [MirrorEntry(**{**e, "files": tuple(e["files"])}) for e in saved["entries"]]
    index = SourceIndex(rules.suites, mirror.cache_dir)
    index.update()
    releases_of = releases_from_index(index)
    entries = []
    for package in packages:
        unavailable: dict[str, str] = {}
        while True:
            entry = choose(package, rules.for_package(package), releases_of,
                           _hashes(tree, package), unavailable)
            if entry.path in (UNMATCHED, HOST_TOOL_PATH):
                break
            on_step(f"mirror: {package.name} <- {entry.debian_source} {entry.debian_version}")
            try:
                fetch_source(entry.debian_source, entry.debian_version,
                             cache_dir=mirror.cache_dir, suites=(entry.suite,), on_step=on_step)
                break
            except SourceFetchError as error:
                unavailable[f"{entry.debian_source} {entry.debian_version}"] = error.message
        entries.append(entry)
    return entries


def apply(entries: list[MirrorEntry], packages: list[BuildrootPackage], mirror: OfflineMirror,
          on_step: Callable[[str], None] = lambda step: None, rules: Rules | None = None) -> None:
    """Fill BR2_DL_DIR and write local.mk from the downloaded sources; write the lock."""
    unmatched = [e for e in entries if e.path == UNMATCHED]
    if unmatched:
        raise MirrorError(
            f"{len(unmatched)} package(s) have no Debian source, so an offline build would "
            f"download them: " + "; ".join(f"{e.package} {e.buildroot_version}: {e.reason}"
                                           for e in unmatched))
    by_name = {p.name: p for p in packages}
    lines = ["# Generated by FleetForge's offline mirror (images/buildroot/mirror.py). DO NOT EDIT.",
             "# Each package builds from the Debian source tree named here (see mirror-report.txt)."]
    rules = rules or load_rules()
    for entry in entries:
        package = by_name[entry.package]
        if entry.path == HOST_TOOL_PATH:
            lines += _host_tool_lines(package, rules.for_package(package), mirror)
            continue
        source = fetch_source(entry.debian_source, entry.debian_version,
                              cache_dir=mirror.cache_dir, offline=True)
        if entry.path == DL_PATH:
            tarball, = source.upstream_tarballs
            dest = mirror.dl_dir / package.dl_dir / package.downloads[0]
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                _link(tarball, dest)
        else:
            on_step(f"mirror: unpack {entry.debian_source} {entry.debian_version}")
            tree = unpack_source(source, mirror.cache_dir)
            lines.append(f"{package.make_prefix}_OVERRIDE_SRCDIR = {tree}")
            lines += _autoreconf_lines(package, tree)
    mirror.no_downloads.mkdir(parents=True, exist_ok=True)
    _write_if_changed(mirror.local_mk, "\n".join(lines) + "\n")
    _write_if_changed(mirror.output / LOCK_FILE, json.dumps(
        {"key": _lock_key(packages, rules), "entries": [asdict(e) for e in entries]},
        indent=1) + "\n")


def _autoreconf_lines(package: BuildrootPackage, tree: Path) -> list[str]:
    """Buildroot autoreconfigures for its own patches, which an override tree does not get: a
    tree that ships its configure script is built as shipped; one that has only configure.ac (a
    Debian repack of a git snapshot) is autoreconfigured. Unused by non-autotools recipes."""
    if (tree / "configure").is_file():
        return [f"{package.make_prefix}_AUTORECONF = NO"]
    if (tree / "configure.ac").is_file() or (tree / "configure.in").is_file():
        return [f"{package.make_prefix}_AUTORECONF = YES"]
    return []


def _host_tool_lines(package: BuildrootPackage, rule: Rule | None,
                     mirror: OfflineMirror) -> list[str]:
    """local.mk lines that make a host package link the build machine's programs instead of
    building (Buildroot's autotools/generic infrastructure keeps commands a file defines first)."""
    assert rule is not None and rule.host_package
    links = []
    for program in rule.host_programs:
        found = shutil.which(Path(program).name)
        if found is None:
            raise MirrorError(f"{package.name}: the build machine lacks {Path(program).name} "
                              f"(run: apt-get install {rule.host_package})")
        links += [f"\tmkdir -p $(HOST_DIR)/{Path(program).parent}",
                  f"\tln -sf {found} $(HOST_DIR)/{program}"]
    empty = mirror.output / "offline-host-tools" / package.name
    empty.mkdir(parents=True, exist_ok=True)
    prefix = package.make_prefix
    # Not empty: make's ifndef (autotools) treats an empty definition as undefined. `override`:
    # a recipe that defines its own commands (generic packages) does not replace these.
    nothing = f"\t@true # {package.name}: nothing to build, {rule.host_package} is installed"
    return [f"# {package.name}: the build machine's Debian package {rule.host_package}",
            f"{prefix}_OVERRIDE_SRCDIR = {empty}",
            f"override define {prefix}_CONFIGURE_CMDS", nothing, "endef",
            f"override define {prefix}_BUILD_CMDS", nothing, "endef",
            f"override define {prefix}_INSTALL_CMDS", *(links or [nothing]), "endef"]


def _link(source: Path, dest: Path) -> None:
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:  # another file system
        shutil.copy2(source, partial)
    os.replace(partial, dest)


def _write_if_changed(path: Path, text: str) -> None:
    """Rewrite only on change: Buildroot and make compare timestamps."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def report_lines(entries: list[MirrorEntry]) -> list[str]:
    """The per-package version report, one line each, aligned."""
    rows = [("package", "buildroot", "debian", "suite", "path", "why")]
    for e in entries:
        debian = f"{e.debian_source} {e.debian_version}".strip() or "-"
        rows.append((e.package, e.buildroot_version or "-", debian, e.suite or "-", e.path,
                     e.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows]


def write_report(entries: list[MirrorEntry], destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps([asdict(e) for e in entries], indent=1) + "\n")
    destination.with_name(REPORT_TEXT).write_text("\n".join(report_lines(entries)) + "\n")
    return destination
