"""The boot chain's slot logic (bootchain.sh, docs/ab-boot.md) under real host shells.

The hardware steps (dm-verity, kexec, switch_root) are the caller's functions; here they are
shell functions that read what each slot "is" from files, so every path of the shipped
bootchain_choose runs: verified and booted, refused for a bad record, a failed check or a slot
that cannot start, and the end when no slot can boot. The real steps run in the QEMU tests.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from checkout import LAYERS_DIR

LIBS = LAYERS_DIR / "core/minimal/root_overlay/usr/lib/fleetforge"
SHELLS = [s for s in (["busybox", "sh"], ["dash"]) if shutil.which(s[0])]
RECORD = "1 4096 4096 1200 1200 sha256 " + "ab" * 32 + " " + "cd" * 32

# Stand-ins for the initramfs's hardware steps: slot X's fate is the word in tmp/fate-X.
HARDWARE = """
chain_verify() {
    echo "verify $1" >> "$T/calls"
    case $(cat "$T/fate-$1") in corrupt) return 1 ;; no-dm-verity) return 2 ;; esac
}
chain_boot() {
    echo "boot $1 $2" >> "$T/calls"
    if [ "$(cat "$T/fate-$1")" = no-init ]; then CHAIN_REASON="it has no /sbin/init"; return 1; fi
    echo "BOOTED $1"; exit 0
}
"""


@pytest.fixture(params=SHELLS, ids=lambda s: s[0])
def shell(request) -> list[str]:
    return request.param


def run(shell: list[str], tmp: Path, script: str) -> subprocess.CompletedProcess[str]:
    prelude = f". {LIBS / 'bootstate.sh'}\n. {LIBS / 'bootchain.sh'}\nT={tmp}\n{HARDWARE}\n"
    return subprocess.run([*shell, "-c", prelude + script], capture_output=True, text=True,
                          timeout=10)


def device(tmp: Path, order: str, a_left: int, b_left: int, *, a: str = "good",
           b: str = "good") -> Path:
    boot = tmp / "boot"
    boot.mkdir()
    (boot / "bootstate").write_text(f"BOOT_ORDER={order}\nBOOT_A_LEFT={a_left}\nBOOT_B_LEFT={b_left}\n")
    for slot, fate in (("A", a), ("B", b)):
        (tmp / f"fate-{slot}").write_text(fate)
        if fate != "no-record":
            (boot / f"slot-{slot}.verity").write_text(RECORD + "\n")
    return boot


def state(boot: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (boot / "bootstate").read_text().splitlines())


def calls(tmp: Path) -> list[str]:
    path = tmp / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_a_verified_slot_boots_with_its_record(shell, tmp_path):
    boot = device(tmp_path, "A B", 3, 3)
    result = run(shell, tmp_path, f"bootchain_choose {boot}")
    assert result.stdout.strip() == "BOOTED A"
    assert calls(tmp_path) == ["verify A", f"boot A {RECORD}"]
    assert state(boot)["BOOT_A_LEFT"] == "2"


def test_a_corrupted_trial_slot_is_refused_and_the_old_slot_boots_in_the_same_power_on(shell, tmp_path):
    boot = device(tmp_path, "B A", 3, 1, b="corrupt")
    result = run(shell, tmp_path, f"bootchain_choose {boot}")
    assert "FLEETFORGE_SLOT_REFUSED slot=B: content does not match its verity root hash" in result.stdout
    assert result.stdout.strip().endswith("BOOTED A")
    assert calls(tmp_path) == ["verify B", "verify A", f"boot A {RECORD}"]
    assert state(boot) == {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "0"}


def test_a_kernel_that_cannot_set_up_dm_verity_is_named_not_blamed_on_the_slot(shell, tmp_path):
    """The first Buildroot-built kernel lacked dm-verity's hash: the table could not be loaded, and
    the console blamed both slots' content."""
    boot = device(tmp_path, "B A", 3, 1, b="no-dm-verity")
    result = run(shell, tmp_path, f"bootchain_choose {boot}")
    assert ("FLEETFORGE_SLOT_REFUSED slot=B: cannot be checked: dm-verity could not be set up "
            "(does the kernel have DM_VERITY and CRYPTO_SHA256? see dmesg)") in result.stdout
    assert "does not match" not in result.stdout
    assert result.stdout.strip().endswith("BOOTED A")


def test_a_committed_slot_that_fails_its_check_is_marked_bad_not_retried(shell, tmp_path):
    boot = device(tmp_path, "A B", 3, 3, a="corrupt")
    result = run(shell, tmp_path, f"bootchain_choose {boot}")
    assert result.stdout.strip().endswith("BOOTED B")
    assert calls(tmp_path) == ["verify A", "verify B", f"boot B {RECORD}"]
    assert state(boot)["BOOT_A_LEFT"] == "0"


def test_a_slot_that_cannot_start_is_refused_with_the_reason(shell, tmp_path):
    boot = device(tmp_path, "B A", 3, 1, b="no-init")
    result = run(shell, tmp_path, f"bootchain_choose {boot}")
    assert "FLEETFORGE_SLOT_REFUSED slot=B: it has no /sbin/init" in result.stdout
    assert result.stdout.strip().endswith("BOOTED A")
    assert state(boot)["BOOT_B_LEFT"] == "0"


def test_a_slot_without_a_valid_record_is_never_checked_or_booted(shell, tmp_path):
    boot = device(tmp_path, "A B", 3, 3, a="no-record")
    result = run(shell, tmp_path, f"bootchain_choose {boot}")
    assert "FLEETFORGE_SLOT_REFUSED slot=A: no valid verity record" in result.stdout
    assert calls(tmp_path) == ["verify B", f"boot B {RECORD}"]


def test_when_no_slot_can_boot_each_is_tried_once_and_the_chain_gives_up(shell, tmp_path):
    boot = device(tmp_path, "A B", 3, 3, a="corrupt", b="no-init")
    result = run(shell, tmp_path, f"bootchain_choose {boot}; echo rc=$?")
    assert result.stdout.strip().endswith("rc=1")
    assert calls(tmp_path) == ["verify A", "verify B", f"boot B {RECORD}"]


@pytest.mark.parametrize("record", [
    "",
    RECORD.replace("sha256", "md5"),
    RECORD.replace(" 4096 4096", " 512 4096"),
    RECORD.replace("1200 1200", "0 0"),
    RECORD.rsplit(" ", 1)[0],  # a field missing
    RECORD.replace("ab" * 32, "ab" * 31),  # a short root hash
    RECORD + " 1 restart_on_corruption",  # options are the chooser's, never the record's
    RECORD.replace("cd" * 32, "$(touch pwned)"),
    RECORD.replace("1200 1200", "1200 *"),
])
def test_malformed_records_are_refused_and_never_evaluated(shell, tmp_path, record):
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "slot-A.verity").write_text(record + "\n")
    result = run(shell, tmp_path, f"cd {tmp_path}; bootchain_record {boot} A; echo rc=$?; "
                                  f"bootchain_set_record {boot} B '{record}'; echo rc=$?")
    assert result.stdout.splitlines() == ["rc=1", "rc=2"]
    assert not (boot / "slot-B.verity").exists()
    assert not (tmp_path / "pwned").exists()


def test_set_record_replaces_the_old_one_whole(shell, tmp_path):
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "slot-B.verity").write_text("old\n")
    result = run(shell, tmp_path, f"bootchain_set_record {boot} B '{RECORD}' && "
                                  f"bootchain_record {boot} B")
    assert result.stdout.strip() == RECORD
    assert sorted(p.name for p in boot.iterdir()) == ["slot-B.verity"]
