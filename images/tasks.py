"""Invoke tasks for layers and images: `invoke layers`, `invoke config`."""
from __future__ import annotations

from invoke import task
from rich.console import Console

from fleetforge.errors import exit_on_user_error
from images.config_view import layers_table, print_config, print_conflict_warnings
from images.layers import load_all_layers, load_config

stdout = Console()
stderr = Console(stderr=True)


@task
@exit_on_user_error
def layers(c):
    """List the layers with their descriptions and dependencies."""
    stdout.print(layers_table(load_all_layers()))


@task(help={
    "layers": "comma-separated layer list, e.g. qemu/aarch64,core/minimal (default: the default build)",
    "show": "print every merged value with the layer, file and line that set it",
    "strict": "fail when two layers set one symbol differently",
})
@exit_on_user_error
def config(c, layers=None, show=False, strict=False):
    """Print the merged configuration of a layer list, with provenance and overrides."""
    merged = load_config(layers, strict=strict)
    print_conflict_warnings(merged, stderr)
    print_config(merged, stdout, show_all=show)


ROOT_TASKS = [layers, config]
