"""`fleetforge build --backend buildroot`: configure, run Buildroot with progress, collect the images."""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence

from fleetforge.errors import UserError
from fleetforge.progress import console
from images.build import BuildResult
from images.buildroot.configure import configure
from images.buildroot.make import build_with_progress, show_info
from images.buildroot.post_image import SHOW_INFO_FILE
from images.buildroot.tree import locate_tree
from images.kconfig_check import format_report
from images.layers import load_config
from images.manifest import load_manifest
from images.workspace import Workspace


def build(layers: str | Sequence[str] | None, *, workspace: Workspace, strict: bool = False,
          buildroot_dir: str | None = None) -> BuildResult:
    """Build the layers' image with Buildroot into `workspace`/images (same layout as offline)."""
    started = time.monotonic()
    config = load_config(layers, strict=strict)
    tree = locate_tree(buildroot_dir)
    workspace.ensure_ssh_key()  # the generated post-build script installs its .pub for root
    result = configure(config, tree, workspace.root, strict=strict)
    console.print(f"Buildroot {tree.version}: {format_report(result.problems, 'configuration')}",
                  markup=False, highlight=False)
    info = show_info(result.build)
    (result.build.output / SHOW_INFO_FILE).write_text(json.dumps(info))
    build_with_progress(result.build, sorted(info))
    produced = result.build.images_dir / "fleetforge"
    if not (produced / "manifest.json").is_file():
        raise UserError("Buildroot finished but its post-image step wrote no manifest "
                        f"(see {result.build.log})", where=str(produced))
    # Swap the finished images in at the very end: a failed build leaves the old ones.
    shutil.rmtree(workspace.images_dir, ignore_errors=True)
    shutil.copytree(produced, workspace.images_dir)
    manifest = load_manifest(workspace.manifest_path)
    return BuildResult(workspace, manifest, time.monotonic() - started)
