"""The one settings table: --set overrides with provenance, errors that name the key and suggest
close names, config --show with help, the manifest's board record, and the Buildroot defconfig
and post scripts following the same values."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from checkout import REPO_ROOT
from images.buildroot.defconfig import compose_defconfig
from images.buildroot.external import render_external_tree
from images.buildroot.toolchain import choose_toolchain
from images.layers import load_config
from images.settings import (
    SETTINGS,
    SettingError,
    board_from_record,
    board_record,
    parse_assignment,
)

QEMU = "qemu/aarch64,core/minimal"


def test_set_overrides_the_layers_and_says_so():
    config = load_config(QEMU, strict=True, overrides=["image.rootfs_size=128M",
                                                       "board.device_trees=[\"a/b.dtb\"]",
                                                       "board.boot_tested=false"])
    assert config.image.rootfs_size == 128 << 20
    assert config.board.device_trees == ("a/b.dtb",)  # TOML values are read as TOML
    assert config.board.boot_tested is False
    origin = config.settings["image.rootfs_size"].origin
    assert str(origin) == "--set image.rootfs_size=128M"
    # Overriding a layer is what --set is for: not a conflict between layers, even with --strict.
    [override] = [o for o in config.overrides if o.name == "board.boot_tested"]
    assert not override.conflicting and override.previous.origin.layer == "board/qemu-aarch64"


@pytest.mark.parametrize("text, message", [
    ("image.rootfs_sise=128M", "unknown setting 'image.rootfs_sise'; did you mean image.rootfs_size"),
    ("rootfs_size=128M", "expected SECTION.KEY=VALUE, e.g. image.rootfs_size="),
    ("image.rootfs_size=big", "image.rootfs_size=big': expected a size such as 32M"),
    ("board.kernel=custom", "expected one of debian, source"),
    ("board.target=riscv64-linux-gnu", "expected a Linux target of toolchains/targets.toml"),
])
def test_set_errors_name_the_key_and_suggest(text, message):
    with pytest.raises(SettingError, match=message.replace("(", r"\(").replace(".", r"\.")) as error:
        parse_assignment(text)
    assert error.value.exit_code == 2


def _fleetforge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("fleetforge")), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_config_show_lists_every_setting_with_help_and_origin():
    result = _fleetforge("config", "--layers", QEMU, "--show", "--set", "image.persist_size=64M")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for spec in SETTINGS:
        [line] = [i for i, text in enumerate(lines) if text.startswith(f"{spec.name} = ")]
        assert lines[line + 1].strip() == spec.help  # the help, under its setting
    assert any(l.startswith('board.target = "aarch64-linux-gnu"') and
               "board/qemu-aarch64 (layers/board/qemu-aarch64/layer.toml:" in l for l in lines)
    assert any(l.startswith("image.persist_size = 64M") and "# --set image.persist_size=64M" in l
               for l in lines)
    assert any(l.startswith("image.boot_size = 64M") and l.endswith("# default") for l in lines)


def test_cli_build_set_error_is_one_line_exit_2():
    result = _fleetforge("build", "--layers", QEMU, "--workspace", "t-set",
                         "--set", "image.partition_tabel=mbr")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --set 'image.partition_tabel=mbr': unknown setting 'image.partition_tabel'; did "
        "you mean image.partition_table? (see `fleetforge config --show`)"]


def test_manifest_board_record_round_trips_every_setting():
    board = load_config("rockpro64,core/minimal").board
    record = json.loads(json.dumps(board_record(board)))
    assert record["arch"] == "aarch64" and record["debian_arch"] == "arm64"  # from the target
    assert board_from_record(record) == board
    assert {f.name for f in dataclasses.fields(board)} == \
        {"name"} | {s.key for s in SETTINGS if s.section == "board"}


def test_buildroot_follows_the_settings_and_the_overrides():
    config = load_config(QEMU, overrides=["image.rootfs_format=ext4", "board.console=ttyAMA1"])
    defconfig = compose_defconfig(config, choose_toolchain(config.board.target))
    settings = defconfig.settings
    assert settings["BR2_TARGET_ROOTFS_EXT2_4"].value == "y"
    assert settings["BR2_TARGET_GENERIC_GETTY_PORT"].value == '"ttyAMA1"'
    assert str(settings["BR2_TARGET_GENERIC_GETTY_PORT"].origin) == "--set board.console=ttyAMA1"
    assert settings["BR2_aarch64"].origin.layer == "board/qemu-aarch64"  # from board.target
    tree = render_external_tree(config, defconfig, Path("/WS"))
    for script in ("post-build.sh", "post-image.sh"):  # they rebuild the same configuration
        text = tree.files[f"board/fleetforge/{script}"].text
        assert "--set image.rootfs_format=ext4 --set board.console=ttyAMA1" in text
