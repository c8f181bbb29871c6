"""`fleetforge build --backend buildroot`: configure, run Buildroot with progress, collect the images.

Buildroot's make produces the parts; its post-build and post-image scripts hand them to the
assembly engine (images/buildroot/post_scripts.py), so the images match the offline backend's.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.paths import CACHE_DIR
from fleetforge.progress import console, step_progress
from images.assemble import MANIFEST_NAME, with_timings
from images.buildroot.configure import buildroot_build, configure
from images.buildroot.make import build_with_progress, show_info
from images.buildroot.mirror import (
    OVERRIDE_PATH,
    REPORT_FILE,
    REPORT_TEXT,
    MirrorEntry,
    OfflineMirror,
    apply,
    packages_needing_sources,
    report_lines,
    resolve,
    write_report,
)
from images.buildroot.parts import SHOW_INFO_FILE
from images.buildroot.post_scripts import IMAGES_SUBDIR
from images.buildroot.toolchain import DEFAULT_TOOLCHAIN, choose_toolchain
from images.buildroot.tree import locate_tree
from images.kconfig_check import format_report
from images.layers import load_config
from images.manifest import Manifest, load_manifest, write_manifest
from images.workspace import Workspace


def build(layers: str | Sequence[str] | None, *, workspace: Workspace, strict: bool = False,
          buildroot_dir: str | None = None, overrides: Sequence[str] | None = None,
          offline: bool = False, toolchain: str | None = None) -> Manifest:
    """Build the layers' image with Buildroot into `workspace`/images (same layout as offline).

    `offline`: Debian's cross compiler and Debian's sources (mirror.py); Buildroot downloads
    nothing. `toolchain`: bootlin (default online) or debian (default and required offline).
    """
    started = time.monotonic()
    config = load_config(layers, strict=strict, overrides=overrides)
    tree = locate_tree(buildroot_dir)
    kind = toolchain or ("debian" if offline else DEFAULT_TOOLCHAIN)
    if offline and kind != "debian":
        raise UserError(f"--offline builds with --toolchain debian (the {kind} toolchain is a "
                        f"download); drop --toolchain or --offline")
    workspace.ensure_ssh_key()
    mirror = OfflineMirror(output=buildroot_build(tree, workspace.root).output,
                           dl_dir=CACHE_DIR / "buildroot-dl") if offline else None
    result = configure(config, tree, workspace.root, strict=strict,
                       toolchain=choose_toolchain(config.board.target, kind),
                       downloads=mirror.symbols() if mirror else ())
    console.print(f"Buildroot {tree.version}: {format_report(result.problems, 'configuration')}",
                  markup=False, highlight=False)
    console.print(f"toolchain: {result.defconfig.toolchain.note}", markup=False, highlight=False)
    # Versions as Buildroot's recipes have them (an override file would say "custom").
    info = show_info(result.build, variables={"BR2_PACKAGE_OVERRIDE_FILE": ""})
    if mirror is not None:
        for entry in fill_mirror(info, tree.path, mirror):
            if entry.path == OVERRIDE_PATH:  # the manifest names what was really built
                info[entry.package]["version"] = f"{entry.debian_version} (Debian source)"
    (result.build.output / SHOW_INFO_FILE).write_text(json.dumps(info))
    configured = time.monotonic()
    build_with_progress(result.build, sorted(info))
    produced = result.build.images_dir / IMAGES_SUBDIR
    if not (produced / MANIFEST_NAME).is_file():
        raise UserError("Buildroot finished but its post-image step wrote no manifest "
                        f"(see {result.build.log})", where=str(produced))
    stages = {"configuration": round(configured - started, 2),
              "buildroot": round(time.monotonic() - configured, 2)}
    manifest = with_timings(load_manifest(produced / MANIFEST_NAME), time.monotonic() - started,
                            stages)
    write_manifest(manifest, produced / MANIFEST_NAME)
    if mirror is not None:  # the per-package version report, beside the manifest
        for name in (REPORT_FILE, REPORT_TEXT):
            shutil.copy2(mirror.output / name, produced / name)
    workspace.replace_images(produced, copy=True)
    return manifest


def fill_mirror(info: dict, tree: Path, mirror: OfflineMirror) -> list[MirrorEntry]:
    """Pick, fetch and hand over every package's Debian source; print the version report."""
    packages = packages_needing_sources(info)
    with step_progress() as progress:
        task = progress.add_task("offline mirror: choose and fetch Debian sources", total=None)
        entries = resolve(packages, tree, mirror,
                          on_step=lambda step: progress.update(task, description=step))
        write_report(entries, mirror.output / REPORT_FILE)
        progress.update(task, description=f"offline mirror: {len(entries)} packages")
    for line in report_lines(entries):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    with step_progress() as progress:
        task = progress.add_task("offline mirror: hand the sources to Buildroot", total=None)
        apply(entries, packages, mirror,  # raises, naming every unmatched package
              on_step=lambda step: progress.update(task, description=step))
    return entries
