"""Map the merged BR2_PACKAGE_* symbols to Debian packages (data in packages.toml)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.paths import REPO_ROOT
from images.layers import MergedConfig

PACKAGES_TOML = Path(__file__).with_name("packages.toml")


@dataclass(frozen=True)
class PackageMapping:
    symbol: str
    debian: tuple[str, ...]
    note: str


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
        mappings[symbol] = PackageMapping(symbol, tuple(table["debian"]), table.get("note", ""))
    return mappings


def debian_packages(config: MergedConfig, mappings: dict[str, PackageMapping] | None = None) -> list[str]:
    """Debian packages for every enabled BR2_PACKAGE_* symbol of `config` (a MergedConfig).

    Host-tool symbols (BR2_PACKAGE_HOST_*) build tools for the build machine, not the target,
    so they need no mapping.
    """
    mappings = load_mappings() if mappings is None else mappings
    wanted: list[str] = []
    for symbol in config.enabled_packages():
        if symbol.startswith("BR2_PACKAGE_HOST_"):
            continue
        mapping = mappings.get(symbol)
        if mapping is None:
            origin = config.buildroot[symbol].origin
            path = Path(origin.path)
            if path.is_absolute() and path.is_relative_to(REPO_ROOT):
                path = path.relative_to(REPO_ROOT)
            raise UnknownPackageError(
                f"{symbol} has no Debian package mapping for the offline backend "
                f"(add it to images/packages.toml, or use --backend buildroot)",
                where=f"{path}:{origin.line}",
            )
        wanted.extend(p for p in mapping.debian if p not in wanted)
    return wanted
