"""ELF checks of built programs with pyelftools: machine, entry point, unresolved symbols."""
from __future__ import annotations

from pathlib import Path

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

import toolchains

# What a program starts at: the C library's start-up (glibc's crt1, newlib's rdimon crt0).
ENTRY_SYMBOL = "_start"


def _symbols(elf: ELFFile, section_name: str) -> list:
    section = elf.get_section_by_name(section_name)
    return list(section.iter_symbols()) if section is not None else []


def _defined_dynamic_names(library: Path) -> set[str]:
    with library.open("rb") as handle:
        elf = ELFFile(handle)
        return {s.name for s in _symbols(elf, ".dynsym") if s["st_shndx"] != "SHN_UNDEF"}


def _needed_libraries(elf: ELFFile) -> list[str]:
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            return [tag.needed for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
    return []


def _find_library(name: str, target: toolchains.Target) -> Path:
    for folder in ("lib", "usr/lib", f"lib/{target.name}", f"usr/lib/{target.name}"):
        candidate = Path(target.sysroot) / folder / name
        if candidate.is_file():
            return candidate
    raise AssertionError(f"{name} (DT_NEEDED) is not in the {target.name} sysroot")


def check_program(path: Path, target: toolchains.Target) -> None:
    """The program is for `target`'s machine, starts at its entry symbol, and every symbol it
    references is defined in it or, for a dynamic program, in a library it names (DT_NEEDED)."""
    with path.open("rb") as handle:
        elf = ELFFile(handle)
        assert elf["e_machine"] == target.elf_machine, f"{path}: machine {elf['e_machine']}"
        assert elf["e_type"] in ("ET_EXEC", "ET_DYN"), f"{path}: {elf['e_type']} is no program"
        symbols = _symbols(elf, ".symtab")
        entry = {s.name: s["st_value"] for s in symbols}.get(ENTRY_SYMBOL)
        assert entry is not None, f"{path}: no {ENTRY_SYMBOL}"
        # Thumb code addresses carry the Thumb bit in e_entry.
        assert elf["e_entry"] & ~1 == entry & ~1, f"{path}: e_entry is not {ENTRY_SYMBOL}"
        executable = [seg for seg in elf.iter_segments()
                      if seg["p_type"] == "PT_LOAD" and seg["p_flags"] & 1]
        assert any(seg["p_vaddr"] <= elf["e_entry"] & ~1 < seg["p_vaddr"] + seg["p_memsz"]
                   for seg in executable), f"{path}: the entry point is outside executable code"
        unresolved = {s.name.split("@")[0] for s in symbols
                      if s["st_shndx"] == "SHN_UNDEF" and s.name
                      and s["st_info"]["bind"] != "STB_WEAK"}
        needed = _needed_libraries(elf)
    provided: set[str] = set()
    for name in needed:
        provided |= _defined_dynamic_names(_find_library(name, target))
    missing = unresolved - provided
    assert not missing, f"{path}: undefined symbols {sorted(missing)}"


def symbol_names(path: Path) -> set[str]:
    with path.open("rb") as handle:
        return {s.name for s in _symbols(ELFFile(handle), ".symtab")}
