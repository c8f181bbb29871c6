"""Human-readable summaries of a finished build."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from images.build import BuildResult

ROOTFS_NAMES = ("rootfs.squashfs", "rootfs.ext4")


def print_build_summary(result: BuildResult) -> None:
    manifest = result.manifest
    table = Table(title=f"workspace {manifest.workspace}: {', '.join(manifest.layers)}")
    table.add_column("artifact")
    table.add_column("size", justify="right")
    table.add_column("sha256")
    for artifact in manifest.artifacts:
        table.add_row(artifact.path, f"{artifact.size / (1 << 20):.1f} MiB", artifact.sha256[:16])
    console = Console()
    console.print(table)
    console.print(f"{len(manifest.packages)} Debian packages, kernel {manifest.kernel_version}; "
                  f"built in {result.seconds:.1f} s into {result.workspace.images_dir}")
