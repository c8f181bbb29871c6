"""Progress display shared by long-running work (builds, downloads, uploads, training)."""
from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

# Progress goes to stderr so commands with machine-readable stdout (--json) stay clean.
console = Console(stderr=True)


def step_progress() -> Progress:
    """A progress display for counted steps (build stages, packages, epochs)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def transfer_progress() -> Progress:
    """A progress display for bytes moved (downloads, uploads)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
