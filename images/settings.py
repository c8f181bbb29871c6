"""The one table of layer settings, mkosi style: every `[board]` and `[image]` key declared once.

Each declaration (section, key, parser, default, help, the Buildroot symbols it sets) drives:
layer.toml validation (images/layers.py), the merged values (the Board and ImageLayout classes
made here from the table), `--set section.key=value`, `fleetforge config --show`, the settings
table in docs/layers.md (`python -m images.settings docs/layers.md`) and the Buildroot defconfig
(images/buildroot/defconfig.py). Adding a setting is one SettingSpec below plus its consumer.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import toolchains
from fleetforge.errors import UserError

# --------------------------------------------------------------------------------------------
# Parsers: a value as written in TOML (or on the command line) -> the typed value, or ValueError


def parse_size(value: Any) -> int:
    """size: 32M, 1G, 512K or bytes"""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", str(value), re.IGNORECASE)
    if not match:
        raise ValueError(f"expected a size such as 32M or 1G, got {value!r}")
    number, unit = match.groups()
    return int(number) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit.upper()]


def parse_bool(value: Any) -> bool:
    """true / false"""
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


def parse_str(value: Any) -> str:
    """text"""
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"expected a non-empty string, got {value!r}")


def parse_count(value: Any) -> int:
    """whole number, 0 or more"""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError(f"expected a whole number (0 or more), got {value!r}")


def parse_version(value: Any) -> str:
    """release version: letters, digits, . + - (e.g. 2026.3.1)"""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9.+-]{1,64}", value):
        return value
    raise ValueError(f"expected a version such as 2026.3.1, got {value!r}")


def parse_str_list(value: Any) -> tuple[str, ...]:
    """list of text"""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ValueError(f"expected a list of non-empty strings, got {value!r}")


def one_of(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value in choices:
            return value
        raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")

    parse.__doc__ = " / ".join(choices)
    return parse


def parse_seconds(value: Any) -> int:
    """seconds, 0 to 3600"""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3600:
        return value
    raise ValueError(f"expected a whole number of seconds from 0 to 3600, got {value!r}")


def parse_target(value: Any) -> str:
    """a Linux target of toolchains/targets.toml"""
    known = [t.name for t in toolchains.targets().values() if not t.bare_metal]
    if value in known:
        return value
    raise ValueError(f"expected a Linux target of toolchains/targets.toml ({', '.join(known)}), "
                     f"got {value!r}")


@dataclass(frozen=True)
class BootloaderFile:
    """One `[[board.bootloader]]` entry: a file the board's boot ROM or firmware loads."""

    file: str  # its name among the images (and on the boot partition)
    offset: int | None = None  # raw, at this byte offset of the disk (outside any partition)
    partition: str = ""  # "boot": on the boot file system; another name: a partition of its own
    package: str = ""  # the Debian package the offline backend takes it from
    path: str = ""  # its path inside that package
    buildroot: str = ""  # its path below Buildroot's BINARIES_DIR (default: file)

    @property
    def buildroot_path(self) -> str:
        return self.buildroot or self.file


def _relative_path(value: Any, what: str) -> str:
    text = parse_str(value)
    if text.startswith("/") or ".." in Path(text).parts:
        raise ValueError(f"{what} must be a relative path without '..', got {value!r}")
    return text


class EntryError(ValueError):
    """A bad entry of a list of tables; `entry` counts from 1 (the error names its line)."""

    def __init__(self, entry: int, message: str) -> None:
        super().__init__(f"entry {entry}: {message}")
        self.entry = entry


def _bootloader_entry(table: Any) -> BootloaderFile:
    if not isinstance(table, Mapping):
        raise ValueError("expected a table")
    known = {f.name for f in dataclasses.fields(BootloaderFile)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"unknown key '{unknown[0]}' (keys: {', '.join(sorted(known))})")
    if "file" not in table:
        raise ValueError("needs file = \"NAME\"")
    placed = [key for key in ("offset", "partition") if table.get(key) not in (None, "")]
    if len(placed) != 1:
        raise ValueError("give exactly one of offset (raw on the disk, e.g. \"32K\") or "
                         "partition (\"boot\", or a partition of its own)")
    if bool(table.get("package")) != bool(table.get("path")):
        raise ValueError("package and path go together")
    entry = BootloaderFile(
        file=_relative_path(table["file"], "file"),
        offset=parse_size(table["offset"]) if "offset" in placed else None,
        partition=parse_str(table["partition"]) if "partition" in placed else "",
        package=parse_str(table["package"]) if table.get("package") else "",
        path=_relative_path(table["path"], "path") if table.get("path") else "",
        buildroot=_relative_path(table["buildroot"], "buildroot") if table.get("buildroot") else "",
    )
    if entry.offset is not None and entry.offset % 512:
        raise ValueError(f"offset of {entry.file} must be a multiple of 512 (a sector)")
    return entry


