"""The compile service against real clang: the floor is real clang -Oz, sizes, the LTO flag."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import toolchains
from ml_tuner.build import (Sizes, compile_ir, compile_source, drop_lto_post_link_flag,
                            elf_sizes, emit_raw_ir)
from ml_tuner.knobs import OZ, Candidate, load_knobs

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("target", ["aarch64-linux-gnu", "thumbv7em-none-eabi"])
def test_empty_candidate_is_clang_oz_itself(target: str, tmp_path: Path):
    # The tuner measures raw IR + knobs; with no knob that must be clang -Oz's own object, SLP
    # vectorizer included (opt's default<Oz> lacks it: 144 instead of 104 bytes on aarch64).
    source = DATA / "slp.c"
    flags = ("-ffunction-sections",)
    space = load_knobs().for_target(target)
    compile_source(source, target, flags, tmp_path / "clang.o")
    emit_raw_ir(source, target, flags, tmp_path / "raw.ll")
    compile_ir(tmp_path / "raw.ll", target, flags, space, OZ, tmp_path / "tuner.o")
    assert (tmp_path / "tuner.o").read_bytes() == (tmp_path / "clang.o").read_bytes()
    if target == "aarch64-linux-gnu":
        compile_ir(tmp_path / "raw.ll", target, flags, space, Candidate.of({"slp": "off"}),
                   tmp_path / "no-slp.o")
        assert elf_sizes(tmp_path / "clang.o").text < elf_sizes(tmp_path / "no-slp.o").text


def test_sizes_of_a_hand_checked_object(tmp_path: Path):
    # `add w0, w1, w0; ret` (8 bytes), a 4-byte int in .data, 4 bytes of .bss (not flash), and
    # no unwind tables asked for.
    source = tmp_path / "s.c"
    source.write_text("int counter = 7; int zeroed;\nint add(int a, int b) { return a + b; }\n")
    compile_source(source, "aarch64-linux-gnu", ("-fno-asynchronous-unwind-tables",),
                   tmp_path / "s.o")
    assert elf_sizes(tmp_path / "s.o") == Sizes(text=8, flash=12)


def test_lto_post_link_flag_is_dropped_from_the_flag_list_only():
    text = ('!llvm.module.flags = !{!0, !1, !6}\n!0 = !{i32 1, !"wchar_size", i32 4}\n'
            '!1 = !{i32 8, !"PIC Level", i32 2}\n!6 = !{i32 1, !"LTOPostLink", i32 1}\n')
    out = drop_lto_post_link_flag(text)
    assert out.splitlines()[0] == "!llvm.module.flags = !{!0, !1}"
    assert drop_lto_post_link_flag(out) == out


def test_clang_link_runs_a_bare_metal_program(tmp_path: Path):
    # The thumb link (lld, newlib-nano, rdimon semihosting) gives a program that QEMU's MPS2
    # board runs with arguments and whose exit status comes back.
    source = tmp_path / "hello.c"
    source.write_text('#include <stdio.h>\nint main(int argc, char **argv) {\n'
                      '  printf("%d %s\\n", argc, argv[1]); return 3; }\n')
    target = toolchains.target("thumbv7em-none-eabi")
    subprocess.run(target.clang_link_args(["-Oz", str(source)], tmp_path / "hello.elf"),
                   check=True)
    done = subprocess.run(target.run_command(tmp_path / "hello.elf", ["robot"]),
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (3, "2 robot\n")
