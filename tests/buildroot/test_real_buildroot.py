"""Against a real Buildroot tree (BUILDROOT_DIR set; skipped otherwise). Offline: no download is needed.

    BUILDROOT_DIR=/path/to/buildroot-2026.02.3 ./forge test tests/buildroot
"""
from __future__ import annotations

import os
import shutil

import pytest

from checkout import LAYERS_DIR
from images.buildroot.configure import changed_symbols, configure
from images.buildroot.make import run_make, show_info
from images.buildroot.tree import PINNED_RELEASE, locate_tree
from images.kconfig_check import SymbolCheckError, evaluate_defconfig, read_dotconfig
from images.layers import load_all_layers, load_config

pytestmark = pytest.mark.skipif(not os.environ.get("BUILDROOT_DIR"),
                                reason="set BUILDROOT_DIR to a Buildroot tree to run these")
BOARDS = sorted(layer.name for layer in load_all_layers(LAYERS_DIR) if layer.is_board)


@pytest.fixture(scope="module")
def tree():
    found = locate_tree(None)
    if found.version != PINNED_RELEASE:
        pytest.skip(f"BUILDROOT_DIR is Buildroot {found.version}, the layers are checked against "
                    f"{PINNED_RELEASE}")
    return found


@pytest.mark.parametrize("board", BOARDS)
def test_every_board_configures_with_no_dropped_symbol(tree, board, tmp_path):
    result = configure(load_config(f"{board},core/minimal"), tree, tmp_path, strict=True)
    assert result.problems == []
    info = show_info(result.build)
    assert {"busybox", "dropbear", "linux", "rootfs-squashfs"} <= set(info)
    assert "toolchain-external-bootlin" in info  # the prebuilt toolchain, no toolchain build


def test_kconfiglib_resolves_the_defconfig_as_make_does(tree, tmp_path):
    result = configure(load_config("qemu/aarch64,core/minimal"), tree, tmp_path)
    from images.buildroot.configure import buildroot_model_env
    by_make = read_dotconfig(result.build.dotconfig)
    by_kconfiglib = tmp_path / "kconfiglib.config"
    evaluate_defconfig(tree.path / "Config.in", result.build.defconfig, by_kconfiglib,
                       env=buildroot_model_env(result.build))
    resolved = read_dotconfig(by_kconfiglib)
    for name in result.defconfig.settings:
        assert resolved.get(name) == by_make.get(name), name


def test_dropped_symbols_name_layer_line_and_reason(tree, tmp_path):
    layers = tmp_path / "layers"
    shutil.copytree(LAYERS_DIR, layers)
    bad = layers / "core" / "minimal" / "buildroot" / "zz-bad.conf"
    bad.write_text("BR2_PACKAGE_DROPBAER=y\nBR2_TARGET_GRUB2_I386_PC=y\n")
    config = load_config("qemu/aarch64,core/minimal", layers_dir=layers)
    result = configure(config, tree, tmp_path / "ws")
    problems = {p.setting.name: p for p in result.problems}
    assert set(problems) == {"BR2_PACKAGE_DROPBAER", "BR2_TARGET_GRUB2_I386_PC"}
    assert problems["BR2_PACKAGE_DROPBAER"].reason == \
        "unknown symbol; did you mean BR2_PACKAGE_DROPBEAR?"
    assert problems["BR2_TARGET_GRUB2_I386_PC"].reason.startswith("unmet dependency")
    assert (problems["BR2_TARGET_GRUB2_I386_PC"].setting.origin.path, 
            problems["BR2_TARGET_GRUB2_I386_PC"].setting.origin.line) == (bad, 2)
    with pytest.raises(SymbolCheckError, match="zz-bad.conf:1"):
        configure(config, tree, tmp_path / "ws", strict=True)


def test_savedefconfig_records_only_what_the_user_changed(tree, tmp_path):
    config = load_config("qemu/aarch64,core/minimal")
    result = configure(config, tree, tmp_path)
    build = result.build
    # What menuconfig would do: enable a package (it selects others), then resolve.
    with open(build.dotconfig, "a") as dotconfig:
        dotconfig.write("BR2_PACKAGE_HTOP=y\n")
    run_make(build, ["olddefconfig"])
    saved = tmp_path / "saved_defconfig"
    run_make(build, ["savedefconfig"], variables={"BR2_DEFCONFIG": str(saved)})
    lines = changed_symbols(build.layers_dotconfig, build.dotconfig, saved, set(config.buildroot))
    assert lines == ["BR2_PACKAGE_HTOP=y"]  # ncurses follows from the select: not recorded
