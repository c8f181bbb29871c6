"""Where things live in the workspace (the repository is the workspace, as in SkiffOS)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYERS_DIR = REPO_ROOT / "layers"
WORKSPACES_DIR = Path(os.environ.get("FLEETFORGE_WORKSPACES", REPO_ROOT / "workspaces"))
# Downloads (Debian packages, sources) are cached here like Buildroot's dl/ directory; shared by
# every workspace so a second build needs no network.
CACHE_DIR = Path(os.environ.get("FLEETFORGE_CACHE", REPO_ROOT / ".cache"))
