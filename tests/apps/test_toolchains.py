"""toolchains/: detection of installed targets, the missing-package message, a board's target."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from checkout import LAYERS_DIR

import toolchains
from fleetforge.errors import UserError

FAKE_TARGET = """
[target.fake-linux-gnu]
description = "a target whose compiler is not installed"
arch = "fake"
debian_arch = "fake"
os = "linux"
gcc_prefix = "fake-linux-gnu-"
clang_target = "fake-linux-gnu"
sysroot = "/usr/fake-linux-gnu"
cflags = []
clang_cflags = []
llc_flags = []
kernel_arch = ""
kernel_image = ""
elf_machine = "EM_NONE"
link_args = []
link_libs = []
runner = []
packages = { "fake-linux-gnu-gcc" = "gcc-fake-linux-gnu", "fake-linux-gnu-g++" = "gcc-fake-linux-gnu", "/usr/fake-linux-gnu/include/stdio.h" = "libc6-dev-fake-cross" }
buildroot_arch = ""
buildroot_toolchain = ""
"""


@pytest.fixture
def fake_table(tmp_path: Path) -> Path:
    """The shipped table plus a target nothing provides (its [llvm] part stays real)."""
    table = tmp_path / "targets.toml"
    table.write_text(toolchains.TABLE.read_text() + FAKE_TARGET)
    return table


def test_every_shipped_target_is_detected_as_installed():
    # requirements/toolchains.apt and ml_tuner.apt install every part of every target here.
    for target in toolchains.targets().values():
        assert target.missing_packages() == [], target.name
        target.require()


def test_missing_parts_name_their_debian_packages_once(fake_table: Path):
    fake = toolchains.targets(fake_table)["fake-linux-gnu"]
    assert fake.missing_packages() == ["gcc-fake-linux-gnu", "libc6-dev-fake-cross"]
    with pytest.raises(UserError) as raised:
        fake.require()
    assert str(raised.value) == ("the fake-linux-gnu toolchain is not installed "
                                 "(run: apt-get install gcc-fake-linux-gnu libc6-dev-fake-cross)")


def test_fleetforge_toolchains_lists_each_target():
    done = subprocess.run([str(Path(sys.executable).parent / "fleetforge"), "toolchains"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    for name in toolchains.targets():
        assert name in done.stdout
    assert "apt-get install" not in done.stdout  # nothing missing on this machine


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown target 'riscv64-linux-gnu' .known: "
                                        "aarch64-linux-gnu, arm-linux-gnueabihf"):
        toolchains.target("riscv64-linux-gnu")


def test_every_board_layer_names_a_target_of_the_table():
    # The one place of triples and sysroots: a board names its target, nothing else.
    for layer in sorted(LAYERS_DIR.glob("board/*/layer.toml")):
        board = tomllib.loads(layer.read_text())["board"]
        assert toolchains.target(board["target"]).os == "linux", layer
        assert not {"triple", "sysroot", "gcc_prefix", "cross_compile"} & set(board), layer


def test_one_link_rule_for_every_target():
    # Bare metal: the runner's board memory map, vectors and newlib's semihosting runtime, found
    # where the target's gcc keeps them; Linux: no runtime after the objects.
    before, after = toolchains.target("thumbv7em-none-eabi").clang_link_parts()
    assert "-fuse-ld=lld" in before and any(a.endswith("rdimon-crt0.o") for a in before)
    assert all(Path(a).exists() for a in before + after if a.startswith("/"))
    assert "-lrdimon_nano" in after
    assert toolchains.target("aarch64-linux-gnu").clang_link_parts()[1] == []
