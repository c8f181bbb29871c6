"""The one image-assembly engine: a backend's parts -> initramfs, root slot image, boot partition,
boot state, A/B disk image and manifest; also what FleetForge adds to every root filesystem.

Both backends end here (the offline build directly, Buildroot through its post-build and
post-image scripts), so the boot partition, the hook environment, the release file and the
manifest have one definition. Each step is its own function: the slot's content (root filesystem,
its own kernel and initramfs, its dm-verity hash tree) and the boot partition's content (the
chooser, the boot state, each slot's verity record) are built apart (docs/ab-boot.md).
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import toolchains
from apps.image import APP_SIZES_NAME, install_apps
from fleetforge.errors import UserError
from fleetforge.paths import display_path, keys_dir, project_dir
from fleetforge.tools import run_tool
from images.genimage import DiskLayout, RawImage, run_genimage
from images.initramfs import build_initramfs
from images.kernel import Module, read_module_lists
from images.layers import MergedConfig
from images.manifest import Manifest, describe_artifacts, write_manifest
from images.parts import ImageParts
from images.slot_boot import install_slot_boot
from images.verity import VerityRecord, append_hash_tree, data_capacity
from images.workspace import Workspace

# docs/ab-boot.md: a fresh image boots slot A first, three tries per slot.
INITIAL_BOOTSTATE = "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n"
MANIFEST_NAME = "manifest.json"

T = TypeVar("T")
Stage = Callable[[str, Callable[[], T]], T]  # runs one named step (the offline build times them)


SHARED_MOUNT_POINTS = ("boot", "persist")  # the boot and persist partitions, in every slot

def _run(name: str, step: Callable[[], T]) -> T:
    return step()


@dataclass(frozen=True)
class AssemblyDirs:
    """Where one assembly reads and writes."""

    out: Path  # the finished images (BINARIES_DIR for hooks)
    work: Path  # scratch trees: initramfs/, boot/, genimage/
    build_dir: Path  # the backend's build directory (FLEETFORGE_BUILD_DIR for hooks)
    log: Path


# --------------------------------------------------------------------------------------------
# What every root filesystem gets, whichever backend assembled it


def kernel_cmdline(config: MergedConfig) -> str:
    return f"console={config.board.console} quiet panic=5"


def release_fields(config: MergedConfig) -> dict[str, str]:
    """/etc/fleetforge/release: what the device is (OTA checks COMPATIBLE against bundles)."""
    board = config.board
    return {"BOARD": board.name, "COMPATIBLE": board.compatible, "ARCH": board.arch,
            "LAYERS": ",".join(config.layer_names), "CONFIG_DIGEST": config.digest()}


def hook_environment(config: MergedConfig, workspace: Workspace, dirs: AssemblyDirs) -> dict[str, str]:
    """The FLEETFORGE_* variables every layer hook gets (post-build and post-image)."""
    board = config.board
    return {
        "FLEETFORGE_BOARD": board.name,
        "FLEETFORGE_ARCH": board.arch,
        "FLEETFORGE_TARGET": board.target,  # the board's compile target (toolchains/targets.toml)
        "FLEETFORGE_DEBIAN_ARCH": board.debian_arch,
        "FLEETFORGE_COMPATIBLE": board.compatible,
        "FLEETFORGE_LAYERS": ",".join(config.layer_names),
        "FLEETFORGE_HOSTNAME": config.hostname,
        "FLEETFORGE_WORKSPACE": str(workspace.root),
        "FLEETFORGE_PROJECT_DIR": str(project_dir()),
        "FLEETFORGE_OTA_KEYS": str(keys_dir()),
        # The interpreter running FleetForge, for hooks that call its packages (feature/models).
        "FLEETFORGE_PYTHON": sys.executable,
        "FLEETFORGE_BUILD_DIR": str(dirs.build_dir),
        "BINARIES_DIR": str(dirs.out),
    }


def _symbol_text(config: MergedConfig, symbol: str) -> str:
    setting = config.buildroot.get(symbol)
    return setting.text if setting is not None and setting.value != "n" else ""


def image_version(config: MergedConfig) -> str:
    """The image's release version: [image] version, else the build time (it grows with every
    build, as OTA's downgrade check expects; SOURCE_DATE_EPOCH when set, for reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    when = int(epoch) if epoch.isdigit() else None
    return config.image.version or time.strftime("%Y.%m%d.%H%M%S", time.gmtime(when))


