"""Fleet updates (bounded parallelism, canary, result table) and the invoke command line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from fleetforge.errors import UserError
from checkout import REPO_ROOT
from ota import client, fleet
from fleetforge.ssh import Target
from ota_testlib import Rig, SmallImages, make_rig


def test_hosts_file_errors_name_the_line(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# robots\nrobot1.local\nroot@10.0.0.2:2222  # lab\nbad host line\n")
    with pytest.raises(UserError, match=r"hosts:4: expected one \[user@\]host\[:port\]"):
        fleet.read_hosts(hosts)
    hosts.write_text("robot1.local\nroot@10.0.0.2:2222  # lab\n[::1]:2200\n")
    assert fleet.read_hosts(hosts) == [Target("robot1.local"), Target("10.0.0.2", 2222),
                                       Target("::1", 2200)]


@pytest.fixture
def three_rigs(fast_path: Path, small_images: SmallImages, ota_keys: Path,
               client_key: Path) -> list[Rig]:
    rigs = [make_rig(fast_path / f"robot{i}", "dropbear", small_images.v1, ota_keys, client_key)
            for i in range(3)]
    yield rigs
    for rig in rigs:
        rig.device.kill_processes()
        rig.server.stop()


def _deploy_with(rigs: list[Rig], bundle):  # type: ignore[no-untyped-def]
    by_port = {rig.target.port: rig for rig in rigs}

    def deploy_one(target: Target) -> client.DeployResult:
        return client.deploy(target, by_port[target.port].options, bundle, show_progress=False,
                             boot_timeout=30)
    return deploy_one


def test_one_failing_device_does_not_stop_the_fleet(three_rigs: list[Rig],
                                                    small_images: SmallImages) -> None:
    (three_rigs[1].device.root / "etc" / "compatible").write_text("another-board\n")
    targets = [rig.target for rig in three_rigs]
    results = fleet.update_fleet(targets, _deploy_with(three_rigs, small_images.v2_bundle),
                                 parallel=3)
    assert [r.ok for r in results] == [True, False, True]
    assert "bundle is for 'fleetforge-test-board' but this device is 'another-board'" in \
        results[1].message
    for rig, ok in zip(three_rigs, (True, False, True)):
        status = client.status(rig.target, rig.options)
        assert status.booted == ("B" if ok else "A")
    console = Console(record=True, width=200)
    console.print(fleet.results_table(results))
    text = console.export_text()
    assert text.count(" refused (wrong board) ") == 1 and text.count(" updated ") == 2
    assert [r.outcome for r in results] == ["updated", "refused (wrong board)", "updated"]


def test_failed_canary_leaves_the_rest_untouched(three_rigs: list[Rig],
                                                 small_images: SmallImages) -> None:
    (three_rigs[0].device.root / "etc" / "compatible").write_text("another-board\n")
    targets = [rig.target for rig in three_rigs]
    results = fleet.update_fleet(targets, _deploy_with(three_rigs, small_images.v2_bundle),
                                 parallel=2, canary=1)
    assert [r.ok for r in results] == [False, False, False]
    assert [r.message for r in results[1:]] == ["skipped: the canary batch failed"] * 2
    for rig in three_rigs[1:]:
        status = client.status(rig.target, rig.options)
        assert (status.state, status.history, status.boot_left["B"]) == ("Idle", [], 3)


def _invoke(args: list[str], rig: Rig, ota_keys: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEETFORGE_OTA_KEYS": str(ota_keys),
           "FLEETFORGE_OTA_AGENT": rig.device.agent}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_status_deploy_and_clear_errors(fast_path: Path, small_images: SmallImages,
                                            ota_keys: Path, client_key: Path) -> None:
    rig = make_rig(fast_path, "dropbear", small_images.v1, ota_keys, client_key)
    try:
        ssh = ["--identity", str(client_key), "--known-hosts", str(rig.options.known_hosts)]
        host = f"127.0.0.1:{rig.server.port}"
        ok = _invoke(["ota.status", "--host", host, *ssh], rig, ota_keys)
        assert ok.returncode == 0, ok.stderr
        assert "update state: Idle" in ok.stdout and "1.0.0" in ok.stdout

        unknown = _invoke(["ota.status", "--host", host, "--identity", str(client_key),
                           "--known-hosts", str(fast_path / "empty_known_hosts")], rig, ota_keys)
        assert unknown.returncode == 2
        assert unknown.stderr.startswith(f"error: root@{host}: unknown host key")
        assert "Traceback" not in unknown.stderr and len(unknown.stderr.splitlines()) == 1

        corrupted = fast_path / "corrupted.ffota"
        data = bytearray(small_images.v2_bundle.path.read_bytes())
        data[small_images.v2_bundle.rootfs_offset + 1000] ^= 1
        corrupted.write_bytes(bytes(data))
        bad = _invoke(["deploy", "--host", host, "--bundle", str(corrupted), *ssh], rig, ota_keys)
        assert bad.returncode == 2 and "bundle is corrupted" in bad.stderr
        assert "Traceback" not in bad.stderr

        done = _invoke(["deploy", "--host", host, "--bundle", str(small_images.v2_bundle.path),
                        *ssh], rig, ota_keys)
        assert done.returncode == 0, done.stderr
        assert "committed 2.0.0 on slot B" in done.stdout
        back = _invoke(["ota.rollback", "--host", host, "--no-reboot", *ssh], rig, ota_keys)
        assert back.returncode == 0 and "slot A will boot next" in back.stdout
        assert client.status(rig.target, rig.options).boot_order == "A B"
    finally:
        rig.device.kill_processes()
        rig.server.stop()
