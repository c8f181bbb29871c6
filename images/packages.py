"""Map the merged BR2_PACKAGE_* symbols to Debian packages (data in packages.toml)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.paths import display_path
from images.layers import MergedConfig

PACKAGES_TOML = Path(__file__).with_name("packages.toml")


# apt's archive areas; "main" is always enabled, a mapping may ask for more (e.g. firmware).
COMPONENTS = ("main", "contrib", "non-free", "non-free-firmware")


@dataclass(frozen=True)
class PackageMapping:
    symbol: str
    debian: tuple[str, ...]
    note: str
    components: tuple[str, ...] = ()  # archive areas beyond main that these packages need


@dataclass(frozen=True)
class PackagePlan:
    """What the enabled symbols ask of the Debian archive."""

    rootfs: tuple[str, ...]  # packages installed (with their dependencies) into the rootfs
    components: tuple[str, ...]  # extra archive areas to enable, sorted


class UnknownPackageError(UserError):
    """A layer enables a BR2_PACKAGE_* symbol the offline backend has no Debian mapping for."""


def load_mappings(path: Path = PACKAGES_TOML) -> dict[str, PackageMapping]:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"malformed package mapping: {error}", where=str(path)) from None
    mappings = {}
    for symbol, table in data.items():
        if not symbol.startswith("BR2_PACKAGE_") or not isinstance(table.get("debian"), list):
            raise UserError(f"[{symbol}] needs a BR2_PACKAGE_ name and a `debian = [...]` list",
                            where=str(path))
        components = table.get("components", [])
        if not isinstance(components, list) or not set(components) <= set(COMPONENTS[1:]):
            raise UserError(f"[{symbol}] components must be a list of {', '.join(COMPONENTS[1:])}",
                            where=str(path))
        mappings[symbol] = PackageMapping(symbol, tuple(table["debian"]), table.get("note", ""),
                                          tuple(components))
    return mappings


def package_plan(config: MergedConfig, mappings: dict[str, PackageMapping] | None = None) -> PackagePlan:
    """Debian packages and archive areas for every enabled BR2_PACKAGE_* symbol.

    Host-tool symbols (BR2_PACKAGE_HOST_*) build tools for the build machine, not the target,
    so they need no mapping.
    """
    mappings = load_mappings() if mappings is None else mappings
    wanted: list[str] = []
    components: set[str] = set()
    for symbol in config.enabled_packages():
        if symbol.startswith("BR2_PACKAGE_HOST_"):
            continue
        mapping = mappings.get(symbol)
        if mapping is None:
            origin = config.buildroot[symbol].origin
            path = display_path(origin.path)
            raise UnknownPackageError(
                f"{symbol} has no Debian package mapping for the offline backend "
                f"(add it to images/packages.toml, or use --backend buildroot)",
                where=f"{path}:{origin.line}",
            )
        wanted.extend(p for p in mapping.debian if p not in wanted)
        components.update(mapping.components)
    return PackagePlan(tuple(wanted), tuple(sorted(components)))
