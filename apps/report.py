"""The size report a user reads: each binary's text, rodata, data, bss; -Oz and tuned side by
side; and the total the apps add to the image."""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from apps.build import AppBuild
from apps.description import TUNED
from apps.sizes import SectionSizes

COLUMNS = ("text", "rodata", "data", "bss")
# What shipped, in a word: clang -Oz, the tuned units linked, the tuner's whole program.
SHIPPED_LABEL = {"Oz": "-Oz", "tuned": "units", "whole-program": "program"}


def percent(before: int, after: int) -> str:
    return f"{100.0 * (after - before) / before:+.2f}%" if before else "n/a"


def size_table(builds: list[AppBuild]) -> tuple[Table, list[str]]:
    """The table, and the notes on binaries that ship -Oz code (and why)."""
    tuned = any(b.optimize == TUNED for b in builds)
    targets = ", ".join(sorted({b.target.name for b in builds}))
    table = Table(title=f"binaries for {targets} (bytes; flash = text + rodata + data; -Oz: "
                        f"its flash at clang -Oz)")
    names = [f"{b.app.name}/{binary.program}" for b in builds for binary in b.binaries]
    table.add_column("binary", no_wrap=True, min_width=max(len(n) for n in [*names, "total"]))
    for column in (*COLUMNS, "flash"):
        table.add_column(column, justify="right")
    if tuned:
        table.add_column("-Oz", justify="right")
        table.add_column("vs -Oz", justify="right", no_wrap=True)
        table.add_column("ships", no_wrap=True)
    total, total_oz = SectionSizes(), SectionSizes()
    notes = []
    for build in builds:
        for binary in build.binaries:
            shipped = binary.shipped
            total += shipped
            total_oz += binary.oz or shipped
            name = f"{build.app.name}/{binary.program}"
            row = [name, *(str(getattr(shipped, c)) for c in COLUMNS), str(shipped.flash)]
            if tuned:
                oz = binary.oz or shipped
                row += [str(oz.flash), percent(oz.flash, shipped.flash),
                        SHIPPED_LABEL.get(binary.kept, binary.kept)]
            if binary.note:
                notes.append(f"{name}: {binary.note}")
            table.add_row(*row)
    row = ["total", *(str(getattr(total, c)) for c in COLUMNS), str(total.flash)]
    if tuned:
        row += [str(total_oz.flash), percent(total_oz.flash, total.flash), ""]
    table.add_row(*row, style="bold")
    return table, notes


def write_size_report(builds: list[AppBuild], path: Path) -> None:
    """The sizes as JSON: each binary (shipped, -Oz, tuned) and the total the apps add."""
    binaries = [{"app": build.app.name, "target": build.target.name, "program": b.program,
                 "kept": b.kept, "note": b.note, "shipped": b.shipped.as_dict(),
                 **({"oz": b.oz.as_dict()} if b.oz else {}),
                 **({"tuned": b.tuned.as_dict()} if b.tuned else {})}
                for build in builds for b in build.binaries]
    total = sum((b.shipped for build in builds for b in build.binaries), SectionSizes())
    total_oz = sum((b.oz or b.shipped for build in builds for b in build.binaries), SectionSizes())
    path.write_text(json.dumps({"binaries": binaries, "total": total.as_dict(),
                                "total_oz": total_oz.as_dict()}, indent=1))


def print_sizes(builds: list[AppBuild], console: Console | None = None) -> None:
    console = console or Console()
    table, notes = size_table(builds)
    console.print(table)
    for note in notes:
        console.print(f"note: {note}", markup=False, highlight=False)
