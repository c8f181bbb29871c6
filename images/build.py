"""`fleetforge build`: a backend makes the image's parts, the assembly engine makes the image."""
from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from fleetforge.errors import UserError
from fleetforge.progress import console, step_progress
from images.assemble import AssemblyDirs, assemble_image, with_timings
from images.buildroot import backend as buildroot_backend
from images.config_view import print_conflict_warnings
from images.layers import load_config
from images.manifest import Manifest, write_manifest
from images.settings import parse_assignments
from images.offline import OfflineBackend
from images.workspace import Workspace

BACKENDS = ("offline", "buildroot")
T = TypeVar("T")


@dataclass(frozen=True)
class BuildResult:
    workspace: Workspace
    manifest: Manifest
    seconds: float


class _Stages:
    """One progress bar over the build's named stages, timing each."""

    NAMES = ("configuration", "Debian packages", "kernel", "root filesystem", "initramfs",
             "root slot image", "boot partition", "disk image", "post-image hooks", "manifest")

    def __init__(self, progress) -> None:
        self.progress = progress
        self.task = progress.add_task("build", total=len(self.NAMES))
        self.seconds: dict[str, float] = {}

    def run(self, name: str, func: Callable[[], T]) -> T:
        self.progress.update(self.task, description=name)
        started = time.monotonic()
        result = func()
        self.seconds[name] = round(time.monotonic() - started, 2)
        self.progress.advance(self.task)
        return result


def build(layers: str | Sequence[str] | None = None, *, workspace: Workspace, backend: str = "offline",
          strict: bool = False, refresh: bool = False, buildroot_dir: str | None = None,
          overrides: Sequence[str] | None = None, offline: bool = False,
          toolchain: str | None = None) -> BuildResult:
    """Build the image for `layers` into `workspace`; raise UserError on any bad input.
    `overrides`: --set SECTION.KEY=VALUE texts, applied over the layers; `offline` and
    `toolchain` are the Buildroot backend's (docs/buildroot.md)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}' (choose one of: {', '.join(BACKENDS)})")
    parse_assignments(overrides)  # a bad --set fails in one line, before any progress display
    started = time.monotonic()
    if backend == "buildroot":
        manifest = buildroot_backend.build(layers, workspace=workspace, strict=strict,
                                           buildroot_dir=buildroot_dir, overrides=overrides,
                                           offline=offline, toolchain=toolchain)
        return BuildResult(workspace, manifest, time.monotonic() - started)
    if toolchain or offline:
        raise UserError("--offline and --toolchain are options of --backend buildroot (the "
                        "offline backend never downloads sources and uses Debian's packages)")
    with step_progress() as progress:
        stages = _Stages(progress)
        config = stages.run("configuration",
                            lambda: load_config(layers, strict=strict, overrides=overrides))
        print_conflict_warnings(config, console)  # two layers disagreeing: named, not fatal
        workspace.logs_dir.mkdir(parents=True, exist_ok=True)
        # Written below build/ and swapped in as workspace/images only when complete.
        dirs = AssemblyDirs(out=workspace.build_dir / "images", work=workspace.build_dir,
                            build_dir=workspace.build_dir, log=workspace.logs_dir / "build.log")
        dirs.log.write_text("")
        shutil.rmtree(dirs.out, ignore_errors=True)
        dirs.out.mkdir(parents=True)
        offline = OfflineBackend(config, workspace, dirs, refresh=refresh, strict=strict)
        packages = stages.run("Debian packages", offline.packages)
        kernel = stages.run("kernel", offline.kernel)
        tree = stages.run("root filesystem", lambda: offline.rootfs(packages))
        parts = offline.parts(packages, kernel, tree)
        manifest = assemble_image(config, parts, workspace, dirs, stage=stages.run)
    manifest = with_timings(manifest, time.monotonic() - started, stages.seconds)
    write_manifest(manifest, dirs.out / "manifest.json")
    workspace.replace_images(dirs.out)
    return BuildResult(workspace, manifest, time.monotonic() - started)
