"""App-only updates, host side: build the app for the workspace's board, pack its folder as the
signed OTA artifact `app-NAME` (contract A) in an artifact-only bundle. `fleetforge deploy --app
NAME` sends it: the device switches the app atomically, restarts it, health-checks it and puts
the previous version back if the check fails, without a reboot."""
from __future__ import annotations

import time
from pathlib import Path

import toolchains
from apps.build import build_app
from apps.image import write_app_folder
from apps.locate import APP_GROUP, find_app
from fleetforge.errors import UserError
from images.manifest import load_manifest
from images.workspace import Workspace
from ota.artifacts import ArtifactSource
from ota.bundle import SUFFIX, create_bundle
from ota.keys import load_private


def app_bundle(name: str, workspace: Workspace, *, version: str = "") -> Path:
    """The signed bundle updating app `name` (an app layer or folder) on devices running
    `workspace`'s image; written to the workspace's bundles/."""
    if not workspace.manifest_path.is_file():
        raise UserError(f"workspace '{workspace.name}' has no built image: the app is built for "
                        f"its board (run: fleetforge build --workspace {workspace.name})",
                        where=str(workspace.manifest_path))
    manifest = load_manifest(workspace.manifest_path)
    app = find_app(name)
    if f"{APP_GROUP}/{app.name}" not in manifest.layers:
        # The device runs an app only if its image carries the app's service (its layer).
        raise UserError(f"the image of workspace '{workspace.name}' does not carry app {app.name} "
                        f"(its layers: {', '.join(manifest.layers)}); build it with layer "
                        f"{APP_GROUP}/{app.name} and update the root filesystem first",
                        where=str(workspace.manifest_path))
    board = manifest.board
    target = toolchains.target(board.target)
    (build,) = build_app(app, workspace.build_dir / "apps" / app.name, targets=[target])
    folder = write_app_folder(build, workspace.root / "apps" / app.name)
    version = version or time.strftime("%Y.%m%d.%H%M%S", time.gmtime())
    out = workspace.root / "bundles" / f"{app.artifact_name}-{version}{SUFFIX}"
    return create_bundle(None, out, compatible=board.compatible, version=version,
                         signing_key=load_private(),
                         artifacts=(ArtifactSource(app.artifact_name, folder),),
                         security_version=manifest.security_version)  # the devices' floor
