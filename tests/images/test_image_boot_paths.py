"""Real boots of copies of the built image: A/B fallback across reboots, a slot whose content was
changed behind its verity root hash, and a broken disk."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from checkout import REPO_ROOT
from images.qemu import BootedMachine
from images.workspace import Workspace

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


def _copy_workspace(built_image, base, name: str) -> Workspace:
    source = built_image.workspace
    copy = Workspace.named(name, base=base)
    shutil.copytree(source.images_dir, copy.images_dir)
    shutil.copytree(source.ssh_key.parent, copy.ssh_key.parent)
    return copy


def _partition_offset(disk: Path, name: str) -> int:
    """Byte offset of the GPT partition called `name` (docs/ab-boot.md's names)."""
    with open(disk, "rb") as handle:
        handle.seek(512)
        entry_lba, count, size = struct.unpack_from("<QII", handle.read(92), 72)
        handle.seek(entry_lba * 512)
        for _ in range(count):
            entry = handle.read(size)
            if entry[56:128].decode("utf-16-le").rstrip("\0") == name:
                return struct.unpack_from("<Q", entry, 32)[0] * 512
    raise AssertionError(f"no partition {name} in {disk}")


def _ssh(machine: BootedMachine, command: str) -> str:
    return machine.run(command)


def test_slot_marked_bad_falls_back_to_b_and_persist_survives(built_image, tmp_path):
    ws = _copy_workspace(built_image, tmp_path, "fallback")
    first = BootedMachine.start(ws, timeout=180)
    try:
        assert first.check.slot == "A"
        # The marker came after the boot step's decision, and the helper goes through the agent's
        # lock anyway (docs/ab-boot.md): nothing can commit A after we mark it bad.
        assert first.check.outcome == "good"
        host_key = _ssh(first, "cat /persist/dropbear/dropbear_ed25519_host_key | sha256sum")
        _ssh(first, ". /usr/lib/fleetforge/bootstate.sh && bootstate_mark_bad /boot/bootstate A"
                    " && echo kept > /persist/marker && sync")
    finally:
        first.stop(power_off=True)
    second = BootedMachine.start(ws, timeout=180)
    try:
        assert second.check.slot == "B"
        assert _ssh(second, "cat /run/fleetforge/booted-slot").strip() == "B"
        state = _ssh(second, "cat /boot/bootstate")
        # B is committed by S90markgood, or with feature/ota by the agent, which also puts it first.
        assert "BOOT_A_LEFT=0" in state and "BOOT_B_LEFT=3" in state
        assert _ssh(second, "cat /persist/marker").strip() == "kept"
        assert _ssh(second, "cat /persist/dropbear/dropbear_ed25519_host_key | sha256sum") == host_key
    finally:
        second.stop(power_off=True)


def test_a_slot_changed_behind_its_root_hash_is_refused_and_the_other_slot_boots(built_image, tmp_path):
    ws = _copy_workspace(built_image, tmp_path, "corrupted")
    at = _partition_offset(ws.disk_image, "rootfs_a") + (1 << 20) + 123  # inside the file system
    with open(ws.disk_image, "r+b") as disk:
        disk.seek(at)
        data = disk.read(16)
        disk.seek(at)
        disk.write(bytes(b ^ 0xFF for b in data))
    machine = BootedMachine.start(ws, timeout=180)
    try:
        assert machine.check.slot == "B"
        console = machine.check.console_log.read_text(errors="replace")
        assert "FLEETFORGE_SLOT_REFUSED slot=A: content does not match its verity root hash" in console
        assert "BOOT_A_LEFT=0" in _ssh(machine, "cat /boot/bootstate")  # refused for good
        # The running root is read through dm-verity too.
        assert _ssh(machine, "grep ' / ' /proc/mounts").startswith("/dev/mapper/root / ")
    finally:
        machine.stop(power_off=True)


def test_check_fails_fast_and_clearly_on_a_disk_without_partitions(built_image, tmp_path):
    ws = _copy_workspace(built_image, tmp_path, "broken")
    with open(ws.disk_image, "r+b") as disk:
        disk.write(b"\0" * (1 << 20))  # wipe the partition table
    # Through the command line: one line naming the failure, exit code 2, no timeout wait.
    invoke = os.path.join(os.path.dirname(sys.executable), "invoke")
    result = subprocess.run([invoke, "qemu", "--check", "--workspace", "broken"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=180,
                            env={**os.environ, "FLEETFORGE_WORKSPACES": str(tmp_path)})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "boot failed: FLEETFORGE_INIT_FAILED: no boot partition found" in result.stderr
