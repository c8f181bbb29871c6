"""The A/B slot selection of the initramfs (docs/ab-boot.md), run under real host shells."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from checkout import LAYERS_DIR

LIBRARY = LAYERS_DIR / "core/minimal/root_overlay/usr/lib/fleetforge/bootstate.sh"
SHELLS = [s for s in (["busybox", "sh"], ["dash"]) if shutil.which(s[0])]


@pytest.fixture(params=SHELLS, ids=lambda s: s[0])
def shell(request) -> list[str]:
    return request.param


def run(shell: list[str], script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*shell, "-c", f". {LIBRARY}\n{script}"], capture_output=True,
                          text=True, timeout=10)


def state(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def select(shell: list[str], path: Path) -> str:
    result = run(shell, f"bootstate_select {path}")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def write(path: Path, order: str, a: str, b: str) -> None:
    path.write_text(f"BOOT_ORDER={order}\nBOOT_A_LEFT={a}\nBOOT_B_LEFT={b}\n")


def test_fresh_state_boots_a_and_counts_the_try(shell, tmp_path):
    bootstate = tmp_path / "bootstate"
    write(bootstate, "A B", "3", "3")
    assert select(shell, bootstate) == "A"
    assert state(bootstate) == {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "3"}
    assert not (tmp_path / "bootstate.tmp").exists()


def test_three_uncommitted_boots_fall_back_to_b(shell, tmp_path):
    bootstate = tmp_path / "bootstate"
    write(bootstate, "A B", "3", "3")
    assert [select(shell, bootstate) for _ in range(4)] == ["A", "A", "A", "B"]
    assert state(bootstate)["BOOT_A_LEFT"] == "0"
    assert state(bootstate)["BOOT_B_LEFT"] == "2"


def test_order_decides_first_slot(shell, tmp_path):
    bootstate = tmp_path / "bootstate"
    write(bootstate, "B A", "3", "1")
    assert select(shell, bootstate) == "B"
    assert state(bootstate)["BOOT_B_LEFT"] == "0"
    assert select(shell, bootstate) == "A"  # trial of B not committed: back to A


def test_no_tries_left_resets_both_and_boots_first(shell, tmp_path):
    bootstate = tmp_path / "bootstate"
    write(bootstate, "B A", "0", "0")
    assert select(shell, bootstate) == "B"
    assert state(bootstate) == {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}


@pytest.mark.parametrize("content", [
    None,  # missing
    "",  # empty
    "BOOT_ORDER=A C\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n",  # unknown slot
    "BOOT_ORDER=A B\nBOOT_A_LEFT=x\nBOOT_B_LEFT=3\n",  # not a number
    "BOOT_ORDER=B A\nBOOT_A_LEFT=3\n",  # a key missing
    "BOOT_ORDER=A A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n",  # duplicate slot
    "BOOT_ORDER=B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=$(touch pwned)\n",  # never executed
])
def test_missing_or_unreadable_state_boots_a_with_defaults(shell, tmp_path, content):
    bootstate = tmp_path / "bootstate"
    if content is not None:
        bootstate.write_text(content)
    result = run(shell, f"cd {tmp_path} && bootstate_select {bootstate}")
    assert result.stdout.strip() == "A"
    assert "unreadable" in result.stderr
    assert state(bootstate) == {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "3"}
    assert not (tmp_path / "pwned").exists()


def test_update_cycle_activate_trial_then_commit(shell, tmp_path):
    bootstate = tmp_path / "bootstate"
    write(bootstate, "A B", "3", "3")
    assert run(shell, f"bootstate_activate {bootstate} B").returncode == 0
    assert state(bootstate) == {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "1"}
    assert select(shell, bootstate) == "B"
    assert run(shell, f"bootstate_mark_good {bootstate} B").returncode == 0
    assert state(bootstate)["BOOT_B_LEFT"] == "3"
    assert select(shell, bootstate) == "B"


def test_mark_bad_and_invalid_slot(shell, tmp_path):
    bootstate = tmp_path / "bootstate"
    write(bootstate, "A B", "3", "3")
    assert run(shell, f"bootstate_mark_bad {bootstate} A").returncode == 0
    assert select(shell, bootstate) == "B"
    bad = run(shell, f"bootstate_mark_good {bootstate} C")
    assert bad.returncode == 2 and "invalid slot" in bad.stderr


def test_init_uses_the_shared_library():
    # The initramfs copies are links to the root filesystem's, so both sides agree on the format;
    # the boot chain (bootchain.sh, tested in test_image_bootchain.py) selects with bootstate_select.
    for name in ("bootstate.sh", "bootchain.sh"):
        initramfs_copy = LAYERS_DIR / "core/minimal/initramfs_overlay/usr/lib/fleetforge" / name
        assert initramfs_copy.resolve() == LIBRARY.with_name(name).resolve()
    init = (LAYERS_DIR / "core/minimal/initramfs_overlay/init").read_text()
    assert ". /usr/lib/fleetforge/bootstate.sh" in init
    assert "bootchain_choose /mnt/boot" in init
    assert "bootstate_select \"$1/bootstate\"" in LIBRARY.with_name("bootchain.sh").read_text()


def _block_devices(root: Path, devices: dict[str, str]) -> Path:
    """A stand-in for /sys/class/block (the real one is this machine's): one uevent per device."""
    for name, uevent in devices.items():
        (root / name).mkdir(parents=True)
        (root / name / "uevent").write_text(f"MAJOR=8\nDEVNAME={name}\nDEVTYPE=partition\n{uevent}")
    return root


@pytest.mark.parametrize("table, found", [
    # GPT: found by name, whatever the order.
    ({"loop0": "", "vda": "", "vda1": "PARTN=1\nPARTNAME=rootfs_b\n", "vda2": "PARTN=2\nPARTNAME=boot\n",
      "vda3": "PARTN=3\nPARTNAME=persist\n", "vda4": "PARTN=4\nPARTNAME=rootfs_a\n"},
     {"boot": "/dev/vda2", "rootfs_a": "/dev/vda4", "rootfs_b": "/dev/vda1", "persist": "/dev/vda3"}),
    # MBR (no names): the contract's order; the SD card's boot areas carry no PARTN.
    ({"mmcblk0": "", "mmcblk0boot0": "", "mmcblk0p1": "PARTN=1\n", "mmcblk0p2": "PARTN=2\n",
      "mmcblk0p3": "PARTN=3\n", "mmcblk0p4": "PARTN=4\n"},
     {"boot": "/dev/mmcblk0p1", "rootfs_a": "/dev/mmcblk0p2", "rootfs_b": "/dev/mmcblk0p3",
      "persist": "/dev/mmcblk0p4"}),
], ids=["gpt-by-name", "mbr-by-number"])
def test_partitions_are_found_by_name_or_number_in_one_scan(shell, tmp_path, table, found):
    """find_partition (the initramfs, S01mount) and partition_scan + partition_lookup (the update
    agent: four lookups, one scan) give the same devices; an unknown name is not found."""
    sys_block = _block_devices(tmp_path / "block", table)
    for name, device in found.items():
        alone = run(shell, f"SYS_BLOCK={sys_block} find_partition {name}")
        assert (alone.returncode, alone.stdout) == (0, f"{device}\n"), alone.stderr
    lookups = " ".join(f'partition_lookup {n} && echo "$PARTITION";' for n in found)
    scanned = run(shell, f"SYS_BLOCK={sys_block} partition_scan; {lookups}")
    assert scanned.stdout.split() == list(found.values())
    assert run(shell, f"SYS_BLOCK={sys_block} find_partition swap").returncode == 1
