"""Remove workspaces (build output) and, on request, the download cache."""
from __future__ import annotations

import shutil
from pathlib import Path

from fleetforge.paths import CACHE_DIR, workspaces_dir
from images.workspace import Workspace


def clean(workspace: str | None = None, *, cache: bool = False) -> list[Path]:
    """Delete one workspace or all of them (keeping their SSH keys), plus the cache if asked."""
    removed: list[Path] = []
    targets = [Workspace.named(workspace)] if workspace else [
        Workspace.named(p.name) for p in sorted(workspaces_dir().glob("*")) if p.is_dir()]
    for ws in targets:
        # The SSH key stays: devices already flashed with it must remain reachable.
        for path in (ws.build_dir, ws.images_dir, ws.logs_dir):
            if path.exists():
                shutil.rmtree(path)
                removed.append(path)
    if cache and CACHE_DIR.exists():
        shutil.rmtree(CACHE_DIR)
        removed.append(CACHE_DIR)
    return removed
