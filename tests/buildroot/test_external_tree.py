"""The generated BR2_EXTERNAL tree and defconfig of every shipped board, checked exactly.

Expected trees live in tests/buildroot/data/expected/<board>/ with @REPO@, @PYTHON@ and
@WORKSPACE@ standing for machine-specific paths. After a deliberate change to a layer or to the
generator, regenerate them with FLEETFORGE_UPDATE_GOLDEN=1 and review the diff.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from fleetforge.errors import UserError

from checkout import LAYERS_DIR, REPO_ROOT
from images.buildroot.defconfig import compose_defconfig
from images.buildroot.external import render_external_tree, write_external_tree
from images.buildroot.toolchain import choose_toolchain
from images.layers import load_all_layers, load_config
from synthetic_buildroot import buildroot_output

EXPECTED = Path(__file__).parent / "data" / "expected"
TOY_LAYERS = Path(__file__).parent / "data" / "layers"
WORKSPACE = Path("/WORKSPACE")
SHIPPED_BOARDS = sorted(layer.name for layer in load_all_layers(LAYERS_DIR) if layer.is_board)


def _portable(text: str, digest: str) -> str:
    # The layers' digest changes with any edit of a layer file, even a comment.
    return (text.replace(sys.executable, "@PYTHON@").replace(str(REPO_ROOT), "@REPO@")
            .replace(str(WORKSPACE), "@WORKSPACE@").replace(digest, "@DIGEST@"))


def _render(layers: str, layers_dir: Path = LAYERS_DIR, workspace: Path = WORKSPACE):
    config = load_config(layers, layers_dir=layers_dir)
    defconfig = compose_defconfig(config, choose_toolchain(config.board.target))
    return config, defconfig, render_external_tree(config, defconfig, workspace)


@pytest.mark.parametrize("board", SHIPPED_BOARDS)
def test_external_tree_of_every_shipped_board_is_exact(board):
    config, _, tree = _render(f"{board},core/minimal")
    expected_dir = EXPECTED / board.replace("/", "-")
    digest = config.digest()
    rendered = {path: _portable(item.text, digest) for path, item in tree.files.items()}
    if os.environ.get("FLEETFORGE_UPDATE_GOLDEN") == "1":
        for path, text in rendered.items():
            (expected_dir / path).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / path).write_text(text)
    expected = {str(p.relative_to(expected_dir)): p.read_text()
                for p in sorted(expected_dir.rglob("*")) if p.is_file()}
    assert sorted(rendered) == sorted(expected), f"files of {board}'s tree differ"
    for path, text in rendered.items():
        assert text == expected[path], f"{board}: {path} differs from {expected_dir / path}"


def test_defconfig_lists_each_symbol_once_with_layers_after_generated_ones():
    config, defconfig, tree = _render("qemu/aarch64,core/minimal")
    text = tree.files["configs/fleetforge_defconfig"].text
    symbols = [line.split("=")[0] if "=" in line else line.split()[1]
               for line in text.splitlines() if line.startswith("BR2_") or line.endswith("is not set")]
    assert len(symbols) == len(set(symbols))
    assert symbols.index("BR2_TOOLCHAIN_EXTERNAL") < symbols.index("BR2_aarch64")
    assert set(config.buildroot) <= set(symbols)
    assert text.splitlines()[0].endswith("DO NOT EDIT.")


def test_busybox_applets_the_agent_needs_are_built_by_buildroot():
    """Buildroot's default busybox lacks applets the OTA agent runs (timeout, stat, blockdev):
    its first Buildroot image rolled back every update ("timeout: not found")."""
    _, defconfig, tree = _render("qemu/aarch64,core/minimal")
    assert "BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES" not in defconfig.settings  # none asked for
    _, defconfig, tree = _render("qemu/aarch64,core/minimal,feature/ota")
    assert defconfig.settings["BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES"].value.endswith(
        '/board/fleetforge/busybox.fragment"')
    fragment = tree.files["board/fleetforge/busybox.fragment"].text.splitlines()
    assert {"CONFIG_TIMEOUT=y", "CONFIG_STAT=y", "CONFIG_BLOCKDEV=y"} <= set(fragment)
    assert "# feature/ota: layers/feature/ota/busybox/agent.conf" in fragment


def test_layer_overlays_hooks_and_values_flow_into_the_tree(tmp_path):
    # A copy of the shipped layers plus one layer with every part FleetForge wires into Buildroot.
    layers = tmp_path / "layers"
    import shutil
    shutil.copytree(LAYERS_DIR, layers)
    extra = layers / "core" / "extra"
    (extra / "root_overlay" / "etc").mkdir(parents=True)
    (extra / "root_overlay" / "etc" / "motd").write_text("hi\n")
    (extra / "hooks").mkdir()
    (extra / "hooks" / "post-build.sh").write_text("#!/bin/sh\ntouch \"$1/extra-ran\"\n")
    (extra / "buildroot").mkdir()
    # A layer's value replaces a generated one; its toolchain replaces FleetForge's choice.
    (extra / "buildroot" / "x.conf").write_text(
        'BR2_ROOTFS_POST_IMAGE_SCRIPT="board/mine.sh"\nBR2_TOOLCHAIN_BUILDROOT_GLIBC=y\n')
    (extra / "kernel").mkdir()
    (extra / "kernel" / "k.conf").write_text("# CONFIG_SQUASHFS_XZ is not set\n")
    (extra / "layer.toml").write_text('description = "extra"\ndepends = ["core/minimal"]\n')
    workspace = tmp_path / "workspaces" / "extra"
    config, defconfig, tree = _render("qemu/aarch64,core/extra", layers, workspace)
    settings = defconfig.settings
    overlays = " ".join(str(p) for p in config.root_overlays)
    assert overlays.endswith(str(extra / "root_overlay"))  # last: it wins over core/minimal's
    assert settings["BR2_ROOTFS_OVERLAY"].value == f'"{overlays}"'
    assert settings["BR2_ROOTFS_POST_IMAGE_SCRIPT"].value == '"board/mine.sh"'
    assert settings["BR2_ROOTFS_POST_IMAGE_SCRIPT"].origin.layer == "core/extra"
    assert "BR2_TOOLCHAIN_EXTERNAL" not in settings
    assert "layers' BR2_TOOLCHAIN_" in defconfig.toolchain.note
    post_build = tree.files["board/fleetforge/post-build.sh"]
    assert post_build.executable and "images.buildroot.post_scripts post-build" in post_build.text
    fragment = tree.files["board/fleetforge/linux.fragment"].text
    assert "# CONFIG_SQUASHFS_XZ is not set" in fragment and "CONFIG_SQUASHFS_XZ=y" not in fragment

    # Written to disk: executables keep their mode; the post-build script finds the layers where
    # configure found them (a copy here, not on the default search path) and runs their hooks.
    out = write_external_tree(tree, tmp_path / "ext")
    script = out / "board" / "fleetforge" / "post-build.sh"
    assert os.access(script, os.X_OK)
    # Buildroot's output when it runs the script: the kernel built, the skeleton's /etc.
    base, binaries, target = buildroot_output(tmp_path / "buildroot", ())
    import subprocess
    env = {k: v for k, v in os.environ.items() if k != "FLEETFORGE_LAYER_PATH"}
    subprocess.run(["sh", str(script), str(target)], check=True,
                   env={**env, "BASE_DIR": str(base), "BINARIES_DIR": str(binaries)})
    assert (target / "extra-ran").exists()
    assert (target / "etc" / "resolv.conf").is_symlink()  # core/minimal's hook ran first
    release = (target / "etc" / "fleetforge" / "release").read_text().splitlines()
    assert "COMPATIBLE=fleetforge-qemu-aarch64" in release
    assert f"CONFIG_DIGEST={config.digest()}" in release
    key = (workspace / "ssh" / "id_ed25519.pub").read_text()
    assert (target / "root" / ".ssh" / "authorized_keys").read_text() == key
    assert (target / "usr/lib/fleetforge/boot/initramfs.img").is_file()  # the slot's own boot files


def test_writing_replaces_an_old_tree_whole(tmp_path):
    _, _, tree = _render("qemu/aarch64,core/minimal")
    dest = tmp_path / "ext"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    write_external_tree(tree, dest)
    assert not (dest / "stale.txt").exists()
    assert (dest / "external.desc").read_text().startswith("name: FLEETFORGE\n")
    assert not (tmp_path / "ext.partial").exists()


def test_bootlin_toolchain_per_arch_and_internal_fallback():
    assert ("BR2_TOOLCHAIN_EXTERNAL_BOOTLIN_AARCH64_GLIBC_STABLE", "y") in \
        choose_toolchain("aarch64-linux-gnu").symbols
    fallback = choose_toolchain("thumbv7em-none-eabi")
    assert fallback.symbols == () and "builds its own toolchain" in fallback.note
    with pytest.raises(UserError, match="unknown toolchain 'gnu'"):
        choose_toolchain("aarch64-linux-gnu", "gnu")
    with pytest.raises(UserError, match="unknown target 'riscv64-linux-gnu'"):
        choose_toolchain("riscv64-linux-gnu", "debian")
    with pytest.raises(UserError, match="thumbv7em-none-eabi is bare metal"):
        choose_toolchain("thumbv7em-none-eabi", "debian")
