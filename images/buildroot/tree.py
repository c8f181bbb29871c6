"""Find and check the Buildroot source tree a build uses; fetch the pinned release."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.tools import run_tool

# The release FleetForge's layers are checked against (an LTS branch; see docs/buildroot.md).
PINNED_RELEASE = "2026.02.3"
PINNED_COMMIT = "679b9ead7620bbf193620d1ebf56f53c1764d37a"
BUILDROOT_GIT_URL = "https://gitlab.com/buildroot.org/buildroot.git"
ENV_VAR = "BUILDROOT_DIR"


class BuildrootTreeError(UserError):
    """The Buildroot tree is missing, is not a Buildroot tree, or cannot be fetched."""


@dataclass(frozen=True)
class BuildrootTree:
    """A Buildroot source tree and the release it is."""

    path: Path
    version: str  # BR2_VERSION from its Makefile, e.g. 2026.02.3


_VERSION = re.compile(r"^export BR2_VERSION := (\S+)$", re.MULTILINE)


def read_tree(path: Path) -> BuildrootTree:
    """Check that `path` is a Buildroot tree; one clear line when it is not."""
    if not path.exists():
        raise BuildrootTreeError(
            f"Buildroot tree {path} does not exist (run `fleetforge buildroot.fetch --dest {path}` "
            f"to clone release {PINNED_RELEASE})")
    if not path.is_dir():
        raise BuildrootTreeError(f"Buildroot tree {path} is not a directory")
    makefile = path / "Makefile"
    try:
        found = _VERSION.search(makefile.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        found = None
    if found is None or not (path / "Config.in").is_file() \
            or not (path / "support" / "scripts" / "br2-external").is_file():
        raise BuildrootTreeError(
            f"{path} is not a Buildroot tree (expected a Makefile setting BR2_VERSION, Config.in "
            f"and support/scripts/br2-external; `fleetforge buildroot.fetch` clones {PINNED_RELEASE})")
    return BuildrootTree(path.resolve(), found.group(1))


def locate_tree(explicit: str | Path | None = None) -> BuildrootTree:
    """The tree named by --buildroot-dir, else by $BUILDROOT_DIR."""
    given = explicit or os.environ.get(ENV_VAR)
    if not given:
        raise BuildrootTreeError(
            f"no Buildroot tree given: pass --buildroot-dir DIR or set {ENV_VAR} "
            f"(`fleetforge buildroot.fetch` clones release {PINNED_RELEASE})")
    return read_tree(Path(given).expanduser())


def fetch_release(dest: Path, release: str = PINNED_RELEASE) -> BuildrootTree:
    """Clone the pinned release into `dest` (needs internet); an existing tree is kept."""
    if dest.exists() and any(dest.iterdir()):
        tree = read_tree(dest)
        if tree.version != release:
            raise BuildrootTreeError(
                f"{dest} already holds Buildroot {tree.version}, not {release}; remove it or pick "
                f"another --dest")
        return tree
    partial = dest.with_name(dest.name + ".partial")
    run_tool(["rm", "-rf", partial], debian_package="coreutils")
    run_tool(["git", "clone", "--depth", "1", "--branch", release, BUILDROOT_GIT_URL, partial],
             debian_package="git")
    commit = run_tool(["git", "-C", partial, "rev-parse", "HEAD"], debian_package="git").strip()
    if release == PINNED_RELEASE and commit != PINNED_COMMIT:
        raise BuildrootTreeError(
            f"tag {release} of {BUILDROOT_GIT_URL} is commit {commit}, expected {PINNED_COMMIT}; "
            f"refusing an unexpected tree (left in {partial})")
    partial.rename(dest)
    return read_tree(dest)
