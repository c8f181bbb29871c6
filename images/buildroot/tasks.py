"""Invoke tasks of the Buildroot backend: `fleetforge buildroot.configure|menuconfig|savedefconfig|fetch`."""
from __future__ import annotations

import tempfile
from pathlib import Path

from invoke import Collection, task
from rich.console import Console

from fleetforge.errors import UserError, exit_on_user_error
from fleetforge.paths import CACHE_DIR, workspaces_dir
from images.buildroot.configure import (
    buildroot_build,
    changed_symbols,
    configure as configure_build,
    save_fragment,
)
from images.buildroot.make import run_make
from images.buildroot.toolchain import DEFAULT_TOOLCHAIN, choose_toolchain
from images.buildroot.tree import PINNED_RELEASE, fetch_release, locate_tree
from images.kconfig_check import format_report
from images.layers import discover_layers, find_layer, load_config

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

SAVED_FRAGMENT = "zz-savedefconfig.conf"  # sorts last, so the saved changes win within the layer

_COMMON_HELP = {
    "layers": "comma-separated layer list, e.g. qemu/aarch64,core/minimal (default: the default build)",
    "workspace": "workspace name under workspaces/ (default: default)",
    "buildroot_dir": "Buildroot source tree (default: $BUILDROOT_DIR)",
}
_TOOLCHAIN_HELP = {
    "toolchain": "bootlin (prebuilt download, default) or debian (Debian's cross gcc, relocated)",
}


def _workspace(name: str) -> Path:
    return workspaces_dir() / name


def _configure(layers, workspace, buildroot_dir, strict, toolchain):
    config = load_config(layers)
    tree = locate_tree(buildroot_dir)
    result = configure_build(config, tree, _workspace(workspace), strict=strict,
                             toolchain=choose_toolchain(config.board.target,
                                                        toolchain or DEFAULT_TOOLCHAIN))
    stderr.print(f"Buildroot {tree.version} at {tree.path}; toolchain: "
                 f"{result.defconfig.toolchain.note}", markup=False, highlight=False)
    stdout.print(format_report(result.problems, "Buildroot configuration"), markup=False,
                 highlight=False)
    stdout.print(f"configured {result.build.output} (BR2_EXTERNAL {result.build.external})",
                 markup=False, highlight=False)
    return result


@task(help={**_COMMON_HELP, **_TOOLCHAIN_HELP,
            "strict": "fail when Buildroot dropped or changed a symbol the layers asked for"})
@exit_on_user_error
def configure(c, layers=None, workspace="default", buildroot_dir=None, strict=False,
              toolchain=None):
    """Write the BR2_EXTERNAL tree and defconfig, run `make defconfig`, report dropped symbols."""
    _configure(layers, workspace, buildroot_dir, strict, toolchain)


@task(help={**_COMMON_HELP, **_TOOLCHAIN_HELP})
@exit_on_user_error
def menuconfig(c, layers=None, workspace="default", buildroot_dir=None, toolchain=None):
    """Configure from the layers, then open Buildroot's menuconfig on the workspace's build."""
    result = _configure(layers, workspace, buildroot_dir, False, toolchain)
    run_make(result.build, ["menuconfig"], interactive=True)
    stdout.print("keep your changes in a layer with `fleetforge buildroot.savedefconfig --layer NAME`",
                 markup=False, highlight=False)


@task(help={**_COMMON_HELP,
            "layer": "layer to record the changes in (e.g. core/minimal)",
            "fragment": f"fragment file name under the layer's buildroot/ (default {SAVED_FRAGMENT})"})
@exit_on_user_error
def savedefconfig(c, layer, layers=None, workspace="default", buildroot_dir=None,
                  fragment=SAVED_FRAGMENT):
    """Write the changes made since `configure` (e.g. in menuconfig) as a fragment of a layer."""
    available = discover_layers()
    layer_name = find_layer(layer, available)
    if not fragment.endswith(".conf") or "/" in fragment:
        raise UserError(f"fragment must be a file name ending in .conf, got '{fragment}'")
    config = load_config(layers)
    build = buildroot_build(locate_tree(buildroot_dir), _workspace(workspace))
    if not build.layers_dotconfig.is_file() or not build.dotconfig.is_file():
        raise UserError("no configured Buildroot build in this workspace "
                        "(run `fleetforge buildroot.configure` first)", where=str(build.output))
    with tempfile.TemporaryDirectory() as scratch:
        saved = Path(scratch) / "defconfig"
        run_make(build, ["savedefconfig"], variables={"BR2_DEFCONFIG": str(saved)})
        requested = set(config.buildroot)
        lines = changed_symbols(build.layers_dotconfig, build.dotconfig, saved, requested)
    target = available[layer_name] / "buildroot" / fragment
    if not lines:
        stdout.print("no changes since `fleetforge buildroot.configure`", highlight=False)
        return
    save_fragment(lines, target)
    stdout.print(f"wrote {len(lines)} symbol(s) to {target}:", markup=False, highlight=False)
    for line in lines:
        stdout.print(f"  {line}", markup=False, highlight=False)


@task(help={"dest": f"where to clone (default: {CACHE_DIR}/buildroot-{PINNED_RELEASE})"})
@exit_on_user_error
def fetch(c, dest=None):
    """Clone the pinned Buildroot release (needs internet) and print the BUILDROOT_DIR to use."""
    target = Path(dest) if dest else CACHE_DIR / f"buildroot-{PINNED_RELEASE}"
    tree = fetch_release(target.expanduser().resolve())
    stdout.print(f"Buildroot {tree.version} in {tree.path}\nexport BUILDROOT_DIR={tree.path}",
                 markup=False, highlight=False)


namespace = Collection("buildroot")
for _task in (configure, menuconfig, savedefconfig, fetch):
    namespace.add_task(_task)
