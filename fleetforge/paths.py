"""Where things live in the workspace (the repository is the workspace, as in SkiffOS)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYERS_DIR = REPO_ROOT / "layers"
WORKSPACES_DIR = Path(os.environ.get("FLEETFORGE_WORKSPACES", REPO_ROOT / "workspaces"))
# Downloads (Debian packages, sources) are cached like Buildroot's dl/ directory, per user rather
# than per clone (as mkosi does), so every workspace and every clone reuses them; apt verifies
# each file, so sharing is safe.
CACHE_DIR = Path(
    os.environ.get("FLEETFORGE_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fleetforge"
)
