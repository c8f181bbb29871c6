"""The SCons tool on a sample app (tests/apps/data/sample: a library, a program that tests itself):
plain -Oz and tuned builds for aarch64, armhf and Cortex-M, checked with pyelftools and run under
qemu-user or on QEMU's MPS2 AN386 board; the tuned store's hits on a clean rebuild."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from elf_checks import check_program, symbol_names

import toolchains
from apps.build import AppBuild, build_app
from apps.description import load_app
from ml_tuner.run import run_program

SAMPLE = Path(__file__).parent / "data" / "layers" / "app" / "sample"
TARGETS = tuple(toolchains.target(name) for name in
                ("aarch64-linux-gnu", "arm-linux-gnueabihf", "thumbv7em-none-eabi"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tuned-store")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AppBuild]:
    builds = build_app(load_app(SAMPLE), tmp_path_factory.mktemp("plain"), targets=TARGETS,
                       optimize="Oz")
    return {b.target.name: b for b in builds}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, store: Path) -> dict[str, AppBuild]:
    builds = build_app(load_app(SAMPLE), tmp_path_factory.mktemp("tuned"), targets=TARGETS,
                       optimize="tuned", store=store)
    return {b.target.name: b for b in builds}


def _passes(program: Path, target: toolchains.Target) -> str:
    run = run_program(target.name, program)
    assert run.status == 0 and run.output.rstrip().endswith("PASS"), f"{program}: {run}"
    return run.output


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_plain_build_is_a_complete_program_for_the_target(plain, target):
    program = plain[target.name].program("sample")
    check_program(program, target)
    _passes(program, target)
    # --gc-sections: the library's unused adler32 is not in the program.
    assert "crc32" in symbol_names(program) and "adler32" not in symbol_names(program)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_tuned_program_behaves_like_oz_and_is_never_larger(tuned, target):
    build = tuned[target.name]
    compare = build.build_dir / "bin" / "compare"
    oz_output = _passes(compare / "Oz" / "sample", target)
    assert _passes(compare / "tuned" / "sample", target) == oz_output
    check_program(build.program("sample"), target)
    assert _passes(build.program("sample"), target) == oz_output
    binary = build.binaries[0]
    assert binary.shipped.flash <= binary.oz.flash
    assert binary.shipped == (binary.tuned if binary.kept == "tuned" else binary.oz)
    for unit in binary.units:
        kept = unit["tuned"] if unit["kept"] == "tuned" else unit["oz"]
        assert kept["flash"] <= unit["oz"]["flash"], unit["source"]


def test_the_tuner_shrinks_the_sample_somewhere(tuned):
    # The tuned path is exercised: within the sample's budget the tuner beats clang -Oz on some
    # unit of some target (armhf's sort.c with the shipped models), and that program ships tuned.
    won = [u for build in tuned.values() for u in build.binaries[0].units if u["kept"] == "tuned"]
    assert won and all(u["tuned"]["flash"] < u["oz"]["flash"] for u in won)
    assert any(build.binaries[0].kept == "tuned" for build in tuned.values())


def test_a_clean_rebuild_in_another_folder_takes_every_unit_from_the_store(tuned, store, tmp_path):
    aarch64 = toolchains.target("aarch64-linux-gnu")
    copy = tmp_path / "sample"
    shutil.copytree(SAMPLE, copy)  # another folder: the store is keyed by IR, not by path
    (again,) = build_app(load_app(copy), tmp_path / "again", targets=[aarch64],
                         optimize="tuned", store=store)
    units = again.binaries[0].units
    assert units and all(u["cached"] for u in units)
    first = tuned[aarch64.name].program("sample").read_bytes()
    assert again.program("sample").read_bytes() == first


def test_whole_program_tuning_ships_the_smallest_build_that_behaves_like_oz(store, tmp_path):
    armhf = toolchains.target("arm-linux-gnueabihf")
    copy = tmp_path / "sample"
    shutil.copytree(SAMPLE, copy)
    toml = copy / "app.toml"
    toml.write_text(toml.read_text().replace("whole_program = false", "whole_program = true"))
    (build,) = build_app(load_app(copy), tmp_path / "build", targets=[armhf], optimize="tuned",
                         store=store)
    binary = build.binaries[0]
    compare = build.build_dir / "bin" / "compare"
    oz_output = _passes(compare / "Oz" / "sample", armhf)
    assert _passes(compare / "whole-program" / "sample", armhf) == oz_output
    report = json.loads((build.build_dir / "size-report.json").read_text())["binaries"][0]
    smallest = min(report["candidates"].values(), key=lambda sizes: sizes["flash"])
    assert binary.shipped.flash == min(smallest["flash"], binary.oz.flash)
    assert binary.shipped.flash <= binary.oz.flash
