"""Fixtures for image tests: one real build of the default image per session, booted once.

The build helper lives in tests/image_builds.py so other areas' conftests can reuse it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from images.build import BuildResult
from images.layers import DEFAULT_LAYERS
from images.qemu import BootedMachine
from image_builds import build_once


@pytest.fixture(scope="session")
def workspaces_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workspaces")


@pytest.fixture(scope="session")
def build_workspace(workspaces_dir: Path) -> Callable[..., BuildResult]:
    """Build `layers` into temp workspace `name` (once per session for the same arguments)."""

    def _build(layers: str = ",".join(DEFAULT_LAYERS), name: str = "default") -> BuildResult:
        return build_once(layers, name, workspaces_dir)

    return _build


@pytest.fixture(scope="session")
def built_image(build_workspace: Callable[..., BuildResult]) -> BuildResult:
    """The default image, built for real with the offline backend."""
    return build_workspace()


@pytest.fixture(scope="session")
def booted_machine(built_image: BuildResult) -> Iterator[BootedMachine]:
    """The default image running in QEMU and healthy; powered off through SSH at the end."""
    machine = BootedMachine.start(built_image.workspace, timeout=180)
    yield machine
    machine.stop(power_off=True)
