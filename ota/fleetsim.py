"""A simulated fleet on loopback: N devices, each its own SSH server, slots and /persist, some faulty
on purpose (a table of fault kinds), for the fleet test and bench/ota_fleet_bench.py."""
from __future__ import annotations

import random
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from fleetforge.progress import step_progress
from fleetforge.ssh import Target
from ota import loopback
from ota.client import DeviceStatus, SshOptions, status

# Uploads to a device on a slow link: pv's rate limit (bytes per second, pv's suffixes).
SLOW_LINK_RATE = "256k"
# The full /persist: a tmpfs this small, filled to its last block before the server starts.
FULL_PERSIST_SIZE = "64k"


@dataclass(frozen=True)
class FaultKind:
    """A way a device in the field goes wrong, and what `deploy --hosts` must report for it."""

    name: str
    outcome: str  # the result table's outcome for such a device on the first deploy
    how: str      # what the simulator does to the device


FAULT_KINDS = (
    FaultKind("unreachable", "unreachable",
              "its SSH server is stopped: connections to its port are refused"),
    FaultKind("slow-link", "updated",
              f"every byte sent to it passes `pv -L {SLOW_LINK_RATE}` (the forced command of its "
              "deploy key): slow, but it must still be updated"),
    FaultKind("health-check", "rolled back",
              "a health.d check that exits 1: the trial boot fails and the device rolls back"),
    FaultKind("disk-full", "failed (disk full)",
              f"/persist is a {FULL_PERSIST_SIZE} tmpfs filled to its last block (in the mount "
              "namespace of its SSH server, so only the device sees it)"),
    FaultKind("wrong-board", "refused (wrong board)",
              "its compatible string is another board's: the bundle is not for it"),
)
FAULTS_BY_NAME = {kind.name: kind for kind in FAULT_KINDS}
HEALTHY_OUTCOME = "updated"


def choose_faults(count: int, fraction: float, seed: int,
                  kinds: tuple[FaultKind, ...] = FAULT_KINDS) -> list[str | None]:
    """Which device gets which fault: round(count * fraction) devices drawn with `seed`, the
    kinds dealt in table order (so every kind appears once there are as many faulty devices)."""
    chosen: list[str | None] = [None] * count
    faulty = random.Random(seed).sample(range(count), round(count * fraction))
    for number, index in enumerate(faulty):
        chosen[index] = kinds[number % len(kinds)].name
    return chosen


@dataclass
class SimDevice:
    name: str
    fault: str | None
    device: loopback.FakeDevice
    server: loopback.LoopbackServer

    @property
    def target(self) -> Target:
        return Target("127.0.0.1", self.server.port)

    @property
    def expected_outcome(self) -> str:
        return FAULTS_BY_NAME[self.fault].outcome if self.fault else HEALTHY_OUTCOME

    def installs(self) -> int:
        """How many updates the device started (entries into Download in its agent's own log):
        a refused bundle never gets there."""
        log = self.device.state_dir / "log"
        lines = log.read_text().splitlines() if log.exists() else []
        return sum(1 for line in lines if line.split()[1:] == ["state", "Download"])

    def install_commands(self) -> int:
        """How many `install` commands reached the device's agent (its call log)."""
        return sum(1 for call in self.device.calls() if call.split()[:1] == ["install"])


@dataclass
class SimFleet:
    """The running fleet: its devices, a hosts file and a known_hosts file for `deploy --hosts`."""

    root: Path
    devices: list[SimDevice]
    hosts_file: Path
    known_hosts: Path
    client_key: Path
    # Every device's agent is at this one path: each SSH server mounts its device's files there
    # in its own mount namespace (what FLEETFORGE_OTA_AGENT must say for `deploy --hosts`).
    agent: str

    def options(self, timeout: float = 20.0) -> SshOptions:
        return SshOptions(identity=self.client_key, known_hosts=self.known_hosts, agent=self.agent,
                          timeout=timeout)

    def by_host(self) -> dict[str, SimDevice]:
        return {str(d.target): d for d in self.devices}

    def write_hosts(self, path: Path, devices: list[SimDevice]) -> Path:
        """A hosts file listing `devices` in that order (the first ones are the canaries)."""
        path.write_text("".join(f"{d.target}  # {d.name} {d.fault or 'healthy'}\n" for d in devices))
        return path

    def statuses(self) -> dict[str, DeviceStatus]:
        """Every reachable device's status, asked over SSH (what the device itself reports)."""
        options = self.options()
        return {d.name: status(d.target, options) for d in self.devices
                if d.fault != "unreachable"}

    def stop(self) -> None:
        for sim in self.devices:
            sim.device.kill_processes()
            sim.server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def unsettled(statuses: dict[str, DeviceStatus], versions: set[str]) -> list[str]:
    """Devices left half-updated: not Idle, busy, running a slot that is not the committed one,
    or running neither version. An empty list means every device is on a committed slot."""
    problems = []
    for name, s in sorted(statuses.items()):
        running = s.slot_versions.get(s.booted, "?")
        if s.state != "Idle" or s.busy or s.booted != s.committed or running not in versions:
            problems.append(f"{name}: state {s.state}, booted {s.booted}, committed {s.committed}, "
                            f"running {running}, busy {s.busy or '-'}")
    return problems