def parse_bootloader(value: Any) -> tuple[BootloaderFile, ...]:
    """[[board.bootloader]] tables"""
    if not isinstance(value, (list, tuple)):
        raise ValueError("expected [[board.bootloader]] tables")
    entries = []
    for number, table in enumerate(value, 1):
        try:
            entries.append(_bootloader_entry(table))
        except EntryError:
            raise
        except ValueError as error:
            raise EntryError(number, str(error)) from None
    return tuple(entries)


# --------------------------------------------------------------------------------------------
# What a setting sets in Buildroot's defconfig


def kconfig_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class BuildrootSymbols:
    """The Buildroot symbols a setting sets, and its value as defconfig lines."""

    names: str  # as the docs show them
    render: Callable[[Any], list[tuple[str, str]]]  # value -> [(symbol, value as written)]


def _getty_port(console: str) -> list[tuple[str, str]]:
    return [("BR2_TARGET_GENERIC_GETTY_PORT", kconfig_string(console.split(",")[0]))]


def _device_trees(dtbs: tuple[str, ...]) -> list[tuple[str, str]]:
    if not dtbs:
        return []
    names = " ".join(d.removesuffix(".dtb") for d in dtbs)
    return [("BR2_LINUX_KERNEL_DTS_SUPPORT", "y"),
            ("BR2_LINUX_KERNEL_INTREE_DTS_NAME", kconfig_string(names))]


def _target_arch(target: str) -> list[tuple[str, str]]:
    symbol = toolchains.target(target).buildroot_arch
    return [(symbol, "y")] if symbol else []


def _rootfs_format(fmt: str) -> list[tuple[str, str]]:
    return {"squashfs": [("BR2_TARGET_ROOTFS_SQUASHFS", "y")],
            "ext4": [("BR2_TARGET_ROOTFS_EXT2", "y"), ("BR2_TARGET_ROOTFS_EXT2_4", "y")]}[fmt]


# --------------------------------------------------------------------------------------------
# The table

REQUIRED = object()  # default of a setting a layer must give


