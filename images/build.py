"""Build a workspace's image with the offline backend: packages, kernel, initramfs, rootfs, disk."""
from __future__ import annotations

import importlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.paths import keys_dir, project_dir
from fleetforge.progress import console, step_progress
from fleetforge.tools import run_tool
from images.config_view import print_conflict_warnings
from images.debian import DebianArchive, DebPackage
from images.genimage import DiskLayout, run_genimage
from images.initramfs import build_initramfs
from images.kernel import fetch_kernel, read_module_lists, unmet_kernel_options
from images.layers import MergedConfig, load_config
from images.manifest import (BoardRecord, Manifest, PackageRecord, describe_artifacts,
                             write_manifest)
from images.packages import BootFiles, package_plan
from images.rootfs import RootfsInputs, assemble_rootfs, generic_settings
from images.slot_boot import install_slot_boot
from images.verity import VerityRecord, pack_slot_image
from images.workspace import Workspace

BACKENDS = ("offline", "buildroot")
INITIAL_BOOTSTATE = "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n"


@dataclass(frozen=True)
class BuildResult:
    workspace: Workspace
    manifest: Manifest
    seconds: float


class _Stages:
    """One progress bar over the build's named stages."""

    NAMES = ("configuration", "Debian packages", "kernel", "root filesystem", "initramfs",
             "slot image", "disk image", "post-image hooks", "manifest")

    def __init__(self, progress) -> None:
        self.progress = progress
        self.task = progress.add_task("build", total=len(self.NAMES))
        self.seconds: dict[str, float] = {}

    def run(self, name: str, func: Callable[[], object]) -> object:
        self.progress.update(self.task, description=name)
        started = time.monotonic()
        result = func()
        self.seconds[name] = round(time.monotonic() - started, 2)
        self.progress.advance(self.task)
        return result


