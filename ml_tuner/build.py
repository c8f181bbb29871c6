"""Compile and link for a target exactly as the user's clang -Oz build does, with a candidate's knobs.

Every command here is a clang (or lld through clang) command line built from the toolchains table,
the user's flags and the candidate's flags; nothing else compiles in ml_tuner.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.common.exceptions import ELFError

import toolchains
from fleetforge.errors import UserError
from fleetforge.tools import run_tool
from ml_tuner import llvm
from ml_tuner.knobs import Candidate, KnobSpace

OZ_FLAG = "-Oz"
# Unoptimized IR exactly as clang -Oz hands it to its optimizer (functions carry optsize/minsize).
RAW_IR_FLAGS = ("-Xclang", "-disable-llvm-passes", "-emit-llvm", "-S")
QUIET = ("-Wno-unused-command-line-argument",)
# The linker's own optimizer must not run again on a module the tuner has optimized.
LTO_NO_PIPELINE = "-Wl,--lto-newpm-passes=verify"
_FLAGS_LINE = re.compile(r"^!llvm\.module\.flags = !\{(.*)\}$", re.M)


@dataclass(frozen=True)
class Sizes:
    """Bytes of an ELF file (object or executable): `flash` is every allocated byte that is
    stored (code, constants, initialized data, unwind tables, dynamic linking tables: all
    SHF_ALLOC sections but NOBITS .bss, which takes RAM only); `text` the executable part of it."""

    text: int
    flash: int

    def as_dict(self) -> dict[str, int]:
        return {"text": self.text, "flash": self.flash}


def elf_sizes(path: Path) -> Sizes:
    """Sizes of an object file or executable, read with pyelftools."""
    text = flash = 0
    try:
        with path.open("rb") as handle:
            for section in ELFFile(handle).iter_sections():
                flags = section["sh_flags"]
                if not flags & SH_FLAGS.SHF_ALLOC or section["sh_type"] == "SHT_NOBITS":
                    continue
                flash += section["sh_size"]
                if flags & SH_FLAGS.SHF_EXECINSTR:
                    text += section["sh_size"]
    except (OSError, ELFError) as error:
        raise UserError(f"not a readable ELF file ({error})", where=str(path)) from None
    return Sizes(text, flash)


def clang(target: str) -> list[str]:
    """clang and the target's own flags (toolchains/targets.toml)."""
    return toolchains.target(target).clang_args()


def compile_source(source: Path, target: str, cflags: Sequence[str], output: Path,
                   extra: Sequence[str] = (), timeout: float | None = 600) -> None:
    """clang -Oz CFLAGS -c SOURCE: the user's own compile (extra: e.g. -flto)."""
    run_tool([*clang(target), *cflags, OZ_FLAG, *extra, "-c", source, "-o", output],
             debian_package=llvm.CLANG_PACKAGE, timeout=timeout)


def emit_raw_ir(source: Path, target: str, cflags: Sequence[str], output: Path) -> None:
    """The IR clang -Oz optimizes for SOURCE, before any optimization (textual .ll)."""
    run_tool([*clang(target), *cflags, OZ_FLAG, *RAW_IR_FLAGS, "-c", source, "-o", output],
             debian_package=llvm.CLANG_PACKAGE, timeout=600)


def compile_ir(ir: Path, target: str, cflags: Sequence[str], space: KnobSpace,
               candidate: Candidate, output: Path, *, emit_llvm: bool = False,
               text: bool = False, timeout: float | None = None) -> None:
    """clang -Oz CFLAGS KNOBS on raw IR: an object (or optimized IR with emit_llvm: bitcode, or
    textual IR with text as well).

    On the raw IR of a unit, the empty candidate gives the same object as compiling the source.
    """
    stage = "ir" if emit_llvm else None
    what = (["-emit-llvm"] + (["-S"] if text else [])) if emit_llvm else []
    run_tool([*clang(target), *cflags, *QUIET, OZ_FLAG, *space.flags(candidate, stage), *what,
              "-c", ir, "-o", output], debian_package=llvm.CLANG_PACKAGE, timeout=timeout)


def link(target: str, inputs: Sequence[str | Path], flags: Sequence[str], output: Path,
         timeout: float | None = 600) -> None:
    """Link objects (or LTO bitcode, with -flto among `flags`) into an executable with lld."""
    run_tool([*toolchains.target(target).clang_link_args([*flags, OZ_FLAG, *inputs], output)],
             debian_package=llvm.LLD_PACKAGE, timeout=timeout)


def link_optimized_ir(target: str, ir: Path, flags: Sequence[str], space: KnobSpace,
                      candidate: Candidate, output: Path, timeout: float | None = None) -> None:
    """Link an already optimized whole-program module through the linker's LTO code generator
    (as the user's LTO link does: same code generation options, same library resolution), with
    the candidate's code-generation knobs and no second optimization pipeline."""
    codegen = [f"-Wl,-mllvm,{value}" for value in space.flags(candidate, "codegen")[1::2]]
    link(target, [ir], [*flags, "-flto", LTO_NO_PIPELINE, *codegen], output, timeout)


def merge_program(target: str, objects: Sequence[Path], flags: Sequence[str],
                  output: Path) -> None:
    """The program's LTO bitcode objects merged and internalized as the linker's LTO sees them,
    as textual IR ready for another optimization (no code generated, nothing linked)."""
    link(target, objects, [*flags, "-flto", LTO_NO_PIPELINE, "-Wl,--plugin-opt=emit-llvm"],
         output.with_suffix(".bc"))
    run_tool([*clang(target), *RAW_IR_FLAGS, "-c", output.with_suffix(".bc"), "-o", output],
             debian_package=llvm.CLANG_PACKAGE)
    output.with_suffix(".bc").unlink()
    output.write_text(drop_lto_post_link_flag(output.read_text(encoding="utf-8")),
                      encoding="utf-8")


def drop_lto_post_link_flag(ll_text: str) -> str:
    """Remove the "LTOPostLink" module flag the linker adds, so the module can go through the
    linker's LTO once more (it adds the flag again; two copies are an error)."""
    ids = set(re.findall(r'^(!\d+) = !\{i32 \d+, !"LTOPostLink", i32 \d+\}$', ll_text, re.M))
    if not ids:
        return ll_text

    def strip(match: re.Match[str]) -> str:
        kept = [item for item in match.group(1).split(", ") if item not in ids]
        return f"!llvm.module.flags = !{{{', '.join(kept)}}}"

    return _FLAGS_LINE.sub(strip, ll_text, count=1)
