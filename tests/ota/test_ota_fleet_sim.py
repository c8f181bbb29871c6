"""A simulated fleet of 10 loopback devices, half of them faulty on purpose (ota/fleetsim.py):
`deploy --hosts` with canaries and parallelism reports every device's outcome and why, a failed
canary stops the rollout, and rerunning the same command updates no device twice."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkout import REPO_ROOT
from ota import client, fleet, fleetsim, keys
from ota_testlib import COMPATIBLE, SmallImages

pytestmark = pytest.mark.slow

OLD, NEW = "1.0.0", "2.0.0"


@pytest.fixture
def sim(fast_path: Path, small_images: SmallImages, ota_keys: Path,
        client_key: Path) -> Iterator[fleetsim.SimFleet]:
    faults = fleetsim.choose_faults(10, 0.5, seed=16)
    assert sorted(f for f in faults if f) == sorted(k.name for k in fleetsim.FAULT_KINDS)
    started = fleetsim.start_fleet(fast_path / "fleet", small_images.v1, faults=faults,
                                   compatible=COMPATIBLE,
                                   trusted_keys=[ota_keys / keys.PUBLIC_NAME],
                                   client_key=client_key, version=OLD)
    yield started
    started.stop()


def _deploy(sim: fleetsim.SimFleet, hosts: Path, bundle: Path, ota_keys: Path,
            *options: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEETFORGE_OTA_KEYS": str(ota_keys), "FLEETFORGE_OTA_AGENT": sim.agent,
           "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "invoke", "deploy", "--hosts", str(hosts),
                           "--bundle", str(bundle), "--identity", str(sim.client_key),
                           "--known-hosts", str(sim.known_hosts), *options],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)


def _outcomes(sim: fleetsim.SimFleet, table: str) -> dict[str, str]:
    """Each device's outcome column in the printed result table (keyed by device name)."""
    found = {}
    for sim_device in sim.devices:
        row = next((line for line in table.splitlines() if f" {sim_device.target} " in line), "")
        cells = [cell.strip() for cell in row.split("│")]
        found[sim_device.name] = cells[2] if len(cells) > 2 else f"no row: {row!r}"
        assert found[sim_device.name] in fleet.OUTCOMES, row
    return found


def test_fleet_rollout_with_faults_canaries_and_rerun(sim: fleetsim.SimFleet,
                                                      small_images: SmallImages,
                                                      ota_keys: Path) -> None:
    bundle = small_images.v2_bundle.path
    by_fault = {d.fault: d for d in sim.devices if d.fault}
    healthy = [d for d in sim.devices if not d.fault]

    # 1. A faulty device among the canaries: the rollout stops before the rest.
    canaries = [by_fault["health-check"], healthy[0]]
    rest = [d for d in sim.devices if d not in canaries]
    first = _deploy(sim, sim.write_hosts(sim.root / "canary-hosts", canaries + rest), bundle,
                    ota_keys, "--canary", "2", "--parallel", "4")
    assert first.returncode == 2, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    outcomes = _outcomes(sim, first.stdout)
    assert outcomes[canaries[0].name] == "rolled back", first.stdout
    assert "health check" in first.stdout and "failed" in first.stdout
    assert outcomes[canaries[1].name] == "updated", first.stdout
    assert {outcomes[d.name] for d in rest} == {"skipped (canary failed)"}, first.stdout
    assert [d.installs() for d in rest] == [0] * len(rest)

    # 2. Healthy canaries: every device reported with its outcome and why.
    hosts = sim.write_hosts(sim.root / "hosts-healthy-first",
                            sorted(sim.devices, key=lambda d: d.fault is not None))
    second = _deploy(sim, hosts, bundle, ota_keys, "--canary", "2", "--parallel", "4")
    assert second.returncode == 2, second.stdout + second.stderr
    assert "Traceback" not in second.stderr
    outcomes = _outcomes(sim, second.stdout)
    expected = {d.name: d.expected_outcome for d in sim.devices}
    expected[canaries[0].name] = "skipped (rolled back before)"  # the canary's rollback is kept
    expected[canaries[1].name] = "up to date"
    assert outcomes == expected, second.stdout
    unreachable = by_fault["unreachable"]
    row = next(l for l in second.stdout.splitlines() if str(unreachable.target) in l)
    assert "refused" in row.lower() or "cannot connect" in row.lower(), row
    assert "bundle is for 'fleetforge-test-board' but this device is 'another-board'" in \
        second.stdout.replace("\n", " ")
    assert "no space left" in second.stdout.lower()
    installs = {d.name: d.installs() for d in sim.devices}
    commands = {d.name: d.install_commands() for d in sim.devices}

    # 3. The same command again: only what is left; no device gets a second install.
    third = _deploy(sim, hosts, bundle, ota_keys, "--canary", "2", "--parallel", "4")
    assert third.returncode == 2, third.stdout + third.stderr
    outcomes = _outcomes(sim, third.stdout)
    for d in sim.devices:
        again = "up to date" if expected[d.name] in ("updated", "up to date") else expected[d.name]
        assert outcomes[d.name] == again, third.stdout
    assert {d.name: d.installs() for d in sim.devices} == installs
    assert {n: (1 if expected[n] in ("updated", "up to date", "skipped (rolled back before)")
                else 0) for n in installs} == installs
    for d in sim.devices:  # a device that is done is asked for its status, not sent the bundle
        if expected[d.name] in ("updated", "up to date", "skipped (rolled back before)"):
            assert d.install_commands() == commands[d.name] == 1, d.name

    # Nothing is left half-updated: every device runs a committed slot, Idle.
    statuses = sim.statuses()
    assert fleetsim.unsettled(statuses, {OLD, NEW}) == []
    for d in sim.devices:
        if d.name in statuses:
            on_new = expected[d.name] in ("updated", "up to date")
            assert statuses[d.name].slot_versions[statuses[d.name].booted] == (NEW if on_new else OLD)
    assert statuses[canaries[0].name].result.startswith("rolled back: health check")


def test_unreachable_device_is_a_row_not_a_traceback(sim: fleetsim.SimFleet,
                                                     small_images: SmallImages) -> None:
    down = next(d for d in sim.devices if d.fault == "unreachable")
    results = fleet.update_fleet(
        [down.target], lambda t: client.deploy(t, sim.options(), small_images.v2_bundle,
                                               show_progress=False), parallel=1)
    assert results[0].outcome == "unreachable" and results[0].host == str(down.target)
    assert "cannot connect" in results[0].message
