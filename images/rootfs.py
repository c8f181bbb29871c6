"""The offline backend's root filesystem tree: Debian packages unpacked, pruned, busybox links,
users and identity, the layers' overlays (images/assemble.py finishes and packs it)."""
from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.tools import run_tool
from images.busybox import install_busybox
from images.debian import DebPackage
from images.layers import Setting
from images.overlay import copy_overlay

# Documentation, translations and charset converters are dead weight on a robot (Buildroot
# drops them too); gconv alone is ~8 MB of libc6.
PRUNE_GLOBS = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/i18n",
    "usr/share/lintian", "usr/share/bug", "usr/share/common-licenses", "usr/share/gcc",
    "usr/share/gdb", "usr/share/zsh", "usr/share/bash-completion", "usr/share/menu",
    "usr/lib/*/gconv", "usr/lib/locale", "lib/*/gconv", "etc/init.d/dropbear",
    "etc/default", "usr/lib/systemd", "lib/systemd", "etc/systemd",
)
SKELETON = {"dev": 0o755, "proc": 0o555, "sys": 0o555, "run": 0o755, "tmp": 0o1777, "var": 0o755,
            "mnt": 0o755, "root": 0o700, "root/.ssh": 0o700,
            "etc": 0o755, "home": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755}


@dataclass(frozen=True)
class RootfsInputs:
    """Everything that decides the root filesystem's content."""

    packages: tuple[DebPackage, ...]
    overlays: tuple[Path, ...]
    hostname: str
    issue: str = ""  # BR2_TARGET_GENERIC_ISSUE
    root_password: str = ""  # BR2_TARGET_GENERIC_ROOT_PASSWD (plain, or already crypt()ed "$...")


def generic_settings(buildroot: Mapping[str, Setting]) -> dict[str, str]:
    """RootfsInputs fields from Buildroot's "System configuration" symbols (merged settings)."""
    def text(symbol: str) -> str:
        setting = buildroot.get(symbol)
        return setting.text if setting is not None and setting.value != "n" else ""

    return {"issue": text("BR2_TARGET_GENERIC_ISSUE"),
            "root_password": text("BR2_TARGET_GENERIC_ROOT_PASSWD")}


def shadow_password(password: str) -> str:
    """/etc/shadow's field for root's password: empty = console login without one (Buildroot's
    default), "$..." = already hashed; otherwise SHA-512 crypt with a random salt, by OpenSSL
    (Python's crypt module is gone in 3.13). The password goes on stdin, never on a command line."""
    if not password or password.startswith("$"):
        return password
    return run_tool(["openssl", "passwd", "-6", "-stdin"], debian_package="openssl",
                    stdin=password.encode() + b"\n").strip()


def assemble_rootfs(inputs: RootfsInputs, tree: Path, log_file: Path) -> None:
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    for deb in inputs.packages:
        # dpkg-deb only unpacks; maintainer scripts (foreign binaries) are never run.
        run_tool(["dpkg-deb", "-x", deb.path, tree], debian_package="dpkg", log_file=log_file)
    for pattern in PRUNE_GLOBS:
        for path in tree.glob(pattern):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for rel, mode in SKELETON.items():
        (tree / rel).mkdir(parents=True, exist_ok=True)
        (tree / rel).chmod(mode)
    busybox = tree / "bin" / "busybox"
    if not busybox.is_file():
        raise UserError("no /bin/busybox in the root filesystem: a layer must enable BR2_PACKAGE_BUSYBOX")
    install_busybox(busybox, tree)
    _write_identity(inputs, tree)
    for overlay in inputs.overlays:
        copy_overlay(overlay, tree)


def _write_identity(inputs: RootfsInputs, tree: Path) -> None:
    etc = tree / "etc"
    # Root logs in on the console without a password (as Buildroot's default); SSH accepts keys only.
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    shadow = etc / "shadow"
    shadow.write_text(f"root:{shadow_password(inputs.root_password)}:19000:0:99999:7:::\n"
                      "nobody:*:19000:0:99999:7:::\n")
    shadow.chmod(0o600)
    (etc / "shells").write_text("/bin/sh\n/bin/ash\n")
    (etc / "hostname").write_text(inputs.hostname + "\n")
    (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{inputs.hostname}\n")
    if inputs.issue:
        (etc / "issue").write_text(inputs.issue + "\n\n")
