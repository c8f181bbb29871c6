"""The offline mirror's matching (images/buildroot/mirror.py) on recorded package lists.

data/mirror/ holds what a real run saw for qemu/aarch64,core/minimal,feature/ota: Buildroot
2026.02.3's `make show-info`, the sha256 lines of its .hash files, and the versions Debian's
bookworm, trixie and sid source indexes listed (refresh them by hand when Buildroot is bumped).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fleetforge.debian_source import SourceFile, SourceRelease
from images.buildroot.mirror import (
    DL_PATH,
    HOST_TOOL_PATH,
    OVERRIDE_PATH,
    UNMATCHED,
    BuildrootPackage,
    MirrorEntry,
    MirrorError,
    OfflineMirror,
    Rule,
    Rules,
    apply,
    choose,
    distance,
    load_rules,
    numeric_version,
    packages_needing_sources,
    report_lines,
)

DATA = Path(__file__).parent / "data" / "mirror"
SHOW_INFO = json.loads((DATA / "show-info.json").read_text())
HASHES = json.loads((DATA / "buildroot-hashes.json").read_text())
RELEASES = json.loads((DATA / "debian-releases.json").read_text())


def releases_of(name: str, suites: tuple[str, ...]) -> list[SourceRelease]:
    return [SourceRelease(name, r["version"], r["directory"],
                          tuple(SourceFile(*f) for f in r["files"]), r["suite"])
            for r in RELEASES.get(name, []) if r["suite"] in suites]


@pytest.fixture(scope="module")
def packages() -> dict[str, BuildrootPackage]:
    return {p.name: p for p in packages_needing_sources(SHOW_INFO)}


@pytest.fixture(scope="module")
def entries(packages) -> dict[str, MirrorEntry]:
    rules = load_rules()
    return {p.name: choose(p, rules.for_package(p), releases_of, HASHES[p.name])
            for p in packages.values()}


def test_only_packages_that_download_need_a_source(packages):
    assert {"busybox", "dropbear", "linux", "host-tar", "libopenssl"} <= set(packages)
    # Virtual packages, skeletons, init scripts and the external toolchain download nothing.
    assert not {"toolchain-external-custom", "skeleton-init-sysv", "openssl", "host-makedevs",
                "initscripts", "rootfs-squashfs"} & set(packages)
    assert packages["host-libzlib"].make_prefix == "HOST_LIBZLIB"
    assert packages["host-libzlib"].base == "libzlib"


def test_every_package_of_the_default_ota_build_is_matched(entries):
    assert [e.package for e in entries.values() if e.path == UNMATCHED] == []


def test_a_byte_identical_tarball_keeps_buildroots_hash_and_patches(entries):
    busybox = entries["busybox"]
    assert (busybox.path, busybox.files) == (DL_PATH, ("busybox-1.37.0.tar.bz2",))
    # trixie and sid share the tarball; the stable suite wins among equals.
    assert (busybox.debian_version, busybox.suite) == ("1:1.37.0-6", "trixie")
    assert "byte-identical" in busybox.reason
    # Two Debian names for one Buildroot package: automake is named by series in Debian.
    assert (entries["host-automake"].path, entries["host-automake"].debian_source) == \
        (DL_PATH, "automake-1.16")


def test_otherwise_the_nearest_version_overrides_the_source(entries):
    linux = entries["linux"]
    assert linux.path == OVERRIDE_PATH and linux.buildroot_version == "6.19.14"
    assert linux.debian_version.startswith("6.12.") and linux.suite == "trixie"  # not 7.x
    zlib = entries["libzlib"]  # Debian's repack 1:1.3.dfsg+really1.3.2 is 1.3.2
    assert zlib.path == OVERRIDE_PATH and "+really1.3.2" in zlib.debian_version
    assert "same upstream version" in zlib.reason
    # No Debian kmod source builds with Buildroot's recipe: the table says so, and why.
    kmod = entries["host-kmod"]
    assert (kmod.path, kmod.debian_source) == (HOST_TOOL_PATH, "kmod") and "meson" in kmod.reason


def test_nearness():
    assert numeric_version("1:1.3.dfsg+really1.3.2-4") == (1, 3, 2)
    assert numeric_version("1.35+dfsg-3.1") == (1, 35)
    assert numeric_version("30+20221128-1") == (30,)
    wanted = (6, 19, 14)
    assert distance(wanted, (6, 19, 14)) < distance(wanted, (6, 19, 2)) < \
        distance(wanted, (6, 12, 117)) < distance(wanted, (7, 0, 4))
    # Same gap: the newer release is nearer (its options are a superset more often).
    assert distance((2, 3, 0), (2, 5)) < distance((2, 3, 0), (2, 1))


def test_versions_that_do_not_download_are_skipped_and_named(packages):
    rules = load_rules()
    busybox = packages["busybox"]
    failed = {"busybox 1:1.37.0-6": "HTTP Error 404", "busybox 1:1.37.0-10.1": "HTTP Error 404"}
    entry = choose(busybox, rules.for_package(busybox), releases_of, HASHES["busybox"], failed)
    assert entry.path == OVERRIDE_PATH and entry.debian_version != "1:1.37.0-6"
    assert "not downloadable: busybox 1:1.37.0-6" in entry.reason
    every = {f"busybox {r.version}": "404" for r in releases_of("busybox", rules.suites)}
    none_left = choose(busybox, rules.for_package(busybox), releases_of, {}, every)
    assert none_left.path == UNMATCHED and "could be downloaded" in none_left.reason


def test_a_host_tool_may_fall_back_to_the_build_machines_package(packages):
    fakeroot = packages["host-fakeroot"]
    rule = load_rules().for_package(fakeroot)
    every = {f"fakeroot {r.version}": "404" for r in releases_of("fakeroot", rule.suites)}
    entry = choose(fakeroot, rule, releases_of, {}, every)
    assert (entry.path, entry.debian_source) == (HOST_TOOL_PATH, "fakeroot")
    assert "build machine's Debian package fakeroot" in entry.reason


def test_unmatched_packages_are_named_with_the_reason():
    unknown = BuildrootPackage("host-frobnicate", "1.0", "frobnicate", ("frobnicate-1.0.tar.gz",))
    rules = Rules(("bookworm",), {"gone": Rule(("no-such-source",), ("bookworm",))})
    entry = choose(unknown, rules.for_package(unknown), releases_of, {})
    assert entry.path == UNMATCHED and "debian_sources.toml" in entry.reason
    gone = BuildrootPackage("gone", "2.0", "gone", ("gone-2.0.tar.gz",))
    entry = choose(gone, rules.for_package(gone), releases_of, {})
    assert entry.path == UNMATCHED and "no source package no-such-source in bookworm" in entry.reason


def test_an_unmatched_package_stops_the_build_before_anything_is_written(tmp_path):
    mirror = OfflineMirror(output=tmp_path / "out", dl_dir=tmp_path / "dl", cache_dir=tmp_path)
    package = BuildrootPackage("gone", "2.0", "gone", ("gone-2.0.tar.gz",))
    entry = MirrorEntry("gone", "2.0", UNMATCHED, "Debian has no source package gone")
    with pytest.raises(MirrorError, match="gone 2.0: Debian has no source package gone"):
        apply([entry], [package], mirror)
    assert not mirror.local_mk.exists() and not (tmp_path / "dl").exists()
    # Buildroot may not download either: its only site is an empty local folder.
    symbols = dict(mirror.symbols())
    assert symbols["BR2_PRIMARY_SITE"] == f'"file://{mirror.no_downloads}"'
    assert symbols["BR2_PRIMARY_SITE_ONLY"] == "y"


def test_the_report_has_one_line_per_package(entries):
    lines = report_lines(list(entries.values()))
    assert lines[0].split()[:5] == ["package", "buildroot", "debian", "suite", "path"]
    assert len(lines) == len(entries) + 1
    linux = next(line for line in lines if line.startswith("linux "))
    assert "6.19.14" in linux and "linux 6.12." in linux and "override" in linux


def test_applied_mirror_gives_make_each_source(tmp_path, demo_source_package):
    """dl-dir, override and host-tool, written for real and read back by GNU make."""
    cache = tmp_path / "cache"
    shutil.copytree(demo_source_package.parent, cache / "debian-source" / "demo",
                    ignore=shutil.ignore_patterns("demo-1.0"))
    mirror = OfflineMirror(output=tmp_path / "out", dl_dir=tmp_path / "dl", cache_dir=cache)
    packages = [BuildrootPackage("demo", "1.0", "demo", ("demo-1.0.tar.gz",)),
                BuildrootPackage("host-demo-tools", "0.9", "demo", ("demo-0.9.tar.gz",)),
                BuildrootPackage("host-fakeroot", "1.37.1.2", "fakeroot", ("fakeroot.tar.gz",))]
    entries = [MirrorEntry("demo", "1.0", DL_PATH, "identical", "demo", "1.0-1", "sid",
                           ("demo-1.0.tar.gz",)),
               MirrorEntry("host-demo-tools", "0.9", OVERRIDE_PATH, "nearest", "demo", "1.0-1",
                           "sid"),
               MirrorEntry("host-fakeroot", "1.37.1.2", HOST_TOOL_PATH, "none downloads",
                           "fakeroot", "", "host")]
    apply(entries, packages, mirror)
    linked = tmp_path / "dl" / "demo" / "demo-1.0.tar.gz"  # Buildroot's name, Debian's bytes
    assert linked.read_bytes() == (demo_source_package.parent / "demo_1.0.orig.tar.gz").read_bytes()
    probe = tmp_path / "probe.mk"
    probe.write_text(
        f"include {mirror.local_mk}\n"
        # A recipe defining its own commands later (generic packages do) must not win.
        "define HOST_FAKEROOT_INSTALL_CMDS\n\tthe recipe's own install\nendef\n"
        "ifndef HOST_FAKEROOT_CONFIGURE_CMDS\n$(error empty: the infrastructure would build)\n"
        "endif\n"
        "$(info $(HOST_DEMO_TOOLS_OVERRIDE_SRCDIR))\n"
        "$(info $(HOST_DEMO_TOOLS_AUTORECONF))\n"
        "$(info $(value HOST_FAKEROOT_INSTALL_CMDS))\n"
        "all: ; @:\n")
    made = subprocess.run(["make", "-s", "-f", probe], capture_output=True, text=True, check=True)
    override, autoreconf, install = made.stdout.split("\n", 2)
    assert '"debian"' in (Path(override) / "hello.c").read_text()  # patched Debian tree
    assert autoreconf == ""  # the demo tree ships no configure: the recipe decides
    assert f"ln -sf {shutil.which('fakeroot')} $(HOST_DIR)/bin/fakeroot" in install
    lock = json.loads((mirror.output / "mirror-lock.json").read_text())
    assert [e["path"] for e in lock["entries"]] == [DL_PATH, OVERRIDE_PATH, HOST_TOOL_PATH]
    assert lock["key"]["rules"] and lock["key"]["packages"][0] == ["demo", "1.0", ["demo-1.0.tar.gz"]]
