"""Layer resolution, merging with provenance, and every bad-input error of the layer model."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from checkout import REPO_ROOT
from images.layers import LayerError, load_config, resolve_layers

BOARD_TOML = """
description = "test board"
[board]
target = "aarch64-linux-gnu"
compatible = "test-board"
"""


def make_layer(root: Path, name: str, toml: str = 'description = "x"\n', **files: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "layer.toml").write_text(textwrap.dedent(toml))
    for relative, content in files.items():
        target = path / relative.replace("__", "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(content))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    make_layer(tmp_path, "board/test-a", BOARD_TOML,
               buildroot__board_conf="BR2_aarch64=y\nBR2_TARGET_GENERIC_HOSTNAME=\"board\"\n")
    make_layer(tmp_path, "core/base", 'description = "base"\n[image]\nrootfs_size = "48M"\n',
               buildroot__base_conf="BR2_PACKAGE_BUSYBOX=y\nBR2_PACKAGE_DROPBEAR=y\n",
               kernel__base_conf="CONFIG_SQUASHFS=y\n")
    make_layer(tmp_path, "feature/app", 'description = "app"\ndepends = ["core/base"]\n',
               buildroot__app_conf="# BR2_PACKAGE_DROPBEAR is not set\nBR2_PACKAGE_LUA=y\n")
    return tmp_path


def rename_fragments(tree: Path) -> None:
    # make_layer turns "__" into "/" but keeps "_conf"; give fragments their real suffix.
    for path in tree.rglob("*_conf"):
        path.rename(path.with_name(path.name.removesuffix("_conf") + ".conf"))


@pytest.fixture
def layers_dir(tree: Path) -> Path:
    rename_fragments(tree)
    return tree


def test_dependencies_come_first_and_named_order_is_kept(layers_dir: Path) -> None:
    names = [layer.name for layer in resolve_layers(["test-a", "feature/app"], layers_dir)]
    assert names == ["board/test-a", "core/base", "feature/app"]


def test_short_names_resolve(layers_dir: Path) -> None:
    names = [layer.name for layer in resolve_layers(["test/a", "app"], layers_dir)]
    assert names == ["board/test-a", "core/base", "feature/app"]


def test_later_layer_overrides_and_provenance_is_kept(layers_dir: Path) -> None:
    config = load_config("test-a,feature/app", layers_dir=layers_dir)
    dropbear = config.buildroot["BR2_PACKAGE_DROPBEAR"]
    assert dropbear.value == "n"
    assert dropbear.origin.layer == "feature/app"
    assert dropbear.origin.line == 1
    assert config.enabled_packages() == ("BR2_PACKAGE_BUSYBOX", "BR2_PACKAGE_LUA")
    [override] = config.overrides
    assert override.previous.origin.layer == "core/base" and override.setting.value == "n"
    assert "overrides y from core/base" in str(override)
    assert config.image.rootfs_size == 48 << 20
    assert config.settings["image.rootfs_size"].origin.layer == "core/base"
    assert config.kernel["CONFIG_SQUASHFS"].origin.path.name == "base.conf"
    assert config.hostname == "board"


def test_strict_turns_a_conflict_into_an_error(layers_dir: Path) -> None:
    with pytest.raises(LayerError, match=r"conflicting layers .*BR2_PACKAGE_DROPBEAR"):
        load_config("test-a,feature/app", strict=True, layers_dir=layers_dir)


def test_unknown_layer_suggests_close_names(layers_dir: Path) -> None:
    with pytest.raises(LayerError, match=r"unknown layer 'core/bse'.*did you mean core/base"):
        resolve_layers(["core/bse"], layers_dir)


def test_dependency_cycle_is_printed(tmp_path: Path) -> None:
    make_layer(tmp_path, "core/one", 'description = "1"\ndepends = ["core/two"]\n')
    make_layer(tmp_path, "core/two", 'description = "2"\ndepends = ["core/three"]\n')
    make_layer(tmp_path, "core/three", 'description = "3"\ndepends = ["core/one"]\n')
    with pytest.raises(LayerError, match=r"dependency cycle: core/one -> core/two -> core/three -> core/one"):
        resolve_layers(["core/one"], tmp_path)


def test_malformed_fragment_line_names_file_and_line(layers_dir: Path) -> None:
    (layers_dir / "core/base/buildroot/base.conf").write_text("BR2_PACKAGE_BUSYBOX=y\nBR2_OOPS = yes\n")
    with pytest.raises(LayerError) as error:
        load_config("test-a,core/base", layers_dir=layers_dir)
    assert str(error.value).endswith("expected BR2_NAME=value or '# BR2_NAME is not set'")
    assert "core/base/buildroot/base.conf:2: malformed line 'BR2_OOPS = yes'" in str(error.value)


def test_kernel_fragment_must_use_config_prefix(layers_dir: Path) -> None:
    (layers_dir / "core/base/kernel/base.conf").write_text("BR2_SQUASHFS=y\n")
    with pytest.raises(LayerError, match=r"base.conf:1: symbol BR2_SQUASHFS does not start with CONFIG_"):
        load_config("test-a,core/base", layers_dir=layers_dir)


def test_missing_board_and_two_boards(layers_dir: Path) -> None:
    with pytest.raises(LayerError, match=r"no board layer in core/base"):
        load_config("core/base", layers_dir=layers_dir)
    make_layer(layers_dir, "board/test-b", BOARD_TOML)
    with pytest.raises(LayerError, match=r"two board layers at once: board/test-a, board/test-b"):
        load_config("test-a,test-b", layers_dir=layers_dir)


def test_bad_metadata_names_file_and_line(tmp_path: Path) -> None:
    make_layer(tmp_path, "board/bad", BOARD_TOML + 'qemu_cpux = "a53"\n')
    with pytest.raises(LayerError, match=r"board/bad/layer.toml:6: unknown \[board\] key 'qemu_cpux'; did you mean 'qemu_cpu'"):
        resolve_layers(["board/bad"], tmp_path)
    make_layer(tmp_path, "core/broken", 'description = "x"\ndepends = [\n')
    with pytest.raises(LayerError, match=r"core/broken/layer.toml:\d+: invalid TOML"):
        resolve_layers(["core/broken"], tmp_path)
    make_layer(tmp_path, "core/size", 'description = "x"\n[image]\nrootfs_size = "big"\n')
    with pytest.raises(LayerError, match=r"core/size/layer.toml:3: \[image\] rootfs_size: expected a size"):
        resolve_layers(["core/size"], tmp_path)


def test_unknown_dependency_names_the_layer_file(tmp_path: Path) -> None:
    make_layer(tmp_path, "core/needy", 'description = "x"\ndepends = ["core/nothere"]\n')
    with pytest.raises(LayerError, match=r"core/needy/layer.toml:2: unknown layer 'core/nothere'"):
        resolve_layers(["core/needy"], tmp_path)


def test_shipped_layers_merge_cleanly() -> None:
    for spec in ("qemu/aarch64,core/minimal", "qemu-x86_64,minimal", "pi4,core/minimal"):
        config = load_config(spec, strict=True)
        assert "BR2_PACKAGE_DROPBEAR" in config.enabled_packages()
        assert config.board.compatible.startswith("fleetforge-")


def run_invoke(*args: str) -> subprocess.CompletedProcess[str]:
    invoke = Path(sys.executable).with_name("invoke")
    return subprocess.run([str(invoke), *args], cwd=REPO_ROOT, capture_output=True, text=True)


def test_cli_reports_user_errors_in_one_line_without_traceback() -> None:
    result = run_invoke("config", "--layers", "qemu/aarch64,core/minimall")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: unknown layer 'core/minimall'; did you mean core/minimal, minimal? "
        "(see `fleetforge layers`)"
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_config_show_prints_provenance() -> None:
    result = run_invoke("config", "--layers", "qemu/aarch64,core/minimal", "--show")
    assert result.returncode == 0, result.stderr
    assert 'BR2_TARGET_GENERIC_HOSTNAME="robot"' in result.stdout
    assert "core/minimal (layers/core/minimal/buildroot/minimal.conf:6)" in result.stdout


def test_docs_settings_table_is_generated_from_the_table() -> None:
    from images.settings import SETTINGS, with_settings_table

    docs = (REPO_ROOT / "docs/layers.md").read_text()
    assert docs == with_settings_table(docs), \
        "docs/layers.md is stale: run python -m images.settings docs/layers.md"
    assert all(f"| `{spec.name}` |" in docs for spec in SETTINGS)
