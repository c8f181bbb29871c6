"""`fleetforge build --backend buildroot`: configure, run Buildroot with progress, collect the images.

Buildroot's make produces the parts; its post-build and post-image scripts hand them to the
assembly engine (images/buildroot/post_scripts.py), so the images match the offline backend's.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence

from fleetforge.errors import UserError
from fleetforge.progress import console
from images.assemble import MANIFEST_NAME, with_timings
from images.buildroot.configure import configure
from images.buildroot.make import build_with_progress, show_info
from images.buildroot.parts import SHOW_INFO_FILE
from images.buildroot.post_scripts import IMAGES_SUBDIR
from images.buildroot.tree import locate_tree
from images.kconfig_check import format_report
from images.layers import load_config
from images.manifest import Manifest, load_manifest, write_manifest
from images.workspace import Workspace


def build(layers: str | Sequence[str] | None, *, workspace: Workspace, strict: bool = False,
          buildroot_dir: str | None = None, overrides: Sequence[str] | None = None) -> Manifest:
    """Build the layers' image with Buildroot into `workspace`/images (same layout as offline)."""
    started = time.monotonic()
    config = load_config(layers, strict=strict, overrides=overrides)
    tree = locate_tree(buildroot_dir)
    workspace.ensure_ssh_key()
    result = configure(config, tree, workspace.root, strict=strict)
    console.print(f"Buildroot {tree.version}: {format_report(result.problems, 'configuration')}",
                  markup=False, highlight=False)
    configured = time.monotonic()
    info = show_info(result.build)
    (result.build.output / SHOW_INFO_FILE).write_text(json.dumps(info))
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
    workspace.replace_images(produced, copy=True)
    return manifest
