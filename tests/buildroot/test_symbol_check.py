"""Dropped-symbol detection on a real kconfiglib evaluation of a small Kconfig tree (tests/buildroot/data)."""
from __future__ import annotations

from pathlib import Path

import pytest

from images.kconfig_check import (
    SymbolCheckError,
    compare_symbols,
    evaluate_defconfig,
    fail_if_strict,
    format_report,
    read_dotconfig,
)
from images.layers import load_config

DATA = Path(__file__).parent / "data"
KCONFIG = DATA / "kconfig" / "Config.in"
TOY_LAYERS = DATA / "layers"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """The toy layers' defconfig resolved by kconfiglib: (config, model, resolved .config)."""
    config = load_config("board/toy", layers_dir=TOY_LAYERS)
    folder = tmp_path_factory.mktemp("toy")
    defconfig = folder / "defconfig"
    defconfig.write_text("\n".join(s.config_line for s in config.buildroot.values()) + "\n")
    model = evaluate_defconfig(KCONFIG, defconfig, folder / ".config", env={"CONFIG_": ""})
    return config, model, read_dotconfig(folder / ".config")


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line == text)


def test_every_fate_is_reported_with_layer_file_line_and_reason(evaluated):
    config, model, resolved = evaluated
    problems = {p.setting.name: p for p in compare_symbols(config.buildroot, resolved, model)}
    apps = TOY_LAYERS / "core" / "toyapp" / "buildroot" / "apps.conf"
    board = TOY_LAYERS / "board" / "toy" / "buildroot" / "board.conf"
    expected = {
        "BR2_PACKAGE_DROPBAER": (apps, None, "unknown symbol; did you mean BR2_PACKAGE_DROPBEAR?"),
        "BR2_PACKAGE_CURL_TLS": (apps, None, "unmet dependency: depends on BR2_PACKAGE_OPENSSL"),
        "BR2_PACKAGE_ZLIB": (apps, "y", "forced on by select from BR2_PACKAGE_DROPBEAR"),
        "BR2_x86_64": (apps, "n", "another choice member is selected: BR2_aarch64"),
        "BR2_PACKAGE_GRUB2": (board, None, "unmet dependency: depends on BR2_x86_64"),
        "BR2_ROOTFS_SIZE_MB": (board, "64", "out of range 8..512"),
    }
    assert set(problems) == set(expected)
    for name, (path, actual, reason) in expected.items():
        problem = problems[name]
        assert problem.setting.origin.path == path
        assert problem.setting.origin.line == _line_of(path, problem.setting.config_line)
        assert problem.actual == actual, name
        assert problem.reason == reason, name
    layer_of = {name: p.setting.origin.layer for name, p in problems.items()}
    assert layer_of["BR2_PACKAGE_GRUB2"] == "board/toy"
    assert layer_of["BR2_PACKAGE_DROPBAER"] == "core/toyapp"


def test_symbols_set_as_asked_are_not_reported(evaluated):
    config, model, resolved = evaluated
    reported = {p.setting.name for p in compare_symbols(config.buildroot, resolved, model)}
    # Kept: a string, a bool, and the choice member that won.
    for name in ("BR2_TARGET_GENERIC_HOSTNAME", "BR2_PACKAGE_DROPBEAR", "BR2_aarch64"):
        assert name not in reported
    assert resolved["BR2_TARGET_GENERIC_HOSTNAME"] == '"toy"'


def test_problem_line_names_file_line_layer_and_outcome(evaluated):
    config, model, resolved = evaluated
    problem = next(p for p in compare_symbols(config.buildroot, resolved, model)
                   if p.setting.name == "BR2_ROOTFS_SIZE_MB")
    text = str(problem)
    assert "board/toy/buildroot/board.conf:" in text
    assert "BR2_ROOTFS_SIZE_MB=1024 asked by layer board/toy was changed to 64" in text
    assert "\n" not in text


def test_without_a_model_problems_still_name_their_origin(evaluated):
    config, _, resolved = evaluated
    problems = compare_symbols(config.buildroot, resolved)
    dropped = next(p for p in problems if p.setting.name == "BR2_PACKAGE_DROPBAER")
    assert dropped.dropped and dropped.actual is None
    assert "unknown symbol" in dropped.reason and "unmet dependency" in dropped.reason
    assert len(problems) == 6


def test_strict_turns_the_first_problem_into_one_line_error(evaluated):
    config, model, resolved = evaluated
    problems = compare_symbols(config.buildroot, resolved, model)
    with pytest.raises(SymbolCheckError) as error:
        fail_if_strict(problems, "Buildroot dropped or changed symbols", strict=True)
    message = str(error.value)
    assert "\n" not in message and "(and 5 more)" in message and "apps.conf:" in message
    fail_if_strict(problems, "not strict", strict=False)  # only reports
    report = format_report(problems, "check")
    assert report.startswith("check: 6 symbol(s) dropped or changed:")
    assert len(report.splitlines()) == 7


def test_string_and_number_values_compare_as_kconfig_does(tmp_path):
    config = load_config("board/toy", layers_dir=TOY_LAYERS)
    hostname = config.buildroot["BR2_TARGET_GENERIC_HOSTNAME"]
    assert compare_symbols({hostname.name: hostname}, {hostname.name: '"toy"'}) == []
    changed = compare_symbols({hostname.name: hostname}, {hostname.name: '"other"'})
    assert [p.actual for p in changed] == ['"other"']
    size = config.buildroot["BR2_ROOTFS_SIZE_MB"]
    assert compare_symbols({size.name: size}, {size.name: "0x400"}) == []  # 1024 == 0x400


def test_not_set_request_is_satisfied_by_absence(evaluated):
    config, _, _ = evaluated
    zlib = config.buildroot["BR2_PACKAGE_ZLIB"]
    assert zlib.value == "n"
    assert compare_symbols({zlib.name: zlib}, {}) == []
    assert compare_symbols({zlib.name: zlib}, {zlib.name: "n"}) == []
    assert len(compare_symbols({zlib.name: zlib}, {zlib.name: "y"})) == 1


def test_linux_style_tree_with_the_modules_keyword(tmp_path):
    """Linux's Kconfig (CONFIG_ prefix, `modules` keyword) is evaluated and explained too."""
    from images.layers import Origin, Setting

    fragment = tmp_path / "fragment.config"
    fragment.write_text("CONFIG_MODULES=y\nCONFIG_SQUASHFS=y\nCONFIG_DUMMY=m\n")
    requested = {
        name: Setting(name, value, Origin("board/toy", fragment, line))
        for line, (name, value) in enumerate(
            [("CONFIG_MODULES", "y"), ("CONFIG_SQUASHFS", "y"), ("CONFIG_DUMMY", "m")], 1)
    }
    env = {"CONFIG_": "CONFIG_"}
    kconfig = DATA / "linux-kconfig" / "Kconfig"
    model = evaluate_defconfig(kconfig, fragment, tmp_path / ".config", env=env)
    with pytest.raises(Exception, match="modules"):
        evaluate_defconfig(kconfig, fragment, tmp_path / "x", env=env, linux=False)
    resolved = read_dotconfig(tmp_path / ".config")
    assert resolved["CONFIG_DUMMY"] == "m"  # tristate works: `modules` was understood
    problems = compare_symbols(requested, resolved, model, symbol_prefix="CONFIG_")
    assert [(p.setting.name, p.reason) for p in problems] == [
        ("CONFIG_SQUASHFS", "unmet dependency: depends on CONFIG_MISC_FILESYSTEMS")]
