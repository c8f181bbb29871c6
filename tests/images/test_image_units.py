"""Small parts of the offline backend: overlays, the cpio writer, busybox applets, clean."""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetforge.errors import UserError
from checkout import REPO_ROOT
from images.busybox import applet_names, install_busybox
from images.cpio import write_initramfs
from images.overlay import copy_overlay


def test_later_overlay_replaces_earlier_files_and_keeps_modes(tmp_path):
    first, second, tree = tmp_path / "a", tmp_path / "b", tmp_path / "tree"
    (first / "etc").mkdir(parents=True)
    (second / "etc").mkdir(parents=True)
    (first / "etc/motd").write_text("from a\n")
    (first / "etc/only-a").write_text("a\n")
    (second / "etc/motd").write_text("from b\n")
    script = second / "etc/run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    tree.mkdir()
    (tree / "etc").mkdir()
    os.symlink("/nowhere", tree / "etc/motd")  # a link in the tree is replaced, not followed
    assert copy_overlay(first, tree) == 2
    assert copy_overlay(second, tree) == 2
    assert (tree / "etc/motd").read_text() == "from b\n"
    assert (tree / "etc/only-a").read_text() == "a\n"
    assert os.access(tree / "etc/run.sh", os.X_OK)


def test_initramfs_archive_reads_back_with_the_host_cpio(tmp_path):
    source = tmp_path / "src"
    (source / "bin").mkdir(parents=True)
    (source / "dev").mkdir()
    (source / "init").write_text("#!/bin/sh\necho hi\n")
    (source / "init").chmod(0o755)
    os.symlink("busybox", source / "bin/sh")
    output = tmp_path / "initramfs.img"
    write_initramfs(source, output)
    listing = subprocess.run(["cpio", "-itv"], input=gzip.decompress(output.read_bytes()),
                             capture_output=True, check=True).stdout.decode()
    lines = {line.split()[-1] if "->" not in line else line.split()[-3]: line
             for line in listing.splitlines()}
    assert lines["init"].startswith("-rwxr-xr-x") and " root " in lines["init"]
    assert lines["bin/sh"].startswith("l") and lines["bin/sh"].endswith("-> busybox")
    assert lines["dev/console"].startswith("c")
    write_initramfs(source, tmp_path / "again.img")
    assert (tmp_path / "again.img").read_bytes() == output.read_bytes()  # reproducible


def test_busybox_applet_table_is_read_without_running_the_binary(tmp_path):
    fake = tmp_path / "busybox"
    fake.write_bytes(b"\x7fELF junk" + b"[\0[[\0ash\0cat\0init\0sh\0udhcpc\0\0" + b"more")
    assert applet_names(fake) == ["[", "[[", "ash", "cat", "init", "sh", "udhcpc"]
    root = tmp_path / "root"
    install_busybox(fake, root)
    assert os.readlink(root / "bin/cat") == "/bin/busybox"
    assert os.readlink(root / "sbin/init") == "/bin/busybox"
    assert not (root / "sbin/cat").exists()
    bad = tmp_path / "notbusybox"
    bad.write_bytes(b"no table here")
    with pytest.raises(UserError, match="applet table"):
        applet_names(bad)


def test_clean_removes_build_output_but_keeps_the_ssh_key(tmp_path):
    ws = tmp_path / "one"
    for sub in ("build/rootfs", "images", "logs", "ssh"):
        (ws / sub).mkdir(parents=True)
    (ws / "ssh/id_ed25519").write_text("key")
    invoke = Path(sys.executable).with_name("invoke")
    result = subprocess.run([str(invoke), "clean", "--workspace", "one"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "FLEETFORGE_WORKSPACES": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in ws.iterdir()) == ["ssh"]
    assert result.stdout.count("removed ") == 3


def test_boot_failure_line_is_read_whole_when_the_console_splits_it(tmp_path):
    # A serial console delivers a line in pieces; the check must not report "...partition fou".
    import time

    from images.qemu import wait_healthy

    guest = subprocess.Popen(
        ["sh", "-c", "printf 'FLEETFORGE_INIT_FAILED: no boot partition fou'; sleep 0.5; "
                     "printf 'nd (is the disk attached?)\\n'; sleep 30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with pytest.raises(UserError) as error:
            wait_healthy(guest, 1, tmp_path / "console.log", time.monotonic(), 20)
    finally:
        guest.kill()
        guest.wait()
    assert "no boot partition found (is the disk attached?) (console:" in str(error.value)


def test_sha256_of_a_sparse_image_hashes_its_holes_as_zeros(tmp_path):
    import hashlib

    from fleetforge.hashing import sha256_file

    image = tmp_path / "disk.img"
    with open(image, "wb") as handle:  # data, a hole, data, a trailing hole
        handle.write(b"boot" * 1000)
        handle.seek(3 << 20)
        handle.write(os.urandom(1 << 20) + b"tail")
        handle.truncate(9 << 20)
    assert sha256_file(image) == hashlib.sha256(image.read_bytes()).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()
