"""Copy a layer's overlay directory over a tree (later layers replace earlier files)."""
from __future__ import annotations

import shutil
from pathlib import Path


def copy_overlay(overlay: Path, tree: Path) -> int:
    """Copy files, keeping modes; symlinks inside the layer are followed (one source file can
    serve both overlays). Returns the number of files copied."""
    count = 0
    for source in sorted(overlay.rglob("*")):
        dest = tree / source.relative_to(overlay)
        if source.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        shutil.copy2(source, dest)
        count += 1
    return count