def start_fleet(root: Path, image: Path, *, faults: list[str | None], compatible: str,
                trusted_keys: list[Path], client_key: Path, version: str = "1.0.0",
                server_kind: str = "dropbear") -> SimFleet:
    """Start len(faults) loopback devices under `root` (best on a tmpfs), all running `image`.
    Slots are sparse files twice the image's size; the busybox userland is shared."""
    root.mkdir(parents=True, exist_ok=True)
    mount_point = root / "device"  # empty here; each server sees its own device's files in it
    mount_point.mkdir(exist_ok=True)
    bin_dir = loopback.make_device_bin(root / "bin")
    slow_link = root / "slow-link"
    slow_link.write_text("#!/bin/sh\n# A slow link to the device: what is sent to it is throttled.\n"
                         f'pv -q -L {SLOW_LINK_RATE} | sh -c "$SSH_ORIGINAL_COMMAND"\n')
    slow_link.chmod(0o755)
    start = loopback.start_openssh if server_kind == "openssh" else loopback.start_dropbear
    known_hosts = root / "known_hosts"
    devices: list[SimDevice] = []
    fleet = SimFleet(root, devices, root / "hosts", known_hosts, client_key,
                     str(mount_point / "fleetforge-ota"))
    try:
        with step_progress() as progress:
            task = progress.add_task(f"starting {len(faults)} devices", total=len(faults))
            for index, fault in enumerate(faults):
                devices.append(_start_device(root / f"robot{index:03d}", f"robot{index:03d}", fault,
                                             image, start, compatible=compatible,
                                             trusted_keys=trusted_keys, client_key=client_key,
                                             version=version, bin_dir=bin_dir,
                                             mount_point=mount_point, slow_link=slow_link))
                progress.advance(task)
    except BaseException:
        fleet.stop()
        raise
    known_hosts.write_text("".join(d.server.known_hosts_line() for d in devices))
    fleet.write_hosts(fleet.hosts_file, devices)
    for sim in devices:  # the host knew it; now it is down
        if sim.fault == "unreachable":
            sim.server.stop()
    return fleet


def _start_device(folder: Path, name: str, fault: str | None, image: Path, start, *,  # type: ignore[no-untyped-def]
                  compatible: str, trusted_keys: list[Path], client_key: Path, version: str,
                  bin_dir: Path, mount_point: Path, slow_link: Path) -> SimDevice:
    port = loopback.free_port()
    device = loopback.make_fake_device(
        folder / "device", image, compatible="another-board" if fault == "wrong-board" else compatible,
        trusted_keys=trusted_keys, ssh_port=port, version=version, auto_reboot=True,
        bin_dir=bin_dir)
    setup = f"mount --bind {shlex.quote(str(device.root))} {shlex.quote(str(mount_point))}"
    if fault == "disk-full":
        persist = shlex.quote(str(device.persist))
        setup += (f" && mount -t tmpfs -o size={FULL_PERSIST_SIZE} fleetsim-full {persist}"
                  f" && mkdir {persist}/ota && echo 'robot calibration' > {persist}/user-data.txt"
                  f" && {{ dd if=/dev/zero of={persist}/logs.bin bs=1k 2>/dev/null; true; }}")
    if fault == "health-check":
        (device.health_dir / "50-sim-fails").write_text(
            "# fleet simulator: this device's application never comes up\n"
            "echo 'health: robot application not running' >&2\nexit 1\n")
    server = start(folder / "server", client_key, port=port, namespace_setup=setup,
                   forced_command=str(slow_link) if fault == "slow-link" else None)
    return SimDevice(name, fault, device, server)
