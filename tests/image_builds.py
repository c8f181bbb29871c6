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

import os
from pathlib import Path

from images.build import BuildResult, build
from images.workspace import Workspace

_BUILDS: dict[tuple[str, str, Path, tuple[str, ...]], BuildResult] = {}


def build_once(layers: str, name: str, base: Path, *, ota_keys: Path | None = None,
               overrides: tuple[str, ...] = ()) -> BuildResult:
    """Build `layers` into workspace `name` under `base`, once per process. `ota_keys`: the
    image trusts the OTA signing keys of this folder (FLEETFORGE_OTA_KEYS during the build only);
    `overrides`: --set SECTION.KEY=VALUE texts."""
    key = (layers, name, base, overrides)
    if key not in _BUILDS:
        previous = os.environ.get("FLEETFORGE_OTA_KEYS")
        if ota_keys is not None:
            os.environ["FLEETFORGE_OTA_KEYS"] = str(ota_keys)
        try:
            _BUILDS[key] = build(layers, workspace=Workspace.named(name, base=base),
                                 overrides=overrides)
        finally:
            if previous is None:
                os.environ.pop("FLEETFORGE_OTA_KEYS", None)
            else:
                os.environ["FLEETFORGE_OTA_KEYS"] = previous
    return _BUILDS[key]
