"""What a binary costs on the device: text, rodata, data and bss of its ELF sections (pyelftools)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from fleetforge.errors import UserError


@dataclass(frozen=True)
class SectionSizes:
    """Bytes of a binary's allocated sections, by kind. Flash holds text, rodata and data
    (.eh_frame, .dynsym, .rel* count as rodata: they are loaded read-only); bss is RAM only."""

    text: int = 0
    rodata: int = 0
    data: int = 0
    bss: int = 0

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data

    def __add__(self, other: SectionSizes) -> SectionSizes:
        return SectionSizes(self.text + other.text, self.rodata + other.rodata,
                            self.data + other.data, self.bss + other.bss)

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "flash": self.flash}

    @classmethod
    def from_dict(cls, values: dict[str, int]) -> SectionSizes:
        return cls(values["text"], values["rodata"], values["data"], values["bss"])


def section_sizes(path: Path) -> SectionSizes:
    """Sizes of an ELF file's allocated sections (an object, a library member or a program)."""
    text = rodata = data = bss = 0
    try:
        with path.open("rb") as handle:
            for section in ELFFile(handle).iter_sections():
                flags = section["sh_flags"]
                if not flags & SH_FLAGS.SHF_ALLOC:
                    continue
                size = section["sh_size"]
                if flags & SH_FLAGS.SHF_EXECINSTR:
                    text += size
                elif section["sh_type"] == "SHT_NOBITS":
                    bss += size
                elif flags & SH_FLAGS.SHF_WRITE:
                    data += size
                else:
                    rodata += size
    except (OSError, ELFError) as error:
        raise UserError(f"not a readable ELF file ({error})", where=str(path)) from None
    return SectionSizes(text, rodata, data, bss)