@dataclass(frozen=True)
class SettingSpec:
    """One setting: `[section] key = value` in a board layer's layer.toml, or `--set section.key=value`."""

    section: str  # "board" (the one board layer) or "image" (any layer; later layers win)
    key: str
    parse: Callable[[Any], Any]
    default: Any  # REQUIRED: a board layer must set it
    help: str
    buildroot: BuildrootSymbols | None = None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("board", "target", parse_target, REQUIRED,
                "compile target from toolchains/targets.toml (e.g. aarch64-linux-gnu); the board's "
                "architecture and Debian architecture come from it",
                BuildrootSymbols("BR2_<arch> (targets.toml buildroot_arch)", _target_arch)),
    SettingSpec("board", "compatible", parse_str, REQUIRED,
                "string an update bundle must match exactly"),
    SettingSpec("board", "qemu_system", parse_str, "",
                "QEMU system emulator (empty: not boot-testable)"),
    SettingSpec("board", "qemu_machine", parse_str, "", "QEMU -M machine"),
    SettingSpec("board", "qemu_cpu", parse_str, "", "QEMU -cpu model"),
    SettingSpec("board", "qemu_devices", parse_str_list, (),
                "extra QEMU -device models the board has, e.g. [\"i6300esb\"] (the watchdog the "
                "boot chain arms, docs/ab-boot.md)"),
    SettingSpec("board", "console", parse_str, "ttyS0",
                "kernel console device (and getty port), e.g. ttyS2,1500000",
                BuildrootSymbols("BR2_TARGET_GENERIC_GETTY_PORT", _getty_port)),
    SettingSpec("board", "kernel", one_of("debian", "source"), "debian",
                "debian: Debian's prebuilt kernel package; source: built with the layers' fragments"),
    SettingSpec("board", "kernel_package", parse_str, "",
                "Debian kernel package (kernel = debian)"),
    SettingSpec("board", "kernel_image", parse_str, "vmlinuz",
                "kernel file name prefix under /boot in the kernel package (kernel = debian)"),
    SettingSpec("board", "kernel_defconfig", parse_str, "defconfig",
                "kernel make targets applied in order for the base config, e.g. "
                "'tinyconfig kvm_guest.config' (kernel = source)"),
    SettingSpec("board", "device_trees", parse_str_list, (),
                "device tree blobs from the kernel (paths below its dtb directory, e.g. "
                "broadcom/bcm2711-rpi-4-b.dtb), copied onto the boot partition",
                BuildrootSymbols("BR2_LINUX_KERNEL_INTREE_DTS_NAME", _device_trees)),
    SettingSpec("board", "bootloader", parse_bootloader, (),
                "[[board.bootloader]] tables: file, offset (raw on the disk) or partition "
                "(\"boot\" or one of its own), package + path (offline backend), buildroot "
                "(path in BINARIES_DIR)"),
    SettingSpec("board", "boot_tested", parse_bool, False,
                "whether the image is boot-tested in QEMU"),
    SettingSpec("image", "partition_table", one_of("gpt", "mbr"), "gpt", "partition table type"),
    SettingSpec("image", "boot_fstype", one_of("ext4", "vfat"), "ext4",
                "boot partition file system"),
    SettingSpec("image", "boot_size", parse_size, 64 << 20, "boot partition size"),
    SettingSpec("image", "rootfs_format", one_of("squashfs", "ext4"), "squashfs",
                "root slot file system",
                BuildrootSymbols("BR2_TARGET_ROOTFS_SQUASHFS, BR2_TARGET_ROOTFS_EXT2_4",
                                 _rootfs_format)),
    SettingSpec("image", "rootfs_size", parse_size, 64 << 20, "size of each root slot (A and B)"),
    SettingSpec("image", "persist_size", parse_size, 32 << 20, "persistent data partition size"),
    SettingSpec("image", "watchdog_timeout", parse_seconds, 120,
                "seconds a boot may take, from the initramfs arming the board's watchdog to the "
                "boot's commit decision, before the watchdog resets the board and the previous "
                "slot boots (0: the watchdog is fed from the initramfs on; docs/ab-boot.md)"),
    SettingSpec("image", "boot_offset", parse_size, 0,
                "where the boot partition (the first A/B partition) starts on the disk; 0: right "
                "after the board's bootloader images, 1 MiB aligned"),
    SettingSpec("image", "version", parse_version, "",
                "release version, written to /etc/fleetforge/version and the manifest; OTA "
                "bundles of the image carry it (empty: the build time, YYYY.MMDD.HHMMSS UTC)"),
    SettingSpec("image", "security_version", parse_count, 0,
                "anti-rollback level, written to /etc/fleetforge/security-version and into OTA "
                "bundles; a device refuses any bundle below the highest level it ran (docs/ota.md)"),
)

SECTIONS = ("board", "image")
BY_NAME: dict[str, SettingSpec] = {spec.name: spec for spec in SETTINGS}


def section_specs(section: str) -> tuple[SettingSpec, ...]:
    return tuple(spec for spec in SETTINGS if spec.section == section)


def defaults(section: str) -> dict[str, Any]:
    return {spec.key: spec.default for spec in section_specs(section) if not spec.required}


def _section_class(name: str, section: str, doc: str, leading: Sequence[tuple[str, type]] = (),
                   namespace: Mapping[str, Any] | None = None) -> type:
    fields = [*leading, *((spec.key, Any) for spec in section_specs(section))]
    return dataclasses.make_dataclass(name, fields, frozen=True,
                                      namespace={"__doc__": doc, **(namespace or {})})


def _target(board: Any) -> toolchains.Target:
    return toolchains.target(board.target)


# The merged values of each section, as classes made from the table (no second declaration).
Board = _section_class(
    "Board", "board", "The board a build targets: its layer's name and [board] settings.",
    leading=[("name", str)],
    namespace={"arch": property(lambda self: _target(self).arch,
                                doc="the board's architecture (from its target)"),
               "debian_arch": property(lambda self: _target(self).debian_arch,
                                       doc="Debian's name for it (from its target)")})
ImageLayout = _section_class("ImageLayout", "image",
                             "Disk image settings, merged over all layers (sizes in bytes).")


