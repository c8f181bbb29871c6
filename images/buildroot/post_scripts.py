"""Buildroot's post-build and post-image steps: hand its target tree and output to the assembly engine.

Run by the generated board/fleetforge/post-build.sh ($1 = TARGET_DIR) and post-image.sh
($1 = BINARIES_DIR); Buildroot exports BASE_DIR, TARGET_DIR and BINARIES_DIR to both. The root
filesystem is finished and the disk image assembled by images/assemble.py, as in the offline
backend, so both end with the same files in workspaces/NAME/images/.
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from fleetforge.errors import exit_on_user_error
from images.assemble import AssemblyDirs, assemble_image, finish_rootfs, install_boot_chain
from images.buildroot.parts import buildroot_parts
from images.layers import MergedConfig, load_config
from images.workspace import Workspace

IMAGES_SUBDIR = "fleetforge"  # BINARIES_DIR/fleetforge: the finished images


def assembly_dirs(workspace: Workspace, base_dir: Path, binaries: Path, step: str) -> AssemblyDirs:
    log = workspace.logs_dir / f"buildroot-{step}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return AssemblyDirs(out=binaries / IMAGES_SUBDIR, work=base_dir / "fleetforge",
                        build_dir=base_dir, log=log)


def post_build(config: MergedConfig, workspace: Workspace, target: Path, base_dir: Path,
               binaries: Path) -> None:
    """FleetForge's files, then the slot's own kernel and initramfs, into the target tree before
    Buildroot packs it (the kernel is built by then)."""
    dirs = assembly_dirs(workspace, base_dir, binaries, "post-build")
    finish_rootfs(config, workspace, target, dirs)
    install_boot_chain(config, buildroot_parts(config, binaries, target, base_dir, packed=False),
                       dirs)


def post_image(config: MergedConfig, workspace: Workspace, binaries: Path, target: Path,
               base_dir: Path) -> Path:
    """Disk image, artifacts and manifest into BINARIES_DIR/fleetforge; return that folder."""
    dirs = assembly_dirs(workspace, base_dir, binaries, "post-image")
    shutil.rmtree(dirs.out, ignore_errors=True)
    assemble_image(config, buildroot_parts(config, binaries, target, base_dir), workspace, dirs)
    return dirs.out


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("post-build", "post-image"))
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--layers", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("directory", type=Path, help="TARGET_DIR (post-build) or BINARIES_DIR")
    args = parser.parse_args(argv)
    config = load_config(args.layers, overrides=args.set)
    workspace = Workspace(args.workspace.name, args.workspace)
    if args.step == "post-build":
        target = args.directory
        base_dir = Path(os.environ.get("BASE_DIR", target.parent))
        binaries = Path(os.environ.get("BINARIES_DIR", base_dir / "images"))
        post_build(config, workspace, target, base_dir, binaries)
    else:
        binaries = args.directory
        base_dir = Path(os.environ.get("BASE_DIR", binaries.parent))
        target = Path(os.environ.get("TARGET_DIR", base_dir / "target"))
        post_image(config, workspace, binaries, target, base_dir)


if __name__ == "__main__":
    main()
