"""Hand a kernel built from source to the offline backend in the shape of its Debian kernel."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from images.debian import DebPackage
from images.kconfig_check import format_report
from images.kernel import Kernel
from images.kernel_source.build import KernelArtifacts, build_kernel_from_source
from images.layers import MergedConfig


@dataclass(frozen=True)
class SourceKernel(Kernel):
    """The offline backend's Kernel, for a kernel built from Debian's Linux source (with the
    build's artifacts: its modules tree goes into the root filesystem)."""

    artifacts: KernelArtifacts | None = None


def offline_kernel(config: MergedConfig, build_dir: Path, log_file: Path | None = None,
                   *, strict: bool = False) -> SourceKernel:
    """Build (or reuse from the cache) the board's kernel and describe it for the offline backend."""
    artifacts = build_kernel_from_source(config, build_dir / "kernel", strict=strict,
                                         log_file=log_file)
    if log_file is not None:
        with open(log_file, "a", encoding="utf-8") as log:
            log.write(format_report(list(artifacts.problems), "kernel configuration") + "\n")
    package = DebPackage(name="linux (built from source)",
                         version=artifacts.source.split(" ", 1)[1],
                         arch=config.board.debian_arch, path=artifacts.config)
    return SourceKernel(package=package, version=artifacts.release, image=artifacts.image,
                        modules_root=artifacts.modules_dir, artifacts=artifacts)