def board_record(board: Any) -> dict[str, Any]:
    """The board as the manifest records it: every setting, plus the derived architectures."""
    record = dataclasses.asdict(board)
    record.update(arch=board.arch, debian_arch=board.debian_arch)
    return record


def board_from_record(record: Mapping[str, Any]) -> Any:
    """A Board from a manifest's record (each value parsed again by its setting)."""
    values = {spec.key: record[spec.key] if record[spec.key] == "" else spec.parse(record[spec.key])
              for spec in section_specs("board")}
    return Board(name=record["name"], **values)


# --------------------------------------------------------------------------------------------
# Validation and command-line overrides


class SettingError(UserError):
    """A setting is unknown or its value is malformed."""


def suggest(key: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


@dataclass(frozen=True)
class Assignment:
    """One `--set section.key=value`: the setting and its parsed value."""

    spec: SettingSpec
    value: Any
    text: str  # as the user typed it


def parse_assignment(text: str) -> Assignment:
    """`section.key=value`; the value is read as TOML when it is one (true, 3, ["a"]), else as text."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or "." not in name:
        meant = [spec.name for spec in SETTINGS if spec.key == name]
        example = meant[0] if meant else "image.rootfs_size"
        raise SettingError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. {example}=...")
    spec = BY_NAME.get(name)
    if spec is None:
        raise SettingError(f"--set {text!r}: unknown setting '{name}'{suggest(name, BY_NAME)} "
                           "(see `fleetforge config --show`)")
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    try:
        return Assignment(spec, spec.parse(value), text)
    except ValueError as error:
        raise SettingError(f"--set {text!r}: {error}") from None


def parse_assignments(texts: str | Sequence[str] | None) -> tuple[Assignment, ...]:
    if not texts:
        return ()
    items = [texts] if isinstance(texts, str) else list(texts)
    return tuple(parse_assignment(text) for text in items)


# --------------------------------------------------------------------------------------------
# Buildroot and docs


def buildroot_symbols(board: Any, image: Any) -> list[tuple[SettingSpec, str, str]]:
    """(setting, symbol, value) for every setting that maps to Buildroot symbols."""
    found = []
    for spec in SETTINGS:
        if spec.buildroot is not None:
            value = getattr(board if spec.section == "board" else image, spec.key)
            found += [(spec, symbol, text) for symbol, text in spec.buildroot.render(value)]
    return found


def format_value(spec: SettingSpec, value: Any) -> str:
    """A value as a user would write it in layer.toml or --set."""
    if spec.parse is parse_size:
        return f"{value >> 20}M" if value % (1 << 20) == 0 else str(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return f'"{value}"'
    if spec.parse is parse_bootloader:
        return "[" + ", ".join(f"{e.file} at {e.offset}" if e.offset is not None
                               else f"{e.file} in {e.partition}" for e in value) + "]"
    return "[" + ", ".join(f'"{v}"' for v in value) + "]"


def _default_text(spec: SettingSpec) -> str:
    if spec.required:
        return "required"
    if spec.default in ("", ()):
        return "(empty)"
    return f"`{format_value(spec, spec.default)}`"


DOCS_BEGIN = "<!-- settings table: generated by `python -m images.settings docs/layers.md`, DO NOT EDIT -->"
DOCS_END = "<!-- end of settings table -->"


def settings_markdown() -> str:
    """The settings table of docs/layers.md."""
    lines = ["| setting | values | default | Buildroot | what |", "| --- | --- | --- | --- | --- |"]
    for spec in SETTINGS:
        values = (spec.parse.__doc__ or "").strip()
        symbols = f"`{spec.buildroot.names}`" if spec.buildroot else ""
        lines.append(f"| `{spec.name}` | {values.replace('|', '/')} | {_default_text(spec)} | "
                     f"{symbols} | {spec.help} |")
    return "\n".join(lines) + "\n"


def with_settings_table(text: str) -> str:
    """`text` (docs/layers.md) with the generated table between its markers replaced."""
    start, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if start < 0 or end < start:
        raise UserError(f"no settings-table markers ({DOCS_BEGIN} ... {DOCS_END})")
    return text[:start] + DOCS_BEGIN + "\n" + settings_markdown() + text[end:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate the settings table of a docs page.")
    parser.add_argument("page", type=Path)
    page = parser.parse_args(argv).page
    page.write_text(with_settings_table(page.read_text()))


if __name__ == "__main__":
    main()