# What every image records about itself (the OTA agent reads both; the manifest repeats them).
VERSION_FILE = "etc/fleetforge/version"
SECURITY_VERSION_FILE = "etc/fleetforge/security-version"
# core/minimal's S50dropbear keeps the SSH host key here; the build seeds it (docs/ab-boot.md).
PERSIST_HOST_KEY = "dropbear/dropbear_ed25519_host_key"


def finish_rootfs(config: MergedConfig, workspace: Workspace, tree: Path, dirs: AssemblyDirs) -> None:
    """Add FleetForge's files to an assembled root tree, then run the layers' post-build hooks.

    root's authorized_keys (the workspace key), /etc/fleetforge/release, /etc/fleetforge/version
    and security-version, and /etc/fleetforge/network (S40network's DHCP interface, from
    BR2_SYSTEM_DHCP).
    """
    # The shared partitions' mount points (S01mount mounts them; the root is read-only, so they
    # must exist in the image: Buildroot's skeleton has neither).
    for mount_point in SHARED_MOUNT_POINTS:
        (tree / mount_point).mkdir(mode=0o755, exist_ok=True)
    key = workspace.ensure_ssh_key()
    ssh = tree / "root" / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    ssh.chmod(0o700)
    authorized = ssh / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text().strip() + "\n")
    authorized.chmod(0o600)
    etc = tree / "etc" / "fleetforge"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "release").write_text("# Generated by images/assemble.py, DO NOT EDIT.\n" + "".join(
        f"{key}={value}\n" for key, value in release_fields(config).items()))
    (tree / VERSION_FILE).write_text(image_version(config) + "\n")
    (tree / SECURITY_VERSION_FILE).write_text(f"{config.image.security_version}\n")
    (etc / "network").write_text(
        "# Generated by images/assemble.py from BR2_SYSTEM_DHCP, DO NOT EDIT.\n"
        f"DHCP_INTERFACE={_symbol_text(config, 'BR2_SYSTEM_DHCP')}\n")
    # App layers (a layer holding app.toml): compiled for the board with SCons and installed with
    # their service and health check (apps/image.py); their sizes go to app-sizes.json.
    install_apps([layer.path for layer in config.layers], toolchains.target(config.board.target),
                 tree, dirs.build_dir, report=dirs.out / APP_SIZES_NAME)
    env = {**os.environ, **hook_environment(config, workspace, dirs), "TARGET_DIR": str(tree)}
    for hook in config.post_build_hooks:
        run_tool(["sh", hook, tree], debian_package="dash", env=env, log_file=dirs.log)


# --------------------------------------------------------------------------------------------
# The image, step by step


def write_initramfs(config: MergedConfig, parts: ImageParts, dirs: AssemblyDirs) -> tuple[list[Module], str]:
    """initramfs.img: busybox, the boot modules the layers list (with dependencies), the programs
    they list (from the root filesystem), their /init; returns the modules and the boot-id of the
    initramfs with the kernel and its command line (images/slot_boot.py)."""
    layer_overlays = config.initramfs_overlays
    modules = parts.kernel.module_closure(read_module_lists(layer_overlays))
    identity = build_initramfs(busybox=parts.busybox, kernel_version=parts.kernel.version,
                               modules=modules, overlays=(*parts.initramfs_overlays, *layer_overlays),
                               tree=dirs.work / "initramfs", output=dirs.out / "initramfs.img",
                               programs_root=parts.rootfs_tree, kernel_image=parts.kernel.image,
                               slot_cmdline=kernel_cmdline(config))
    return modules, identity


