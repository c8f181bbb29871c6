"""Find, resolve and merge configuration layers into one MergedConfig with provenance."""
from __future__ import annotations

import difflib
import hashlib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fleetforge.errors import UserError
from fleetforge.paths import display_path, layer_search_path
from images.settings import (
    SECTIONS,
    Assignment,
    Board,
    EntryError,
    ImageLayout,
    defaults,
    parse_assignments,
    section_specs,
)

# The default build, overridable like SkiffOS's SKIFF_CONFIG.
DEFAULT_LAYERS: tuple[str, ...] = tuple(
    os.environ.get("FLEETFORGE_LAYERS", "board/qemu-aarch64,core/minimal,feature/ota").split(",")
)

METADATA_FILE = "layer.toml"
LAYER_KEYS = ("description", "depends", *SECTIONS)
COMMAND_LINE = Path("<command line>")  # the origin of a --set value


class LayerError(UserError):
    """A layer is missing, malformed, or the layer list cannot be resolved."""


@dataclass(frozen=True)
class Origin:
    """Where a merged value was set."""

    layer: str
    path: Path
    line: int | None = None

    def __str__(self) -> str:
        if self.path == COMMAND_LINE:
            return self.layer
        location = display_path(self.path) + (f":{self.line}" if self.line else "")
        return f"{self.layer} ({location})"


@dataclass(frozen=True)
class Setting:
    """One configuration symbol or image key, with the layer that set it."""

    name: str
    value: Any  # Kconfig: as written ('y', 'n', '"text"', '123'); layer settings: parsed value
    origin: Origin

    @property
    def text(self) -> str:
        """The value with Kconfig string quoting removed."""
        value = str(self.value)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return value

    @property
    def config_line(self) -> str:
        """The value as a defconfig line."""
        if self.value == "n":
            return f"# {self.name} is not set"
        return f"{self.name}={self.value}"


@dataclass(frozen=True)
class Override:
    """A later layer replaced a value an earlier one had set."""

    kind: str  # "buildroot", "kernel", "busybox" or "setting"
    name: str
    previous: Setting
    setting: Setting

    @property
    def conflicting(self) -> bool:
        """Two different layers disagree (a layer refining its own value, or the user's --set,
        is no conflict)."""
        return (
            self.previous.origin.layer != self.setting.origin.layer
            and self.setting.origin.path != COMMAND_LINE
            and self.previous.value != self.setting.value
        )

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.setting.value} from {self.setting.origin} overrides "
            f"{self.previous.value} from {self.previous.origin}"
        )


@dataclass(frozen=True)
class Layer:
    """One layer folder, as read from disk (not yet merged)."""

    name: str  # "group/name"
    path: Path
    description: str
    depends: tuple[str, ...]
    settings: Mapping[str, Mapping[str, Any]]  # section -> key -> parsed value, as written

    @property
    def is_board(self) -> bool:
        return "board" in self.settings

    @property
    def metadata_path(self) -> Path:
        return self.path / METADATA_FILE

    @property
    def buildroot_fragments(self) -> tuple[Path, ...]:
        return tuple(sorted((self.path / "buildroot").glob("*.conf")))

    @property
    def kernel_fragments(self) -> tuple[Path, ...]:
        return tuple(sorted((self.path / "kernel").glob("*.conf")))

    @property
    def busybox_fragments(self) -> tuple[Path, ...]:
        return tuple(sorted((self.path / "busybox").glob("*.conf")))

    def _optional_dir(self, name: str) -> Path | None:
        path = self.path / name
        return path if path.is_dir() else None

    @property
    def root_overlay(self) -> Path | None:
        return self._optional_dir("root_overlay")

    @property
    def initramfs_overlay(self) -> Path | None:
        return self._optional_dir("initramfs_overlay")

    @property
    def resources(self) -> Path | None:
        return self._optional_dir("resources")

    def hook(self, stage: str) -> Path | None:
        path = self.path / "hooks" / f"{stage}.sh"
        return path if path.is_file() else None

    @property
    def commands(self) -> Mapping[str, Path]:
        folder = self.path / "commands"
        if not folder.is_dir():
            return {}
        return {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}


