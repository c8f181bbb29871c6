"""The offline backend: an image's parts from Debian's prebuilt packages for the board's
architecture (nothing is compiled, unless the board asks for a kernel built from source)."""
from __future__ import annotations

import shutil
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.paths import display_path
from fleetforge.progress import console
from fleetforge.tools import run_tool
from images.assemble import AssemblyDirs, finish_rootfs
from images.debian import DebianArchive, DebPackage
from images.kernel import Kernel, fetch_kernel, unmet_kernel_options
from images.kernel_source.offline import offline_kernel
from images.layers import MergedConfig
from images.manifest import PackageRecord
from images.packages import package_plan
from images.parts import BootFile, ImageParts
from images.rootfs import RootfsInputs, assemble_rootfs, generic_settings
from images.settings import BootloaderFile
from images.workspace import Workspace


class OfflineBackend:
    """The steps that make the parts; each writes below the workspace's build directory."""

    def __init__(self, config: MergedConfig, workspace: Workspace, dirs: AssemblyDirs, *,
                 refresh: bool = False, strict: bool = False) -> None:
        self.config = config
        self.board = config.board
        self.ws = workspace
        self.dirs = dirs
        self.refresh = refresh
        self.strict = strict
        self.plan = package_plan(config)
        self.archive = DebianArchive(self.board.debian_arch, components=self.plan.components)
        self.board_layer_file = next(l.metadata_path for l in config.layers if l.is_board)
        self.modules_overlay: tuple[Path, ...] = ()  # a source-built kernel's lib/modules
        self.kernel_warnings: list[str] = []

    def packages(self) -> list[DebPackage]:
        """The root filesystem's packages with their dependencies (downloaded, verified)."""
        wanted = list(self.plan.rootfs)
        if not wanted:
            raise UserError("no BR2_PACKAGE_* symbol is enabled: nothing to put in the root filesystem "
                            "(add a system layer, e.g. --layers BOARD,core/minimal)")
        self.busybox_deb = self.archive.fetch_exact("busybox-static", refresh=self.refresh)
        # Bootloader and firmware packages are unpacked only: no dependencies, no rootfs files.
        self.bootloader_debs = {
            name: self.archive.fetch_exact(name, refresh=self.refresh)
            for name in dict.fromkeys(self._bootloader_package(e) for e in self.board.bootloader)}
        return self.archive.resolve(wanted, refresh=self.refresh)

    def _bootloader_package(self, entry: BootloaderFile) -> str:
        if not entry.package:
            raise UserError(f"[[board.bootloader]] file {entry.file} names no Debian package: the "
                            "offline backend takes it from one (package = \"NAME\", path = "
                            "\"path/in/package\")", where=display_path(self.board_layer_file))
        return entry.package

    def kernel(self) -> Kernel:
        if self.board.kernel == "source":
            # Debian's Linux source + the layers' fragments (images/kernel_source/).
            kernel = offline_kernel(self.config, self.dirs.build_dir, self.dirs.log,
                                    strict=self.strict)
            self.modules_overlay = (kernel.artifacts.modules_root,)
            return kernel
        kernel = fetch_kernel(self.archive, self.board.kernel_package, self.board.kernel_image,
                              self.archive.root / "unpacked")
        self.kernel_warnings = unmet_kernel_options(kernel, self.config.kernel)
        for warning in self.kernel_warnings:
            console.print(f"warning: {warning}", markup=False, highlight=False)
        return kernel

    def rootfs(self, packages: list[DebPackage]) -> Path:
        """The finished root filesystem tree (packed by the assembly engine)."""
        config = self.config
        inputs = RootfsInputs(packages=tuple(packages),
                              overlays=self.modules_overlay + config.root_overlays,
                              hostname=config.hostname, **generic_settings(config.buildroot))
        tree = self.dirs.build_dir / "rootfs"
        assemble_rootfs(inputs, tree, self.dirs.log)
        finish_rootfs(config, self.ws, tree, self.dirs)
        return tree

    def _unpacked(self, deb: DebPackage) -> Path:
        """`deb` unpacked once into the cache (dpkg-deb only reads it; nothing of it runs)."""
        target = self.archive.root / "unpacked" / deb.path.stem
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            run_tool(["dpkg-deb", "-x", deb.path, target], debian_package="dpkg")
            (target / ".complete").touch()
        return target

    def boot_files(self, kernel: Kernel) -> tuple[BootFile, ...]:
        """The board's device trees from the kernel package, flat on the boot partition."""
        return tuple(BootFile(kernel.device_tree(relpath), Path(relpath).name)
                     for relpath in self.board.device_trees)

    def bootloader(self) -> dict[str, Path]:
        """Each [[board.bootloader]] file, unpacked from its package."""
        found = {}
        for entry in self.board.bootloader:
            deb = self.bootloader_debs[entry.package]
            source = self._unpacked(deb) / entry.path
            if not source.is_file():
                raise UserError(f"{deb.path.name} has no {entry.path} ([[board.bootloader]] "
                                f"file {entry.file})", where=display_path(self.board_layer_file))
            found[entry.file] = source
        return found

    def parts(self, packages: list[DebPackage], kernel: Kernel, tree: Path) -> ImageParts:
        busybox = self._unpacked(self.busybox_deb) / "bin" / "busybox"
        records = [PackageRecord(p.name, p.version, p.arch, "rootfs") for p in packages]
        records.append(PackageRecord(kernel.package.name, kernel.package.version,
                                     kernel.package.arch, "kernel"))
        records.append(PackageRecord(self.busybox_deb.name, self.busybox_deb.version,
                                     self.busybox_deb.arch, "initramfs"))
        records.extend(PackageRecord(deb.name, deb.version, deb.arch, "boot")
                       for deb in self.bootloader_debs.values())
        return ImageParts(backend="offline", kernel=kernel, busybox=busybox, rootfs_tree=tree,
                          rootfs_image=None, packages=tuple(records),
                          boot_files=self.boot_files(kernel), bootloader=self.bootloader(),
                          kernel_warnings=tuple(self.kernel_warnings))
