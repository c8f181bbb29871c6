"""One home per contract: the boot rules the loopback device and the agent run are the shipped
core/minimal bootstate.sh, and the agent's state table is the only list of transitions."""
from __future__ import annotations

import re
from pathlib import Path

import ota
from fleetforge.paths import SHIPPED_LAYERS_DIR
from ota import loopback
from ota.states import AGENT_SCRIPT, allowed_transitions, load_state_table, states
from ota_testlib import SmallImages, make_rig

SHIPPED_BOOTSTATE = SHIPPED_LAYERS_DIR / "core/minimal/root_overlay/usr/lib/fleetforge/bootstate.sh"


def test_agent_sources_the_shipped_boot_rules_and_has_no_copy() -> None:
    agent = AGENT_SCRIPT.read_text()
    assert '. "$BOOTSTATE_LIB"' in agent
    assert "BOOTSTATE_LIB=/usr/lib/fleetforge/bootstate.sh" in agent  # where core/minimal installs it
    functions = re.compile(r"^(\w+)\s*\(\)", re.M)
    shipped = set(functions.findall(SHIPPED_BOOTSTATE.read_text()))
    assert {"bootstate_select", "bootstate_mark_good", "find_partition"} <= shipped
    assert not shipped & set(functions.findall(agent))  # the agent redefines none of them
    assert not list(Path(ota.__file__).parent.glob("*.sh"))  # no copy for the loopback device
    assert loopback.BOOTSTATE_LIB == SHIPPED_BOOTSTATE


def test_loopback_power_on_runs_the_shipped_chooser(fast_path: Path, small_images: SmallImages,
                                                    ota_keys: Path, client_key: Path) -> None:
    rig = make_rig(fast_path, "openssh", small_images.v1, ota_keys, client_key, auto_reboot=False)
    try:
        assert f"BOOTSTATE_LIB={SHIPPED_BOOTSTATE}\n" in rig.device.conf.read_text()
        bootstate = rig.device.boot_dir / "bootstate"
        # The shipped rules treat a half-valid state as no state (defaults: A first, 3 tries).
        bootstate.write_text("BOOT_ORDER=B B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=x\n")
        rig.device.power_cycle(run_boot_step=False)
        assert rig.device.booted() == "A"
        assert bootstate.read_text() == "BOOT_ORDER=A B\nBOOT_A_LEFT=2\nBOOT_B_LEFT=3\n"
        # No tries left anywhere: both are reset, the first in order boots.
        bootstate.write_text("BOOT_ORDER=B A\nBOOT_A_LEFT=0\nBOOT_B_LEFT=0\n")
        rig.device.power_cycle(run_boot_step=False)
        assert rig.device.booted() == "B"
        assert bootstate.read_text() == "BOOT_ORDER=B A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n"
    finally:
        rig.device.kill_processes()
        rig.server.stop()


def test_state_table_is_the_one_list_of_transitions() -> None:
    rows = load_state_table()
    assert states()[0] == "Idle" and {"Switch", "Check", "Revert"} <= set(states())
    # Activate has two rows (a trial boot, or artifacts in place): both read from the table.
    assert {("Activate", "Reboot"), ("Activate", "Switch")} <= allowed_transitions(rows)
    # Every state a row leads to has a row of its own.
    assert {r.on_success for r in rows} | {r.on_failure for r in rows} <= set(states())
    assert not re.search(r"EXTRA|escape", Path(ota.__file__).parent.joinpath("states.py").read_text())