@dataclass(frozen=True)
class MergedConfig:
    """The result of merging an ordered layer list: the one source of truth for every backend."""

    layers: tuple[Layer, ...]
    board: Board
    image: ImageLayout
    buildroot: Mapping[str, Setting]
    kernel: Mapping[str, Setting]
    settings: Mapping[str, Setting]  # "section.key" -> the value set and where (unset: default)
    # The busybox applets and features the layers' scripts need (built by the Buildroot backend;
    # Debian's busybox has them all).
    busybox: Mapping[str, Setting] = field(default_factory=dict)
    overrides: tuple[Override, ...] = field(default=())
    layer_path: tuple[Path, ...] = ()  # the folders the layers were found in (search order)
    assignments: tuple[str, ...] = ()  # the --set SECTION.KEY=VALUE it was made with

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    @property
    def conflicts(self) -> tuple[Override, ...]:
        return tuple(o for o in self.overrides if o.conflicting)

    def enabled_packages(self) -> tuple[str, ...]:
        return tuple(
            name for name, s in self.buildroot.items()
            if name.startswith("BR2_PACKAGE_") and s.value == "y"
        )

    @property
    def hostname(self) -> str:
        setting = self.buildroot.get("BR2_TARGET_GENERIC_HOSTNAME")
        return setting.text if setting else "fleetforge"

    @property
    def root_overlays(self) -> tuple[Path, ...]:
        return tuple(p for p in (layer.root_overlay for layer in self.layers) if p)

    @property
    def initramfs_overlays(self) -> tuple[Path, ...]:
        return tuple(p for p in (layer.initramfs_overlay for layer in self.layers) if p)

    @property
    def post_build_hooks(self) -> tuple[Path, ...]:
        return tuple(p for p in (layer.hook("post-build") for layer in self.layers) if p)

    @property
    def post_image_hooks(self) -> tuple[Path, ...]:
        return tuple(p for p in (layer.hook("post-image") for layer in self.layers) if p)

    def digest(self) -> str:
        """sha256 over the layer list and every file in every layer (for build caching)."""
        digest = hashlib.sha256()
        for layer in self.layers:
            digest.update(f"layer {layer.name}\n".encode())
            for path in sorted(p for p in layer.path.rglob("*") if p.is_file()):
                digest.update(f"{path.relative_to(layer.path)} {path.stat().st_mode:o}\n".encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Finding and reading layers


LayerDirs = Path | Sequence[Path] | None  # one folder, a search path, or None: the default path


def _search_path(layers_dir: LayerDirs) -> tuple[Path, ...]:
    if layers_dir is None:
        return layer_search_path()
    return (layers_dir,) if isinstance(layers_dir, Path) else tuple(layers_dir)


def discover_layers(layers_dir: LayerDirs = None) -> dict[str, Path]:
    """Every `group/name` folder holding a layer.toml; on the search path, the first folder that
    has a name wins (a project's own layers/ can replace a shipped layer)."""
    found: dict[str, Path] = {}
    for folder in _search_path(layers_dir):
        for meta in sorted(folder.glob(f"*/*/{METADATA_FILE}")):
            found.setdefault(f"{meta.parent.parent.name}/{meta.parent.name}", meta.parent)
    return dict(sorted(found.items()))


def find_layer(query: str, available: Mapping[str, Path]) -> str:
    """Resolve a full or short layer name: `board/qemu-aarch64`, `qemu-aarch64`, `qemu/aarch64`."""
    query = query.strip().strip("/")
    if query in available:
        return query
    dashed = query.replace("/", "-")
    matches = [
        name for name in available
        if name.split("/", 1)[1] in (query, dashed) or name.replace("/", "-") == dashed
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise LayerError(f"layer '{query}' is ambiguous: {', '.join(sorted(matches))}")
    candidates = list(available) + [name.split("/", 1)[1] for name in available]
    close = difflib.get_close_matches(query, candidates, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise LayerError(f"unknown layer '{query}'{hint} (see `fleetforge layers`)")


def _line_matching(path: Path, pattern: str) -> int | None:
    compiled = re.compile(pattern)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if compiled.match(line):
            return number
    return None


def _line_of_key(path: Path, key: str) -> int | None:
    return _line_matching(path, rf"^\s*{re.escape(key)}\s*=")


def _validate_table(table: Any, section: str, path: Path) -> dict[str, Any]:
    """Parse a [board]/[image] table against the settings table; errors name file:line and key."""
    if not isinstance(table, dict):
        raise LayerError(f"[{section}] must be a table", where=display_path(path))
    by_key = {spec.key: spec for spec in section_specs(section)}
    parsed: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{display_path(path)}:{_line_of_key(path, key) or _line_of_table(path, section, key) or 1}"
        spec = by_key.get(key)
        if spec is None:
            close = difflib.get_close_matches(key, by_key, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise LayerError(f"unknown [{section}] key '{key}'{hint}", where=where)
        try:
            parsed[key] = spec.parse(value)
        except EntryError as error:  # the line of that entry's [[section.key]] header
            line = _line_of_table(path, section, key, error.entry) or 1
            raise LayerError(f"[{section}] {key}: {error}", where=f"{display_path(path)}:{line}") from None
        except ValueError as error:
            raise LayerError(f"[{section}] {key}: {error}", where=where) from None
    return parsed


def _line_of_table(path: Path, section: str, key: str, entry: int = 1) -> int | None:
    """The line of the `entry`th `[[section.key]]` header (e.g. [[board.bootloader]])."""
    header = re.compile(rf"^\s*\[\[\s*{re.escape(section)}\.{re.escape(key)}\s*\]\]")
    lines = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if header.match(line)]
    return lines[entry - 1] if len(lines) >= entry else None


def load_layer(name: str, path: Path) -> Layer:
    """Read and validate one layer's layer.toml."""
    meta = path / METADATA_FILE
    try:
        data = tomllib.loads(meta.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        found = re.search(r"line (\d+)", str(error))
        # tomllib names no line for errors "at end of document": that is the last line.
        line = found.group(1) if found else len(meta.read_text(encoding="utf-8").splitlines())
        where = f"{display_path(meta)}:{line}"
        raise LayerError(f"invalid TOML: {error}", where=where) from None
    except (OSError, UnicodeDecodeError) as error:
        raise LayerError(f"cannot read: {error}", where=display_path(meta)) from None
    for key in data:
        if key not in LAYER_KEYS:
            raise LayerError(
                f"unknown key '{key}' (expected {', '.join(sorted(LAYER_KEYS))})",
                where=f"{display_path(meta)}:{_line_of_key(meta, key) or 1}",
            )
    depends = data.get("depends", [])
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise LayerError(
            "depends must be a list of layer names",
            where=f"{display_path(meta)}:{_line_of_key(meta, 'depends') or 1}",
        )
    description = data.get("description", "")
    if not isinstance(description, str) or not description:
        raise LayerError("missing description", where=display_path(meta))
    settings = {section: _validate_table(data[section], section, meta)
                for section in SECTIONS if section in data}
    if "board" in settings:
        missing = [s.key for s in section_specs("board") if s.required and s.key not in settings["board"]]
        if missing:
            raise LayerError(f"[board] misses {', '.join(missing)}", where=display_path(meta))
    return Layer(name, path, description, tuple(depends), settings)


def load_all_layers(layers_dir: LayerDirs = None) -> list[Layer]:
    """Every layer in the tree (for `fleetforge layers`)."""
    return [load_layer(name, path) for name, path in discover_layers(layers_dir).items()]


def resolve_layers(names: Sequence[str], layers_dir: LayerDirs = None) -> list[Layer]:
    """Order the named layers with their dependencies first; detect cycles.

    Named layers keep the order given (later ones override earlier ones); each dependency is
    placed before the first layer that needs it.
    """
    available = discover_layers(layers_dir)
    if not available:
        searched = ", ".join(str(p) for p in _search_path(layers_dir))
        raise LayerError(f"no layers found (searched: {searched})")
    loaded: dict[str, Layer] = {}
    ordered: list[Layer] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in visiting:
            cycle = visiting[visiting.index(name):] + [name]
            raise LayerError(f"dependency cycle: {' -> '.join(cycle)}")
        if name in loaded:
            return
        layer = load_layer(name, available[name])
        loaded[name] = layer
        visiting.append(name)
        for dependency in layer.depends:
            try:
                dep_name = find_layer(dependency, available)
            except LayerError as error:
                where = f"{display_path(layer.metadata_path)}:{_line_of_key(layer.metadata_path, 'depends') or 1}"
                raise LayerError(error.message, where=where) from None
            visit(dep_name)
        visiting.pop()
        ordered.append(layer)

    names = [n for n in names if n.strip()]
    if not names:
        raise LayerError("no layers given (example: --layers qemu/aarch64,core/minimal)")
    for query in names:
        visit(find_layer(query, available))
    return ordered


# --------------------------------------------------------------------------------------------
# Kconfig fragments

_SYMBOL = r"[A-Za-z0-9_]+"
_VALUE = r'(?:[ynm]|"(?:[^"\\]|\\.)*"|-?\d+|0[xX][0-9a-fA-F]+)'
_ASSIGNMENT = re.compile(rf"^({_SYMBOL})=({_VALUE})\s*$")
_UNSET = re.compile(rf"^#\s*({_SYMBOL}) is not set\s*$")


def parse_fragment(path: Path, layer: str, prefix: str) -> list[Setting]:
    """Parse a defconfig/kernel config fragment; every symbol must start with `prefix`."""
    settings: list[Setting] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise LayerError(f"cannot read fragment: {error}", where=display_path(path)) from None
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        where = f"{display_path(path)}:{number}"
        if not line:
            continue
        unset = _UNSET.match(line)
        if unset:
            name, value = unset.group(1), "n"
        elif line.startswith("#"):
            continue
        else:
            assignment = _ASSIGNMENT.match(line)
            if not assignment:
                raise LayerError(
                    f"malformed line {line!r}: expected {prefix}NAME=value or "
                    f"'# {prefix}NAME is not set'",
                    where=where,
                )
            name, value = assignment.groups()
        if not name.startswith(prefix):
            raise LayerError(f"symbol {name} does not start with {prefix}", where=where)
        settings.append(Setting(name, value, Origin(layer, path, number)))
    return settings


# --------------------------------------------------------------------------------------------
# Merging


def _merge(
    kind: str, settings: Iterable[Setting], overrides: list[Override]
) -> dict[str, Setting]:
    merged: dict[str, Setting] = {}
    for setting in settings:
        previous = merged.get(setting.name)
        if previous is not None and previous.value != setting.value:
            overrides.append(Override(kind, setting.name, previous, setting))
        merged[setting.name] = setting
    return merged


def _layer_settings(layers: Sequence[Layer]) -> Iterable[Setting]:
    """Every [section] value of every layer, in order, with where it was set."""
    for layer in layers:
        for section, values in layer.settings.items():
            for key, value in values.items():
                line = _line_of_key(layer.metadata_path, key) or \
                    _line_of_table(layer.metadata_path, section, key)
                yield Setting(f"{section}.{key}", value, Origin(layer.name, layer.metadata_path, line))


def _command_line_settings(assignments: Sequence[Assignment]) -> Iterable[Setting]:
    for assignment in assignments:
        yield Setting(assignment.spec.name, assignment.value,
                      Origin(f"--set {assignment.text}", COMMAND_LINE))


def merge_layers(layers: Sequence[Layer], *, strict: bool = False,
                 assignments: Sequence[Assignment] = ()) -> MergedConfig:
    """Merge resolved layers in order, then the command line's --set values (they win).
    `strict` turns conflicts between layers into an error."""
    boards = [layer for layer in layers if layer.is_board]
    if not boards:
        raise LayerError(
            "no board layer in " + ",".join(l.name for l in layers)
            + " (add one, e.g. board/qemu-aarch64)"
        )
    if len(boards) > 1:
        raise LayerError("two board layers at once: " + ", ".join(b.name for b in boards))
    board_layer = boards[0]

    overrides: list[Override] = []
    buildroot = _merge(
        "buildroot",
        (s for layer in layers for f in layer.buildroot_fragments
         for s in parse_fragment(f, layer.name, "BR2_")),
        overrides,
    )
    kernel = _merge(
        "kernel",
        (s for layer in layers for f in layer.kernel_fragments
         for s in parse_fragment(f, layer.name, "CONFIG_")),
        overrides,
    )
    busybox = _merge(
        "busybox",
        (s for layer in layers for f in layer.busybox_fragments
         for s in parse_fragment(f, layer.name, "CONFIG_")),
        overrides,
    )
    # [board] comes from the one board layer only (checked above); [image] from every layer.
    settings = _merge("setting", (*_layer_settings(layers), *_command_line_settings(assignments)),
                      overrides)
    values = {section: defaults(section) | {name.split(".", 1)[1]: s.value
                                           for name, s in settings.items()
                                           if name.startswith(section + ".")}
              for section in SECTIONS}
    config = MergedConfig(
        layers=tuple(layers),
        board=Board(name=board_layer.name, **values["board"]),
        image=ImageLayout(**values["image"]),
        buildroot=buildroot,
        kernel=kernel,
        busybox=busybox,
        settings=settings,
        overrides=tuple(overrides),
        assignments=tuple(a.text for a in assignments),
    )
    if strict and config.conflicts:
        first = config.conflicts[0]
        more = f" (and {len(config.conflicts) - 1} more)" if len(config.conflicts) > 1 else ""
        raise LayerError(f"conflicting layers (--strict): {first}{more}")
    return config


def parse_layer_list(spec: str | Sequence[str] | None) -> list[str]:
    """'a,b' or ['a', 'b'] or None (the default build) -> ['a', 'b']."""
    if spec is None or spec == "":
        return list(DEFAULT_LAYERS)
    if isinstance(spec, str):
        return [part.strip() for part in spec.split(",") if part.strip()]
    return list(spec)


def load_config(
    spec: str | Sequence[str] | None = None,
    *,
    strict: bool = False,
    layers_dir: LayerDirs = None,
    overrides: str | Sequence[str] | None = None,
) -> MergedConfig:
    """Resolve and merge a layer list given as 'a,b', a list, or None for the default build;
    `overrides` are --set SECTION.KEY=VALUE texts, applied last."""
    assignments = parse_assignments(overrides)
    layers = resolve_layers(parse_layer_list(spec), layers_dir)
    config = merge_layers(layers, strict=strict, assignments=assignments)
    return replace(config, layer_path=_search_path(layers_dir))

