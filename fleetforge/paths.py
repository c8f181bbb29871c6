"""Where things live: the shipped data (layers), the user's project folder, the download cache.

The project folder is the current directory, as with kas: its `workspaces/` holds builds, its
`keys/` the OTA signing keys, its own `layers/` (if any) are found before the shipped ones.
FleetForge itself may run from a checkout (editable install) or from an installed wheel.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# fleetforge/layers: in a checkout a link to layers/, in an installed wheel the files themselves.
SHIPPED_LAYERS_DIR = (PACKAGE_DIR / "layers").resolve()
# Downloads (Debian packages, sources) are cached like Buildroot's dl/ directory, per user rather
# than per project (as mkosi does), so every workspace and every project reuses them; apt verifies
# each file, so sharing is safe.
CACHE_DIR = Path(
    os.environ.get("FLEETFORGE_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fleetforge"
)


def project_dir() -> Path:
    """The user's project folder: the current directory (read at call time, never cached)."""
    return Path.cwd()


def workspaces_dir() -> Path:
    """Where workspaces go: $FLEETFORGE_WORKSPACES, else ./workspaces (`--work-dir` sets the env)."""
    return Path(os.environ.get("FLEETFORGE_WORKSPACES") or project_dir() / "workspaces").absolute()


def set_workspaces_dir(path: str | Path) -> None:
    """`--work-dir DIR`: every later lookup (and every hook FleetForge runs) uses DIR."""
    os.environ["FLEETFORGE_WORKSPACES"] = str(Path(path).absolute())


def layer_search_path() -> tuple[Path, ...]:
    """Layer folders, searched in order: $FLEETFORGE_LAYER_PATH (colon-separated), the project's
    own ./layers, then the shipped layers. The first folder holding a layer name wins."""
    extra = [Path(p) for p in os.environ.get("FLEETFORGE_LAYER_PATH", "").split(":") if p]
    candidates = [*extra, project_dir() / "layers", SHIPPED_LAYERS_DIR]
    seen: list[Path] = []
    for folder in candidates:
        folder = folder.resolve()
        if folder.is_dir() and folder not in seen:
            seen.append(folder)
    return tuple(seen)


def keys_dir() -> Path:
    """The project's OTA signing keys: $FLEETFORGE_OTA_KEYS, else ./keys (never committed)."""
    return Path(os.environ.get("FLEETFORGE_OTA_KEYS") or project_dir() / "keys").absolute()


def display_path(path: Path | str) -> str:
    """A path as messages and generated files show it: a shipped layer file as layers/...,
    a file of the project or of FleetForge's own source relative to it, else absolute."""
    path = Path(path).absolute()
    if path.is_relative_to(SHIPPED_LAYERS_DIR):
        return str(Path("layers") / path.relative_to(SHIPPED_LAYERS_DIR))
    for base in (project_dir(), PACKAGE_DIR.parent):
        if path.is_relative_to(base):
            return str(path.relative_to(base))
    return str(path)
