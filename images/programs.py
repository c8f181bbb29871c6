"""Programs copied out of a root filesystem tree with the shared libraries they need (what
initramfs-tools' copy_exec does), for the initramfs; read with pyelftools, nothing is run."""
from __future__ import annotations

import shutil
from pathlib import Path

from elftools.elf.elffile import ELFFile

from fleetforge.errors import UserError


def library_dirs(root: Path) -> list[Path]:
    """Where the dynamic loader of `root` looks: its ld.so.conf.d entries (Debian's multiarch
    directories), then lib and usr/lib (Buildroot's layout)."""
    dirs: list[Path] = []
    for conf in sorted((root / "etc" / "ld.so.conf.d").glob("*.conf")):
        for line in conf.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("/"):
                dirs.append(root / line.lstrip("/"))
    return dirs + [root / "lib", root / "usr" / "lib"]


def interpreter(binary: Path) -> str | None:
    """The ELF interpreter a dynamically linked `binary` names (e.g. /lib/ld-linux-aarch64.so.1)."""
    with open(binary, "rb") as handle:
        for segment in ELFFile(handle).iter_segments():
            if segment.header.p_type == "PT_INTERP":
                return segment.get_interp_name()
    return None


def needed_libraries(binary: Path, root: Path) -> list[Path]:
    """The interpreter and every shared library `binary` needs, transitively, found in `root`."""
    dirs = library_dirs(root)
    found: list[Path] = []
    pending = [binary]
    while pending:
        with open(pending.pop(), "rb") as handle:
            elf = ELFFile(handle)
            names: list[str] = []
            for segment in elf.iter_segments():
                if segment.header.p_type == "PT_INTERP":
                    names.append(Path(segment.get_interp_name()).name)
            dynamic = elf.get_section_by_name(".dynamic")
            if dynamic is not None:
                names += [tag.needed for tag in dynamic.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
        for name in names:
            path = next((d / name for d in dirs if (d / name).exists()), None)
            if path is None:
                raise UserError(f"{binary.name} needs {name}, which is not in the root filesystem",
                                where=str(root))
            if path not in found:
                found.append(path)
                pending.append(path.resolve())
    return found


PROGRAM_DIRS = ("sbin", "usr/sbin", "bin", "usr/bin")  # where a program is looked for, in order


def find_program(name: str, root: Path) -> Path:
    """`name` in the root filesystem's program directories (Debian and Buildroot put some programs
    in different ones, e.g. kexec in /sbin and /usr/sbin)."""
    for directory in PROGRAM_DIRS:
        path = root / directory / name
        if path.is_file():
            return path
    raise UserError(f"the initramfs needs the program '{name}', which is not in the root filesystem "
                    f"({', '.join('/' + d for d in PROGRAM_DIRS)}): enable the package that "
                    "provides it in a layer", where=str(root))


def copy_programs(programs: list[str], root: Path, dest: Path) -> None:
    """Copy each program (a name, or a path inside `root`) and its libraries to the same paths below
    `dest`, plus the interpreter at the exact path the kernel loads it from. Copies, not links: an
    absolute link would point into the build host."""
    for program in programs:
        source = root / program.lstrip("/") if "/" in program else find_program(program, root)
        if not source.is_file():
            raise UserError(f"the initramfs needs {program}, which is not in the root filesystem",
                            where=str(root))
        binaries = [source, *needed_libraries(source.resolve(), root)]
        for path in binaries:
            target = dest / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path.resolve(), target)
        loader = interpreter(source.resolve())
        if loader is not None:
            target = dest / loader.lstrip("/")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                resolved = next(p for p in binaries[1:] if p.name == Path(loader).name)
                shutil.copy2(resolved.resolve(), target)


def read_program_lists(overlays: tuple[Path, ...]) -> list[str]:
    """Program names from every overlay's etc/fleetforge/programs.d/*.conf (a later layer's file of
    the same name replaces an earlier one, as for modules-load.d)."""
    merged: dict[str, Path] = {}
    for overlay in overlays:
        for conf in sorted((overlay / "etc" / "fleetforge" / "programs.d").glob("*.conf")):
            merged[conf.name] = conf
    programs: list[str] = []
    for conf in (merged[k] for k in sorted(merged)):
        for number, line in enumerate(conf.read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if "/" in line or not line.replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise UserError(f"expected a program name (looked up in "
                                f"{', '.join('/' + d for d in PROGRAM_DIRS)}), got '{line}'",
                                where=f"{conf}:{number}")
            if line not in programs:
                programs.append(line)
    return programs
