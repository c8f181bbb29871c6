"""Root invoke tasks of layers and images: layers, config, build, qemu, clean, cmd (thin: logic is in images/)."""
from __future__ import annotations

from invoke import task
from rich.console import Console

from fleetforge.errors import exit_on_user_error
from images.config_view import layers_table, print_config, print_conflict_warnings
from images.layers import DEFAULT_LAYERS, load_all_layers, load_config
from images.workspace import DEFAULT_WORKSPACE, Workspace

stdout = Console()
stderr = Console(stderr=True)


@task
@exit_on_user_error
def layers(c):
    """List the layers with their descriptions and dependencies."""
    stdout.print(layers_table(load_all_layers()))


SET_HELP = ("override a layer setting, e.g. --set image.rootfs_size=128M (repeatable; "
            "`fleetforge config --show` lists them all)")


@task(iterable=["set"], help={
    "layers": "comma-separated layer list, e.g. qemu/aarch64,core/minimal (default: the default build)",
    "show": "print every setting with its help, and every merged value with the layer, file and "
            "line that set it",
    "strict": "fail when two layers set one symbol differently",
    "set": SET_HELP,
})
@exit_on_user_error
def config(c, layers=None, show=False, strict=False, set=None):
    """Print the merged configuration of a layer list, with provenance and overrides."""
    merged = load_config(layers, strict=strict, overrides=set)
    print_conflict_warnings(merged, stderr)
    print_config(merged, stdout, show_all=show)


@task(iterable=["set"], help={
    "layers": f"comma-separated layers, applied in order (default: {','.join(DEFAULT_LAYERS)})",
    "set": SET_HELP,
    "backend": "offline (Debian binary packages, default) or buildroot",
    "workspace": "workspace name: builds go to workspaces/NAME/",
    "strict": "two layers setting one symbol differently is an error, not a warning",
    "refresh": "refresh the Debian package lists before resolving",
    "buildroot_dir": "Buildroot source tree for --backend buildroot (default: $BUILDROOT_DIR)",
    "offline": "--backend buildroot without internet: Debian's cross gcc and Debian's sources "
               "(a per-package version report is printed); Buildroot downloads nothing",
    "toolchain": "--backend buildroot toolchain: bootlin (prebuilt download, default) or debian "
                 "(Debian's cross gcc, relocated; the default with --offline)",
})
@exit_on_user_error
def build(c, layers=",".join(DEFAULT_LAYERS), backend="offline", workspace=DEFAULT_WORKSPACE, strict=False,
          refresh=False, buildroot_dir=None, set=None, offline=False, toolchain=None):
    """Build a firmware image into workspaces/NAME/images/ (disk.img, manifest.json, ...)."""
    from images.build import build as run_build
    from images.report import print_build_summary

    result = run_build(layers, workspace=Workspace.named(workspace), backend=backend,
                       strict=strict, refresh=refresh, buildroot_dir=buildroot_dir, overrides=set,
                       offline=offline, toolchain=toolchain)
    print_build_summary(result)


@task(help={
    "workspace": "workspace whose image to boot",
    "check": "boot headless, wait for healthy (console marker + SSH), print boot time, power off",
    "timeout": "seconds --check waits before failing",
})
@exit_on_user_error
def qemu(c, workspace=DEFAULT_WORKSPACE, check=False, timeout=120):
    """Boot the workspace's image in QEMU (interactive console, or --check)."""
    from images.qemu import boot_check, boot_interactive

    ws = Workspace.named(workspace)
    if check:
        result = boot_check(ws, timeout=float(timeout))
        print(f"healthy: {result.hostname} booted slot {result.slot} (boot step: {result.outcome}); "
              f"console marker after {result.marker_seconds:.1f} s, SSH answered after "
              f"{result.ssh_seconds:.1f} s")
    else:
        boot_interactive(ws)


@task(help={"workspace": "remove only this workspace (default: all)",
            "cache": "also empty the download cache (FLEETFORGE_CACHE)"})
@exit_on_user_error
def clean(c, workspace="", cache=False):
    """Remove build output (workspaces/), optionally the download cache."""
    from images.clean import clean as run_clean

    for path in run_clean(workspace or None, cache=cache):
        print(f"removed {path}")


@task(positional=["layer", "name"], help={"layer": "layer name, e.g. pi4",
                                          "name": "command name under the layer's commands/",
                                          "args": "arguments passed to the command"})
@exit_on_user_error
def cmd(c, layer, name, args=""):
    """Run a layer's command, e.g. `fleetforge cmd pi4 flash --args /dev/sdX`."""
    from images.commands import run_layer_command

    raise SystemExit(run_layer_command(layer, name, args))


ROOT_TASKS = [layers, config, build, qemu, clean, cmd]