def build(layers: str | Sequence[str] | None = None, *, workspace: Workspace, backend: str = "offline",
          strict: bool = False, refresh: bool = False,
          buildroot_dir: str | None = None) -> BuildResult:
    """Build the image for `layers` into `workspace`; raise UserError on any bad input."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}' (choose one of: {', '.join(BACKENDS)})")
    if backend == "buildroot":
        return _build_with_buildroot(layers, workspace=workspace, strict=strict,
                                     buildroot_dir=buildroot_dir)
    started = time.monotonic()
    with step_progress() as progress:
        stages = _Stages(progress)
        config = stages.run("configuration", lambda: load_config(layers, strict=strict))
        print_conflict_warnings(config, console)  # two layers disagreeing: named, not fatal
        manifest = _OfflineBuild(config, workspace, layers, refresh, strict).run(stages, started)
    return BuildResult(workspace, manifest, time.monotonic() - started)


def _build_with_buildroot(layers: str, *, workspace: Workspace, strict: bool,
                          buildroot_dir: str | None) -> BuildResult:
    # The seam for the Buildroot backend (images/buildroot/): same config, same workspace layout.
    try:
        backend = importlib.import_module("images.buildroot.backend")
    except ModuleNotFoundError:
        raise UserError("the buildroot backend is not available in this checkout "
                        "(use --backend offline)") from None
    return backend.build(layers, workspace=workspace, strict=strict, buildroot_dir=buildroot_dir)


class _OfflineBuild:
    """The offline backend's stages; each writes below the workspace's build directory."""

    def __init__(self, config: MergedConfig, workspace: Workspace, layers: str, refresh: bool,
                 strict: bool = False) -> None:
        self.config = config
        self.strict = strict
        self.modules_overlay: tuple[Path, ...] = ()  # a source-built kernel's lib/modules
        self.kernel_warnings: list[str] = []
        self.ws = workspace
        self.layers_arg = layers
        self.refresh = refresh
        self.board = config.board
        self.plan = package_plan(config)
        self.archive = DebianArchive(self.board.debian_arch, components=self.plan.components)
        self.boot_debs: list[tuple[BootFiles, DebPackage]] = []
        self.build_dir = workspace.build_dir
        self.out = self.build_dir / "images"  # becomes workspace/images only when complete
        self.log = workspace.logs_dir / "build.log"

    def run(self, stages: _Stages, started: float) -> Manifest:
        self.ws.logs_dir.mkdir(parents=True, exist_ok=True)
        self.log.write_text("")
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        key = self.ws.ensure_ssh_key()

        packages: list[DebPackage] = stages.run("Debian packages", self._packages)
        kernel = stages.run("kernel", self._kernel)
        rootfs_name = f"rootfs.{self.config.image.rootfs_format}"
        cmdline = f"console={self.board.console} quiet panic=5"
        stages.run("root filesystem", lambda: self._rootfs(packages, key))
        identity = stages.run("initramfs", lambda: self._initramfs(kernel, cmdline))
        self.verity = stages.run("slot image", lambda: self._slot(kernel, cmdline, identity,
                                                                  rootfs_name))
        stages.run("disk image", lambda: self._disk(kernel, cmdline, rootfs_name))
        stages.run("post-image hooks", self._post_image)
        manifest = stages.run("manifest", lambda: self._manifest(packages, kernel, cmdline))
        timings = " ".join(f"{name.replace(' ', '_')}={secs}" for name, secs in stages.seconds.items())
        manifest = Manifest(**{**manifest.__dict__,
                               "build_seconds": round(time.monotonic() - started, 2),
                               "extra": {**manifest.extra, "stage_seconds": timings}})
        write_manifest(manifest, self.out / "manifest.json")
        # Swap the finished images in at the very end: a failed build leaves the old ones.
        shutil.rmtree(self.ws.images_dir, ignore_errors=True)
        self.out.rename(self.ws.images_dir)
        return manifest

    def _hook_env(self) -> dict[str, str]:
        return {
            "FLEETFORGE_BOARD": self.board.name,
            "FLEETFORGE_ARCH": self.board.arch,
            "FLEETFORGE_DEBIAN_ARCH": self.board.debian_arch,
            "FLEETFORGE_COMPATIBLE": self.board.compatible,
            "FLEETFORGE_LAYERS": ",".join(l.name for l in self.config.layers),
            "FLEETFORGE_HOSTNAME": self.config.hostname,
            "FLEETFORGE_WORKSPACE": str(self.ws.root),
            "FLEETFORGE_PROJECT_DIR": str(project_dir()),
            "FLEETFORGE_OTA_KEYS": str(keys_dir()),
            "FLEETFORGE_BUILD_DIR": str(self.build_dir),
            "BINARIES_DIR": str(self.out),
        }

    def _packages(self) -> list[DebPackage]:
        wanted = list(self.plan.rootfs)
        if not wanted:
            raise UserError("no BR2_PACKAGE_* symbol is enabled: nothing to put in the root filesystem "
                            "(add a system layer, e.g. --layers BOARD,core/minimal)")
        self.busybox_deb = self.archive.fetch_exact("busybox-static", refresh=self.refresh)
        # Boot-partition packages (firmware) are unpacked only: no dependencies, no rootfs files.
        self.boot_debs = [(boot, self.archive.fetch_exact(boot.package, refresh=self.refresh))
                          for boot in self.plan.boot]
        return self.archive.resolve(wanted, refresh=self.refresh)

    def _unpacked(self, deb: DebPackage) -> Path:
        """`deb` unpacked once into the cache (dpkg-deb only reads it; nothing of it runs)."""
        target = self.archive.root / "unpacked" / deb.path.stem
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            run_tool(["dpkg-deb", "-x", deb.path, target], debian_package="dpkg")
            (target / ".complete").touch()
        return target

    def _boot_files(self, kernel, boot: Path) -> None:
        """The packages' boot files and the board's device trees, flat on the boot partition."""
        for files, deb in self.boot_debs:
            unpacked = self._unpacked(deb)
            for name in files.files:
                source = unpacked / name
                if not source.is_file():
                    raise UserError(f"{deb.path.name} has no {name} (images/packages.toml: the "
                                    f"boot files of package {files.package})")
                shutil.copy2(source, boot / source.name)
        for relpath in self.board.device_trees:
            shutil.copy2(kernel.device_tree(relpath), boot / Path(relpath).name)

    def _kernel(self):
        if self.board.kernel == "source":
            # Seam to images/kernel_source/: Debian's Linux source + the layers' fragments.
            from images.kernel_source.offline import offline_kernel
            kernel = offline_kernel(self.config, self.build_dir, self.log, strict=self.strict)
            self.modules_overlay = (kernel.artifacts.modules_root,)
            return kernel
        kernel = fetch_kernel(self.archive, self.board.kernel_package, self.board.kernel_image,
                              self.archive.root / "unpacked")
        self.kernel_warnings = unmet_kernel_options(kernel, self.config.kernel)
        for warning in self.kernel_warnings:
            console.print(f"warning: {warning}", markup=False, highlight=False)
        return kernel

    def _initramfs(self, kernel, cmdline: str) -> str:
        overlays = self.config.initramfs_overlays
        modules = kernel.module_closure(read_module_lists(overlays))
        self.initramfs_modules = modules
        unpacked = self.archive.root / "unpacked" / self.busybox_deb.path.stem
        if not (unpacked / "bin" / "busybox").exists():
            unpacked.mkdir(parents=True, exist_ok=True)
            run_tool(["dpkg-deb", "-x", self.busybox_deb.path, unpacked], debian_package="dpkg")
        return build_initramfs(busybox=unpacked / "bin" / "busybox", kernel_version=kernel.version,
                               modules=modules, overlays=overlays, tree=self.build_dir / "initramfs",
                               output=self.out / "initramfs.img",
                               programs_root=self.build_dir / "rootfs", kernel_image=kernel.image,
                               slot_cmdline=cmdline)

    def _slot(self, kernel, cmdline: str, identity: str, rootfs_name: str) -> VerityRecord:
        """The slot image: the root filesystem with the slot's own boot files, then its hash tree."""
        tree = self.build_dir / "rootfs"
        install_slot_boot(tree, kernel_image=kernel.image, initramfs=self.out / "initramfs.img",
                          cmdline=cmdline, identity=identity,
                          watchdog_timeout=self.config.image.watchdog_timeout)
        image = self.config.image
        return pack_slot_image(tree, self.out / rootfs_name, rootfs_format=image.rootfs_format,
                               rootfs_size=image.rootfs_size, log_file=self.log)

    def _rootfs(self, packages: list[DebPackage], key: Path) -> None:
        release = {
            "BOARD": self.board.name,
            "COMPATIBLE": self.board.compatible,
            "ARCH": self.board.arch,
            "LAYERS": ",".join(l.name for l in self.config.layers),
            "CONFIG_DIGEST": self.config.digest(),
        }
        inputs = RootfsInputs(
            packages=tuple(packages), overlays=self.modules_overlay + self.config.root_overlays,
            post_build_hooks=self.config.post_build_hooks, hostname=self.config.hostname,
            authorized_key=key.with_suffix(".pub").read_text(), release=release,
            hook_env=self._hook_env(), **generic_settings(self.config.buildroot),
        )
        assemble_rootfs(inputs, self.build_dir / "rootfs", self.log)

    def _disk(self, kernel, cmdline: str, rootfs_name: str) -> None:
        boot = self.build_dir / "boot"
        shutil.rmtree(boot, ignore_errors=True)
        boot.mkdir(parents=True)
        shutil.copy2(kernel.image, self.out / "vmlinuz")
        shutil.copy2(kernel.image, boot / "vmlinuz")
        shutil.copy2(self.out / "initramfs.img", boot / "initramfs.img")
        (boot / "bootstate").write_text(INITIAL_BOOTSTATE)
        for slot in "AB":  # both slots hold the same image in a fresh disk
            (boot / f"slot-{slot}.verity").write_text(self.verity.render() + "\n")
        (boot / "cmdline.txt").write_text(cmdline + "\n")
        self._boot_files(kernel, boot)
        for layer in self.config.layers:  # board boot files (e.g. the Pi's config.txt)
            resources = layer.resources
            if resources is not None and (resources / "boot").is_dir():
                shutil.copytree(resources / "boot", boot, dirs_exist_ok=True)
        image = self.config.image
        layout = DiskLayout(image.partition_table, image.boot_fstype, image.boot_size,
                            image.rootfs_size, image.persist_size, rootfs_name)
        run_genimage(layout, boot_dir=boot, input_dir=self.out, output_dir=self.out,
                     work_dir=self.build_dir / "genimage", log_file=self.log)

    def _post_image(self) -> None:
        import os
        env = {**os.environ, **self._hook_env()}
        for hook in self.config.post_image_hooks:
            run_tool(["sh", hook, self.out], debian_package="dash", env=env, log_file=self.log)

    def _manifest(self, packages: list[DebPackage], kernel, cmdline: str) -> Manifest:
        b = self.board
        records = [PackageRecord(p.name, p.version, p.arch, "rootfs") for p in packages]
        records.append(PackageRecord(kernel.package.name, kernel.package.version,
                                     kernel.package.arch, "kernel"))
        records.append(PackageRecord(self.busybox_deb.name, self.busybox_deb.version,
                                     self.busybox_deb.arch, "initramfs"))
        boot_debs = {deb.name: deb for _, deb in self.boot_debs}  # one record per package
        records.extend(PackageRecord(deb.name, deb.version, deb.arch, "boot")
                       for deb in boot_debs.values())
        names = sorted(p.name for p in self.out.iterdir() if p.is_file())
        return Manifest(
            workspace=self.ws.name,
            layers=[l.name for l in self.config.layers],
            backend="offline",
            board=BoardRecord.of(b),
            kernel_version=kernel.version,
            kernel_cmdline=cmdline,
            config_digest=self.config.digest(),
            packages=records,
            artifacts=describe_artifacts(self.out, names),
            extra={"initramfs_modules": " ".join(m.name for m in self.initramfs_modules),
                   "verity": self.verity.render(),
                   "kernel_config_unmet": "; ".join(self.kernel_warnings)},
        )