def install_boot_chain(config: MergedConfig, parts: ImageParts, dirs: AssemblyDirs) -> list[Module]:
    """The slot's own boot files in the root filesystem tree (kernel, initramfs, command line,
    boot-id, watchdog timeout), so an update can change the kernel and roll it back
    (docs/ab-boot.md). Runs before the tree is packed: the engine packs it next, or a backend that
    packs it itself calls this from its post-build step. Returns the initramfs's modules."""
    modules, identity = write_initramfs(config, parts, dirs)
    install_slot_boot(parts.rootfs_tree, kernel_image=parts.kernel.image,
                      initramfs=dirs.out / "initramfs.img", cmdline=kernel_cmdline(config),
                      identity=identity, watchdog_timeout=config.image.watchdog_timeout)
    return modules


def slot_image_name(config: MergedConfig) -> str:
    return f"rootfs.{config.image.rootfs_format}"


def write_slot_image(config: MergedConfig, parts: ImageParts, dirs: AssemblyDirs) -> VerityRecord:
    """What each root slot (A and B) holds: the packed root filesystem and its dm-verity hash tree."""
    image = config.image
    output = dirs.out / slot_image_name(config)
    if parts.rootfs_image is None:
        return pack_slot_image(parts.rootfs_tree, output, rootfs_format=image.rootfs_format,
                               rootfs_size=image.rootfs_size, log_file=dirs.log)
    shutil.copy2(parts.rootfs_image, output)
    return _append_checked_hash_tree(output, image.rootfs_size, dirs.log)


def pack_slot_image(tree: Path, output: Path, *, rootfs_format: str, rootfs_size: int,
                    log_file: Path) -> VerityRecord:
    """A root filesystem tree packed as a slot image (file system, then its dm-verity hash tree);
    returns the slot's verity record. An ext4 file system is made small enough for its tree."""
    pack_rootfs(tree, output, rootfs_format, data_capacity(rootfs_size), log_file)
    return _append_checked_hash_tree(output, rootfs_size, log_file)


def _append_checked_hash_tree(output: Path, rootfs_size: int, log_file: Path) -> VerityRecord:
    record = append_hash_tree(output, log_file)
    size = output.stat().st_size
    if size > rootfs_size:
        raise UserError(f"the slot image (root filesystem and its dm-verity hash tree) is "
                        f"{size >> 20} MiB, larger than the rootfs partition "
                        f"({rootfs_size >> 20} MiB): raise [image] rootfs_size")
    return record


def pack_rootfs(tree: Path, output: Path, fmt: str, size: int, log_file: Path) -> None:
    """Pack the tree as squashfs (read-only, compressed) or ext4 of `size` bytes, owned by root,
    reproducibly."""
    output.unlink(missing_ok=True)
    if fmt == "squashfs":
        # mksquashfs refuses SOURCE_DATE_EPOCH next to its own time options (these fix every time).
        env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        run_tool(["mksquashfs", tree, output, "-noappend", "-all-root", "-comp", "xz",
                  "-no-progress", "-mkfs-time", "0", "-all-time", "0", "-processors", "2"],
                 debian_package="squashfs-tools", log_file=log_file, env=env)
    elif fmt == "ext4":
        run_tool(["mkfs.ext4", "-q", "-F", "-d", tree, "-L", "rootfs", "-E", "root_owner=0:0",
                  output, f"{size // 1024}k"], debian_package="e2fsprogs", log_file=log_file)
    else:
        raise UserError(f"unsupported rootfs_format '{fmt}' (squashfs or ext4)")


def bootloader_source(parts: ImageParts, file: str) -> Path:
    source = parts.bootloader.get(file)
    if source is None or not source.is_file():
        raise UserError(f"the {parts.backend} backend has no bootloader file {file} "
                        f"(layer.toml [[board.bootloader]] file = \"{file}\")")
    return source


TEMPLATE_SUFFIX = ".in"  # a board's boot file with @VARIABLES@, e.g. cmdline.txt.in
_VARIABLE = re.compile(r"@([A-Z_]+)@")


