"""TEMPORARY stand-in for the lead's layer model (see /work/coord/LAYER_API.md); replaced on merge."""
from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.paths import LAYERS_DIR

DEFAULT_LAYERS = "board/qemu-aarch64,core/minimal"


@dataclass(frozen=True)
class Origin:
    layer: str
    path: Path
    line: int


@dataclass(frozen=True)
class Setting:
    name: str
    value: str
    origin: Origin

    @property
    def text(self) -> str:
        return self.value[1:-1] if self.value.startswith('"') else self.value


@dataclass(frozen=True)
class Board:
    name: str
    arch: str
    debian_arch: str
    compatible: str
    qemu_system: str
    qemu_machine: str
    qemu_cpu: str
    console: str
    kernel: str
    kernel_package: str
    kernel_image: str
    boot_tested: bool


@dataclass(frozen=True)
class ImageLayout:
    partition_table: str = "gpt"
    boot_size: int = 64 << 20
    rootfs_size: int = 48 << 20
    persist_size: int = 32 << 20
    rootfs_format: str = "squashfs"
    boot_fstype: str = "ext4"


@dataclass(frozen=True)
class Layer:
    name: str
    path: Path
    description: str
    depends: tuple[str, ...]
    meta: dict = field(hash=False, compare=False)

    @property
    def commands(self) -> dict[str, Path]:
        d = self.path / "commands"
        return {p.name: p for p in sorted(d.iterdir())} if d.is_dir() else {}

    @property
    def resources(self) -> Path | None:
        d = self.path / "resources"
        return d if d.is_dir() else None


@dataclass(frozen=True)
class MergedConfig:
    layers: tuple[Layer, ...]
    board: Board
    image: ImageLayout
    buildroot: dict[str, Setting]
    kernel: dict[str, Setting]

    def enabled_packages(self) -> tuple[str, ...]:
        return tuple(n for n, s in self.buildroot.items()
                     if n.startswith("BR2_PACKAGE_") and s.value == "y")

    def _dirs(self, rel: str) -> tuple[Path, ...]:
        return tuple(l.path / rel for l in self.layers if (l.path / rel).exists())

    @property
    def root_overlays(self) -> tuple[Path, ...]:
        return self._dirs("root_overlay")

    @property
    def initramfs_overlays(self) -> tuple[Path, ...]:
        return self._dirs("initramfs_overlay")

    @property
    def post_build_hooks(self) -> tuple[Path, ...]:
        return self._dirs("hooks/post-build.sh")

    @property
    def post_image_hooks(self) -> tuple[Path, ...]:
        return self._dirs("hooks/post-image.sh")

    @property
    def hostname(self) -> str:
        s = self.buildroot.get("BR2_TARGET_GENERIC_HOSTNAME")
        return s.text if s else "fleetforge"

    def digest(self) -> str:
        h = hashlib.sha256()
        for layer in self.layers:
            for p in sorted(layer.path.rglob("*")):
                if p.is_file():
                    h.update(str(p.relative_to(LAYERS_DIR)).encode())
                    h.update(p.read_bytes())
        return h.hexdigest()


def _find(name: str) -> Path:
    for cand in (LAYERS_DIR / name, *LAYERS_DIR.glob(f"*/{name}"),
                 *LAYERS_DIR.glob(f"*/{name.replace('/', '-')}")):
        if (cand / "layer.toml").is_file():
            return cand
    raise UserError(f"unknown layer '{name}'")


def _load(path: Path) -> Layer:
    meta = tomllib.loads((path / "layer.toml").read_text())
    return Layer(str(path.relative_to(LAYERS_DIR)), path, meta.get("description", ""),
                 tuple(meta.get("depends", ())), meta)


def resolve_layers(names: str) -> tuple[Layer, ...]:
    order: list[Layer] = []

    def visit(name: str) -> None:
        layer = _load(_find(name))
        if any(l.name == layer.name for l in order):
            return
        for dep in layer.depends:
            visit(dep)
        order.append(layer)

    for name in names.split(","):
        visit(name.strip())
    return tuple(order)


def load_config(names: str = DEFAULT_LAYERS, strict: bool = False) -> MergedConfig:
    order: list[Layer] = []

    def visit(name: str) -> None:
        layer = _load(_find(name))
        if any(l.name == layer.name for l in order):
            return
        for dep in layer.depends:
            visit(dep)
        order.append(layer)

    for name in names.split(","):
        visit(name.strip())
    boards = [l for l in order if "board" in l.meta]
    if len(boards) != 1:
        raise UserError("exactly one board layer needed")
    b = boards[0].meta["board"]
    board = Board(name=boards[0].name, boot_tested=b.get("boot_tested", True),
                  **{k: b[k] for k in ("arch", "debian_arch", "compatible", "qemu_system",
                                       "qemu_machine", "qemu_cpu", "console", "kernel",
                                       "kernel_package", "kernel_image")})
    image: dict = {}
    br: dict[str, Setting] = {}
    kc: dict[str, Setting] = {}
    for layer in order:
        image.update(layer.meta.get("image", {}))
        for sub, target in (("buildroot", br), ("kernel", kc)):
            for frag in sorted((layer.path / sub).glob("*.conf")):
                for no, line in enumerate(frag.read_text().splitlines(), 1):
                    line = line.strip()
                    m = re.fullmatch(r"# (\w+) is not set", line)
                    if m:
                        target[m[1]] = Setting(m[1], "n", Origin(layer.name, frag, no))
                        continue
                    if not line or line.startswith("#"):
                        continue
                    key, sep, value = line.partition("=")
                    if not sep:
                        raise UserError("expected NAME=value", where=f"{frag}:{no}")
                    target[key] = Setting(key, value, Origin(layer.name, frag, no))
    for key in ("boot_size", "rootfs_size", "persist_size"):
        if isinstance(image.get(key), str):
            v = image[key]
            image[key] = int(v[:-1]) << {"K": 10, "M": 20, "G": 30}[v[-1]]
    return MergedConfig(tuple(order), board, ImageLayout(**image), br, kc)
