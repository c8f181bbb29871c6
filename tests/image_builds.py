"""Test helper for suites that need a real built (and booted) image: one build per session.

tests/images/conftest.py wraps it in fixtures; another area's conftest can do the same
(tests/ is on pytest's import path, as for checkout.py):
    from image_builds import build_once

    @pytest.fixture(scope="session")
    def my_image(tmp_path_factory):
        return build_once("qemu-aarch64,core/minimal,feature/ota", "ota", tmp_path_factory.mktemp("ws"))
Workspaces go under the given (temporary) base; the download cache (FLEETFORGE_CACHE) is shared.
"""
from __future__ import annotations

from pathlib import Path

from images.build import BuildResult, build
from images.workspace import Workspace

_BUILDS: dict[tuple[str, str, Path], BuildResult] = {}


def build_once(layers: str, name: str, base: Path) -> BuildResult:
    """Build `layers` into workspace `name` under `base`, once per process."""
    key = (layers, name, base)
    if key not in _BUILDS:
        _BUILDS[key] = build(layers, workspace=Workspace.named(name, base=base))
    return _BUILDS[key]
