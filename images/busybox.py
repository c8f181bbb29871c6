"""Install a target-arch busybox into a tree with its applet links, without running the binary."""
from __future__ import annotations

import shutil
from pathlib import Path

from fleetforge.errors import UserError

# Applets that scripts and the kernel expect under /sbin (init, getty, ...); every applet is
# also linked in /bin, so PATH=/bin finds all of them.
SBIN_APPLETS = ("init", "getty", "halt", "poweroff", "reboot", "switch_root", "insmod", "modprobe",
                "rmmod", "lsmod", "ifconfig", "route", "udhcpc", "mdev", "sysctl", "klogd",
                "syslogd", "hwclock", "losetup", "blockdev", "fdisk", "mkswap", "swapon")


def applet_names(binary: Path) -> list[str]:
    """Applet names from busybox's sorted, NUL-separated name table (it begins "[", "[[").

    The binary is for the target architecture, so `busybox --list` cannot run on the build host.
    """
    data = binary.read_bytes()
    start = data.find(b"[\0[[\0")
    if start < 0:
        raise UserError(f"cannot find busybox's applet table in {binary}")
    names: list[str] = []
    pos = start
    while True:
        end = data.index(b"\0", pos)
        if end == pos:
            break
        names.append(data[pos:end].decode("ascii"))
        pos = end + 1
    if names != sorted(names) or "sh" not in names:
        raise UserError(f"unexpected busybox applet table in {binary}")
    return names


def install_busybox(binary: Path, root: Path) -> list[str]:
    """Make `root`/bin/busybox and links for all its applets; existing files win (real tools)."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "sbin").mkdir(parents=True, exist_ok=True)
    target = root / "bin" / "busybox"
    if target.resolve() != binary.resolve():
        target.unlink(missing_ok=True)
        shutil.copy2(binary, target)
    names = applet_names(binary)
    for name in names:
        links = [root / "bin" / name]
        if name in SBIN_APPLETS:
            links.append(root / "sbin" / name)
        for link in links:
            if not link.exists() and not link.is_symlink():
                link.symlink_to("/bin/busybox")
    return names
