"""Assemble the root filesystem tree from Debian packages, overlays and hooks; pack it."""
from __future__ import annotations

import os
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
            "boot": 0o755, "persist": 0o755, "mnt": 0o755, "root": 0o700, "root/.ssh": 0o700,
            "etc": 0o755, "home": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755}


@dataclass(frozen=True)
class RootfsInputs:
    """Everything that decides the root filesystem's content."""

    packages: tuple[DebPackage, ...]
    overlays: tuple[Path, ...]
    post_build_hooks: tuple[Path, ...]
    hostname: str
    authorized_key: str
    release: dict[str, str]  # written to /etc/fleetforge/release (board, compatible, layers...)
    hook_env: dict[str, str]
    issue: str = ""  # BR2_TARGET_GENERIC_ISSUE
    root_password: str = ""  # BR2_TARGET_GENERIC_ROOT_PASSWD (plain, or already crypt()ed "$...")
    dhcp_interface: str = ""  # BR2_SYSTEM_DHCP; empty: every interface


def generic_settings(buildroot: Mapping[str, Setting]) -> dict[str, str]:
    """RootfsInputs fields from Buildroot's "System configuration" symbols (merged settings)."""
    def text(symbol: str) -> str:
        setting = buildroot.get(symbol)
        return setting.text if setting is not None and setting.value != "n" else ""

    return {"issue": text("BR2_TARGET_GENERIC_ISSUE"),
            "root_password": text("BR2_TARGET_GENERIC_ROOT_PASSWD"),
            "dhcp_interface": text("BR2_SYSTEM_DHCP")}


def _shadow_hash(password: str) -> str:
    """Empty: console login without a password (Buildroot's default); otherwise SHA-512 crypt."""
    if not password or password.startswith("$"):
        return password
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt: still the stdlib's SHA-512 crypt
        import crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


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
    env = {**os.environ, **inputs.hook_env, "TARGET_DIR": str(tree)}
    for hook in inputs.post_build_hooks:
        run_tool(["sh", hook, tree], debian_package="dash", env=env, log_file=log_file)


def _write_identity(inputs: RootfsInputs, tree: Path) -> None:
    etc = tree / "etc"
    # Root logs in on the console without a password (as Buildroot's default); SSH accepts keys only.
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    shadow = etc / "shadow"
    shadow.write_text(f"root:{_shadow_hash(inputs.root_password)}:19000:0:99999:7:::\n"
                      "nobody:*:19000:0:99999:7:::\n")
    shadow.chmod(0o600)
    (etc / "shells").write_text("/bin/sh\n/bin/ash\n")
    (etc / "hostname").write_text(inputs.hostname + "\n")
    (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{inputs.hostname}\n")
    if inputs.issue:
        (etc / "issue").write_text(inputs.issue + "\n\n")
    keys = tree / "root" / ".ssh" / "authorized_keys"
    keys.write_text(inputs.authorized_key.strip() + "\n")
    keys.chmod(0o600)
    (etc / "fleetforge").mkdir(exist_ok=True)
    (etc / "fleetforge" / "release").write_text(
        "# Generated by images/rootfs.py, DO NOT EDIT.\n"
        + "".join(f"{k}={v}\n" for k, v in inputs.release.items())
    )
    # Read by S40network: DHCP on this interface only (empty: on every interface).
    (etc / "fleetforge" / "network").write_text(
        "# Generated by images/rootfs.py from BR2_SYSTEM_DHCP, DO NOT EDIT.\n"
        f"DHCP_INTERFACE={inputs.dhcp_interface}\n"
    )


def pack_rootfs(tree: Path, output: Path, fmt: str, size: int, log_file: Path) -> None:
    """Pack the tree as squashfs (read-only, compressed) or ext4, owned by root, reproducibly."""
    output.unlink(missing_ok=True)
    if fmt == "squashfs":
        run_tool(["mksquashfs", tree, output, "-noappend", "-all-root", "-comp", "xz",
                  "-no-progress", "-mkfs-time", "0", "-all-time", "0", "-processors", "2"],
                 debian_package="squashfs-tools", log_file=log_file)
    elif fmt == "ext4":
        run_tool(["mkfs.ext4", "-q", "-F", "-d", tree, "-L", "rootfs", "-E", "root_owner=0:0",
                  output, f"{size // 1024}k"], debian_package="e2fsprogs", log_file=log_file)
    else:
        raise UserError(f"unsupported rootfs_format '{fmt}' (squashfs or ext4)")
    if output.stat().st_size > size:
        raise UserError(f"root filesystem is {output.stat().st_size >> 20} MiB, larger than the "
                        f"rootfs partition ({size >> 20} MiB): raise [image] rootfs_size")