def template_variables(config: MergedConfig) -> dict[str, str]:
    """What a board's boot file templates may use (e.g. extlinux.conf's `append @KERNEL_CMDLINE@`)."""
    trees = config.board.device_trees
    return {"KERNEL_CMDLINE": kernel_cmdline(config),
            "DEVICE_TREE": Path(trees[0]).name if trees else ""}


def render_template(source: Path, variables: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1) not in variables:
            line = source.read_text()[:match.start()].count("\n") + 1
            raise UserError(f"unknown template variable @{match.group(1)}@ "
                            f"(known: {', '.join('@' + v + '@' for v in variables)})",
                            where=f"{display_path(source)}:{line}")
        return variables[match.group(1)]

    return _VARIABLE.sub(value, source.read_text())


def boot_partition_content(config: MergedConfig, parts: ImageParts, initramfs: Path,
                           verity: VerityRecord) -> dict[str, Path | str]:
    """Every file of the boot partition: its name there -> a source file or its text.

    The kernel and initramfs here are the chooser (docs/ab-boot.md); both slots hold the same
    image in a fresh disk, so both verity records are the slot image's.
    Later entries win: the backend's boot files (device trees), the board's bootloader files
    for the boot partition (e.g. the Pi's firmware), then the layers' resources/boot/ (a board's
    own files, e.g. the Pi's config.txt; `NAME.in` is rendered to NAME), in layer order.
    """
    content: dict[str, Path | str] = {
        "vmlinuz": parts.kernel.image,
        "initramfs.img": initramfs,
        "bootstate": INITIAL_BOOTSTATE,
        "slot-A.verity": verity.render() + "\n",
        "slot-B.verity": verity.render() + "\n",
    }
    for boot_file in parts.boot_files:
        content[boot_file.name] = boot_file.source
    for entry in config.board.bootloader:
        if entry.partition == "boot":
            content[entry.file] = bootloader_source(parts, entry.file)
    variables = template_variables(config)
    for layer in config.layers:
        folder = layer.resources / "boot" if layer.resources is not None else None
        if folder is not None and folder.is_dir():
            for source in sorted(p for p in folder.rglob("*") if p.is_file()):
                name = source.relative_to(folder).as_posix()
                if name.endswith(TEMPLATE_SUFFIX):
                    content[name.removesuffix(TEMPLATE_SUFFIX)] = render_template(source, variables)
                else:
                    content[name] = source
    return content


def write_boot_tree(content: Mapping[str, Path | str], boot: Path) -> Path:
    """The boot partition's files in a folder (genimage makes the file system from it)."""
    shutil.rmtree(boot, ignore_errors=True)
    boot.mkdir(parents=True)
    for name, source in content.items():
        target = boot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            shutil.copy2(source, target)
        else:
            target.write_text(source)
    return boot


def disk_layout(config: MergedConfig) -> DiskLayout:
    image = config.image
    raw = tuple(RawImage(entry.file, entry.offset, entry.partition)
                for entry in config.board.bootloader if entry.partition != "boot")
    return DiskLayout(image.partition_table, image.boot_fstype, image.boot_size,
                      image.rootfs_size, image.persist_size, slot_image_name(config),
                      bootloaders=raw, boot_offset=image.boot_offset)


def persist_partition_content(workspace: Workspace, persist: Path) -> Path:
    """What the persist partition starts with: the device's SSH host key, created by the build
    (workspace/ssh/), so the first boot already has it and a boot check can pin it instead of
    trusting whatever answers. Every disk flashed from this image shares it until replaced."""
    shutil.rmtree(persist, ignore_errors=True)
    key = persist / PERSIST_HOST_KEY
    key.parent.mkdir(parents=True)
    shutil.copy2(workspace.ensure_device_host_key(), key)
    key.chmod(0o600)
    return persist


