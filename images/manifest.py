"""The build manifest (JSON): layers, packages with versions, every artifact with size and sha256."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleetforge.errors import UserError
from fleetforge.hashing import sha256_file
from images.settings import board_from_record, board_record

MANIFEST_VERSION = 2  # 2: the board record holds every [board] setting


@dataclass(frozen=True)
class PackageRecord:
    name: str
    version: str
    arch: str
    role: str  # rootfs | kernel | initramfs | boot (files on the boot partition)


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the images directory
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    workspace: str
    layers: list[str]
    backend: str
    board: Any  # images.settings.Board: every [board] setting (the JSON adds arch, debian_arch)
    kernel_version: str
    kernel_cmdline: str
    config_digest: str
    packages: list[PackageRecord]
    artifacts: list[Artifact]
    build_seconds: float = 0.0
    image_version: str = ""     # /etc/fleetforge/version of the root filesystem
    security_version: int = 0   # /etc/fleetforge/security-version (anti-rollback level)
    version: int = MANIFEST_VERSION
    extra: dict[str, str] = field(default_factory=dict)

    def artifact(self, path: str) -> Artifact:
        for item in self.artifacts:
            if item.path == path:
                return item
        raise KeyError(path)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "board": board_record(self.board)}, indent=2) + "\n"


def describe_artifacts(images_dir: Path, names: list[str]) -> list[Artifact]:
    return [Artifact(n, (images_dir / n).stat().st_size, sha256_file(images_dir / n)) for n in names]


def write_manifest(manifest: Manifest, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(manifest.to_json())
    tmp.rename(path)


def load_manifest(path: Path) -> Manifest:
    """Read a manifest back into dataclasses; a missing one means the workspace was never built."""
    if not path.is_file():
        raise UserError("no image built in this workspace yet (run: fleetforge build)", where=str(path))
    try:
        data = json.loads(path.read_text())
        data["board"] = board_from_record(data["board"])
        data["packages"] = [PackageRecord(**p) for p in data["packages"]]
        data["artifacts"] = [Artifact(**a) for a in data["artifacts"]]
        return Manifest(**data)
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"unreadable manifest ({error}); rebuild the workspace", where=str(path)) from None
