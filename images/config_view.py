"""Render layers and merged configurations for the terminal (`fleetforge layers`, `fleetforge config`)."""
from __future__ import annotations

from dataclasses import fields

from rich.console import Console
from rich.table import Table

from images.layers import Layer, MergedConfig


def layers_table(layers: list[Layer]) -> Table:
    table = Table(title="Layers", show_lines=False)
    table.add_column("layer", style="bold")
    table.add_column("depends")
    table.add_column("description")
    for layer in layers:
        kind = " [board]" if layer.board is not None else ""
        table.add_row(layer.name + kind, ", ".join(layer.depends), layer.description)
    return table


def print_conflict_warnings(config: MergedConfig, console: Console) -> None:
    for override in config.conflicts:
        console.print(f"warning: {override}", markup=False, highlight=False)


def print_config(config: MergedConfig, console: Console, *, show_all: bool) -> None:
    """Summary of a merged configuration; with `show_all`, every value and the layer that set it."""
    console.print(f"layers:  {' -> '.join(config.layer_names)}", highlight=False)
    console.print(f"board:   {config.board.name} ({config.board.arch}, {config.board.compatible})",
                  highlight=False)
    image = ", ".join(f"{f.name}={getattr(config.image, f.name)}" for f in fields(config.image))
    console.print(f"image:   {image}", highlight=False)
    console.print(f"packages: {' '.join(p.removeprefix('BR2_PACKAGE_') for p in config.enabled_packages())}",
                  highlight=False)
    if show_all:
        # One line per value, in defconfig syntax, so the output can be grepped or diffed.
        for title, settings in (
            ("Buildroot configuration", config.buildroot),
            ("Kernel configuration", config.kernel),
            ("Image settings", config.image_settings),
        ):
            console.print(f"\n# {title}", highlight=False)
            for setting in settings.values():
                line = setting.config_line if title != "Image settings" else \
                    f"{setting.name} = {setting.value}"
                console.print(f"{line:<48} # {setting.origin}", markup=False, highlight=False,
                              soft_wrap=True)
        console.print()
    if config.overrides:
        console.print(f"overrides ({len(config.overrides)}):", highlight=False)
        for override in config.overrides:
            console.print(f"  {override}", markup=False, highlight=False)
    else:
        console.print("overrides: none", highlight=False)