def write_disk(config: MergedConfig, parts: ImageParts, boot: Path, dirs: AssemblyDirs,
               workspace: Workspace) -> Path:
    """disk.img: the board's bootloader images, then boot, rootfs_a, rootfs_b (both the slot
    image) and persist (docs/ab-boot.md)."""
    layout = disk_layout(config)
    for raw in layout.bootloaders:  # beside the other images: genimage reads them from there
        (dirs.out / raw.image).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(bootloader_source(parts, raw.image), dirs.out / raw.image)
    persist = persist_partition_content(workspace, dirs.work / "persist")
    return run_genimage(layout, boot_dir=boot, input_dir=dirs.out, output_dir=dirs.out,
                        work_dir=dirs.work / "genimage", log_file=dirs.log, persist_dir=persist)


def run_post_image_hooks(config: MergedConfig, workspace: Workspace, dirs: AssemblyDirs) -> None:
    env = {**os.environ, **hook_environment(config, workspace, dirs)}
    for hook in config.post_image_hooks:
        run_tool(["sh", hook, dirs.out], debian_package="dash", env=env, log_file=dirs.log)


def _first_word(path: Path) -> str:
    return path.read_text().split()[0] if path.is_file() and path.read_text().split() else ""


def image_manifest(config: MergedConfig, parts: ImageParts, workspace: Workspace,
                   dirs: AssemblyDirs, modules: list[Module], verity: VerityRecord) -> Manifest:
    """The manifest of the finished images (written by assemble_image)."""
    names = sorted(p.name for p in dirs.out.iterdir() if p.is_file() and p.name != MANIFEST_NAME)
    return Manifest(
        workspace=workspace.name,
        layers=list(config.layer_names),
        backend=parts.backend,
        board=config.board,
        kernel_version=parts.kernel.version,
        kernel_cmdline=kernel_cmdline(config),
        config_digest=config.digest(),
        packages=list(parts.packages),
        artifacts=describe_artifacts(dirs.out, names),
        image_version=_first_word(parts.rootfs_tree / VERSION_FILE),
        security_version=int(_first_word(parts.rootfs_tree / SECURITY_VERSION_FILE) or 0),
        extra={"initramfs_modules": " ".join(m.name for m in modules),
               "kernel_config_unmet": "; ".join(parts.kernel_warnings),
               "verity": verity.render()},  # the slot image's; `fleetforge bundle` signs it
    )


def assemble_image(config: MergedConfig, parts: ImageParts, workspace: Workspace,
                   dirs: AssemblyDirs, *, stage: Stage = _run) -> Manifest:
    """Every image file from `parts` into dirs.out, ending with its manifest.json."""
    dirs.out.mkdir(parents=True, exist_ok=True)
    if parts.rootfs_image is None:  # packed here: its boot files go into the tree first
        modules = stage("initramfs", lambda: install_boot_chain(config, parts, dirs))
    else:  # packed by the backend, after its post-build step ran install_boot_chain
        modules = stage("initramfs", lambda: write_initramfs(config, parts, dirs)[0])
    verity = stage("root slot image", lambda: write_slot_image(config, parts, dirs))

    def boot_partition() -> Path:
        shutil.copy2(parts.kernel.image, dirs.out / "vmlinuz")  # QEMU boots it directly
        content = boot_partition_content(config, parts, dirs.out / "initramfs.img", verity)
        return write_boot_tree(content, dirs.work / "boot")

    boot = stage("boot partition", boot_partition)
    stage("disk image", lambda: write_disk(config, parts, boot, dirs, workspace))
    stage("post-image hooks", lambda: run_post_image_hooks(config, workspace, dirs))
    manifest = stage("manifest", lambda: image_manifest(config, parts, workspace, dirs, modules,
                                                         verity))
    write_manifest(manifest, dirs.out / MANIFEST_NAME)
    return manifest


def with_timings(manifest: Manifest, seconds: float, stage_seconds: Mapping[str, float]) -> Manifest:
    """The manifest with the build's duration and each stage's (what the backend measured)."""
    timings = " ".join(f"{name.replace(' ', '_')}={secs}" for name, secs in stage_seconds.items())
    return replace(manifest, build_seconds=round(seconds, 2),
                   extra={**manifest.extra, "stage_seconds": timings})
