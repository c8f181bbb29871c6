"""The board's kernel from Debian's kernel package, plus the modules the boot needs (with deps)."""
from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from fleetforge.errors import UserError
from fleetforge.tools import run_tool
from images.debian import DebianArchive, DebPackage
from images.layers import Setting


@dataclass(frozen=True)
class Module:
    name: str
    path: Path  # inside the unpacked kernel package
    relpath: str  # below lib/modules/<version>/


@dataclass(frozen=True)
class Kernel:
    package: DebPackage
    version: str  # uname -r, e.g. 6.1.0-56-cloud-arm64
    image: Path
    modules_root: Path  # lib/modules/<version> in the unpacked package

    def device_tree(self, relpath: str) -> Path:
        """A device tree blob Debian's kernel package ships (usr/lib/linux-image-<version>/)."""
        dtb = self.image.parent.parent / "usr" / "lib" / f"linux-image-{self.version}" / relpath
        if not dtb.is_file():
            raise UserError(f"{self.package.name} has no device tree '{relpath}' "
                            f"(check the board's device_trees; looked in {dtb.parent})")
        return dtb

    def module_closure(self, names: list[str]) -> list[Module]:
        """`names` and everything they depend on, in load order (dependencies first)."""
        index = self._index()
        builtin = self.builtin_modules()
        ordered: list[Module] = []
        seen: set[str] = set()

        def visit(name: str, chain: tuple[str, ...]) -> None:
            key = name.replace("-", "_")
            if key in seen or key in builtin:
                return  # built into this kernel: nothing to load
            if key not in index:
                wanted_by = f" (needed by {chain[-1]})" if chain else ""
                raise UserError(f"kernel {self.version} has no module '{name}'{wanted_by}; "
                                "check the layers' etc/modules-load.d/*.conf")
            seen.add(key)
            path = index[key]
            for dep in _modinfo(path).get("depends", "").split(","):
                if dep:
                    visit(dep, chain + (key,))
            ordered.append(Module(key, path, str(path.relative_to(self.modules_root))))

        for name in names:
            visit(name, ())
        return ordered

    def builtin_modules(self) -> set[str]:
        """Modules built into this kernel (modules.builtin): a boot list may name them."""
        listing = self.modules_root / "modules.builtin"
        if not listing.exists():
            return set()
        return {Path(line).name.split(".ko")[0].replace("-", "_")
                for line in listing.read_text().split()}

    def _index(self) -> dict[str, Path]:
        return {p.name.split(".ko")[0].replace("-", "_"): p
                for p in self.modules_root.rglob("*.ko*")}


def _modinfo(path: Path) -> dict[str, str]:
    """The module's .modinfo section (key=value strings), read without running anything."""
    if path.suffix != ".ko":
        raise UserError(f"compressed kernel module {path.name} is not supported yet")
    with open(path, "rb") as handle:
        section = ELFFile(handle).get_section_by_name(".modinfo")
        data = section.data() if section is not None else b""
    info: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep:
            info.setdefault(key, value)
    return info


def fetch_kernel(archive: DebianArchive, kernel_package: str, kernel_image: str,
                 unpack_root: Path) -> Kernel:
    """Resolve the kernel metapackage to its versioned image package, fetch and unpack it once."""
    deps = [d for d in archive.depends_of(kernel_package) if d.startswith("linux-image-")]
    image_package = deps[0] if deps else kernel_package
    deb = archive.fetch_exact(image_package)
    target = unpack_root / deb.path.stem
    if not (target / ".complete").exists():
        # Unpacked once per kernel version and reused by later builds (dpkg-deb only reads the
        # archive; nothing from the foreign package is executed).
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        run_tool(["dpkg-deb", "-x", deb.path, target], debian_package="dpkg")
        (target / ".complete").touch()
    images = sorted((target / "boot").glob(f"{kernel_image}-*"))
    if not images:
        raise UserError(f"{deb.path.name} has no /boot/{kernel_image}-* (check the board's kernel_image)")
    version = images[0].name[len(kernel_image) + 1:]
    return Kernel(deb, version, images[0], target / "lib" / "modules" / version)


def read_module_lists(overlays: tuple[Path, ...]) -> list[str]:
    """Module names from every overlay's etc/modules-load.d/*.conf, in overlay then file order."""
    names: list[str] = []
    merged: dict[str, Path] = {}
    for overlay in overlays:
        for conf in sorted((overlay / "etc" / "modules-load.d").glob("*.conf")):
            merged[conf.name] = conf  # a later layer's file of the same name replaces it
    for conf in (merged[k] for k in sorted(merged)):
        for line in conf.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and line not in names:
                names.append(line)
    return names


def unmet_kernel_options(kernel: Kernel, wanted: Mapping[str, Setting]) -> list[str]:
    """Kernel fragment options (merged `config.kernel`) that Debian's prebuilt kernel lacks.

    The offline backend cannot rebuild Debian's kernel, so a layer asking for an option the
    package does not have (neither built in nor a module) is reported rather than ignored;
    `y` wanted and `m` shipped is fine (the initramfs loads the modules it needs).
    """
    config_file = kernel.image.parent / f"config-{kernel.version}"
    if not config_file.is_file():
        return []
    shipped: dict[str, str] = {}
    for line in config_file.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith("CONFIG_"):
            shipped[name] = value
    unmet = []
    for name, setting in wanted.items():
        if setting.value in ("y", "m") and shipped.get(name) not in ("y", "m"):
            unmet.append(f"{name}={setting.value} ({setting.origin}) is not enabled in "
                         f"{kernel.package.name}")
    return unmet
