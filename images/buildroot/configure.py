"""Configure a workspace's Buildroot build: external tree, defconfig, `make defconfig`, symbol check."""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from images.buildroot.defconfig import BuildrootDefconfig, compose_defconfig
from images.buildroot.external import render_external_tree, write_external_tree
from images.buildroot.make import BuildrootBuild, run_make
from images.buildroot.toolchain import ToolchainChoice, choose_toolchain
from images.buildroot.tree import BuildrootTree
from images.kconfig_check import (
    SymbolProblem,
    compare_symbols,
    fail_if_strict,
    load_model,
    read_dotconfig,
)
from images.layers import MergedConfig, parse_fragment


@dataclass(frozen=True)
class ConfigureResult:
    """A configured Buildroot build and what became of every symbol the layers asked for."""

    build: BuildrootBuild
    defconfig: BuildrootDefconfig
    problems: list[SymbolProblem]


def buildroot_build(tree: BuildrootTree, workspace: Path) -> BuildrootBuild:
    """The fixed places of a workspace's Buildroot build."""
    external = workspace / "buildroot-external"
    return BuildrootBuild(
        tree=tree,
        output=workspace / "buildroot",
        external=external,
        defconfig=external / "configs" / "fleetforge_defconfig",
        log=workspace / "logs" / "buildroot.log",
    )


def buildroot_model_env(build: BuildrootBuild) -> dict[str, str]:
    """What Buildroot's Makefile gives its kconfig (COMMON_CONFIG_ENV), for kconfiglib."""
    return {
        "srctree": str(build.tree.path),
        "CONFIG_": "",  # Buildroot's symbols carry their BR2_ prefix in their names
        "BR2_VERSION_FULL": build.tree.version,
        "BASE_DIR": str(build.output),
        "BR2_BASE_DIR": str(build.output),
        "BR2_DEFCONFIG": str(build.defconfig),
        "BR2_CONFIG": str(build.dotconfig),
        "HOSTARCH": "x86_64",
        "HOST_GCC_VERSION": "12",
        "BR2_HIDE_SECONDARY_TARGET_OPTIONS": "n",
        "SKIP_LEGACY": "",
    }


def explain_problems(build: BuildrootBuild, defconfig: BuildrootDefconfig,
                     problems: list[SymbolProblem]) -> list[SymbolProblem]:
    """Re-run the comparison against a kconfiglib model of the tree to say why each one failed.

    Only when there are problems: parsing Buildroot's whole Kconfig takes seconds.
    """
    if not problems:
        return problems
    try:
        model = load_model(build.tree.path / "Config.in", env=buildroot_model_env(build),
                           config=build.dotconfig)
    except UserError:
        return problems  # the plain report still names every problem and its layer
    return compare_symbols(defconfig.settings, read_dotconfig(build.dotconfig), model)


def configure(
    config: MergedConfig,
    tree: BuildrootTree,
    workspace: Path,
    *,
    strict: bool = False,
    toolchain: ToolchainChoice | None = None,
    downloads: Sequence[tuple[str, str]] = (),
) -> ConfigureResult:
    """Write the external tree and defconfig, run `make defconfig`, check every symbol.

    `downloads`: symbols saying where sources come from (the offline mirror's, see mirror.py).
    """
    choice = toolchain or choose_toolchain(config.board.target)
    defconfig = compose_defconfig(config, choice, downloads)
    build = buildroot_build(tree, workspace)
    write_external_tree(render_external_tree(config, defconfig, workspace), build.external)
    run_make(build, ["defconfig"], variables={"BR2_DEFCONFIG": str(build.defconfig)})
    # What the layers resolved to, so savedefconfig can tell the user's later changes apart.
    shutil.copyfile(build.dotconfig, build.layers_dotconfig)
    problems = compare_symbols(defconfig.settings, read_dotconfig(build.dotconfig))
    problems = explain_problems(build, defconfig, problems)
    fail_if_strict(problems, "Buildroot dropped or changed symbols the layers asked for", strict)
    return ConfigureResult(build, defconfig, problems)


def changed_symbols(before: Path, after: Path, saved: Path, requested: set[str]) -> list[str]:
    """What the user changed (menuconfig), as fragment lines for a layer.

    `before`/`after` are the resolved .config before and after the change; `saved` is
    `make savedefconfig`'s minimal defconfig of `after`. A changed symbol is recorded as
    savedefconfig writes it; one that only changed as a consequence of another (a default that
    followed) is left out unless a layer asked for it, since Kconfig derives it again.
    """
    old, new = read_dotconfig(before), read_dotconfig(after)
    minimal = {s.name: s.config_line for s in parse_fragment(saved, "-", "BR2_")}
    lines: list[str] = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) == new.get(name):
            continue
        if name in minimal:
            lines.append(minimal[name])
        elif name in requested:
            value = new.get(name)
            lines.append(f"# {name} is not set" if value in (None, "n") else f"{name}={value}")
    return lines


def save_fragment(lines: list[str], fragment: Path) -> None:
    """Append menuconfig's changes to a layer's fragment (a new file is created)."""
    if not lines:
        return
    fragment.parent.mkdir(parents=True, exist_ok=True)
    existing = fragment.read_text(encoding="utf-8") if fragment.exists() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    header = "# Saved from `fleetforge buildroot.savedefconfig`.\n"
    fragment.write_text(existing + header + "\n".join(lines) + "\n", encoding="utf-8")
