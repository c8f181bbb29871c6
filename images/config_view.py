"""Render layers and merged configurations for the terminal (`fleetforge layers`, `fleetforge config`)."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from images.layers import Layer, MergedConfig
from images.settings import SETTINGS, format_value


def layers_table(layers: list[Layer]) -> Table:
    table = Table(title="Layers", show_lines=False)
    table.add_column("layer", style="bold")
    table.add_column("depends")
    table.add_column("description")
    for layer in layers:
        kind = " [board]" if layer.is_board else ""
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
    image = ", ".join(f"{spec.key}={format_value(spec, getattr(config.image, spec.key))}"
                      for spec in SETTINGS if spec.section == "image")
    console.print(f"image:   {image}", highlight=False)
    console.print(f"packages: {' '.join(p.removeprefix('BR2_PACKAGE_') for p in config.enabled_packages())}",
                  highlight=False)
    if show_all:
        print_settings(config, console)
        # One line per value, in defconfig syntax, so the output can be grepped or diffed.
        for title, settings in (
            ("Buildroot configuration", config.buildroot),
            ("Kernel configuration", config.kernel),
            ("Busybox configuration (Buildroot backend)", config.busybox),
        ):
            console.print(f"\n# {title}", highlight=False)
            for setting in settings.values():
                console.print(f"{setting.config_line:<48} # {setting.origin}", markup=False,
                              highlight=False, soft_wrap=True)
        console.print()
    if config.overrides:
        console.print(f"overrides ({len(config.overrides)}):", highlight=False)
        for override in config.overrides:
            console.print(f"  {override}", markup=False, highlight=False)
    else:
        console.print("overrides: none", highlight=False)


def print_settings(config: MergedConfig, console: Console) -> None:
    """Every setting of the table: its value, where it was set (or default), and its help."""
    console.print("\n# Settings (layer.toml [board] and [image]; override with --set SECTION.KEY=VALUE)",
                  markup=False, highlight=False)
    for spec in SETTINGS:
        section = config.board if spec.section == "board" else config.image
        value = format_value(spec, getattr(section, spec.key))
        setting = config.settings.get(spec.name)
        origin = str(setting.origin) if setting is not None else "default"
        console.print(f"{spec.name + ' = ' + value:<48} # {origin}", markup=False,
                      highlight=False, soft_wrap=True)
        console.print(f"    {spec.help}", markup=False, highlight=False, soft_wrap=True)
