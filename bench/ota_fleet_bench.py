"""Fleet rollouts on a simulated fleet (ota/fleetsim.py): wall time, host CPU and memory per device
and per parallel connection, for N devices with injected faults, against a baseline of the same run
(plain `ssh HOST 'cat > /dev/null' < bundle` to every device, same parallelism).

    nice -n 10 python bench/ota_fleet_bench.py [--sizes 10,50,200] [--parallel 8,32]
                                              [--faults 0.2] [--seed 16] [--image-kb 1024]

For each N: start N loopback devices (dropbear, slots in /dev/shm), then for each --parallel
value one `fleetforge deploy --hosts` of a new version (2.0.0, 3.0.0, ...) with --canary 2, then
the same command again (nothing left to do: every device only reports its status). Each deploy
runs as its own process: its CPU is the push host's (the CLI and every ssh client it starts,
from getrusage of its children); its memory is the PSS summed over its process tree, sampled
every 0.25 s (peak). The simulated devices' side (dropbear, the sh agent, power-on and health
checks) is measured apart: it runs on this machine only because the devices are simulated.
After each deploy every device's own status is checked: healthy ones run the new version,
faulty ones their old committed slot, none half-updated. Results: bench/results/ota_fleet_bench.json.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


from fleetforge.progress import step_progress
from ota import keys, loopback
from ota.bundle import create_bundle
from ota.fleetsim import FAULT_KINDS, SimFleet, choose_faults, start_fleet, unsettled

COMPATIBLE = "fleetforge-bench-board"
RESULTS = Path(__file__).resolve().parent / "results" / "ota_fleet_bench.json"
PR_SET_CHILD_SUBREAPER = 36


def machine() -> dict[str, object]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.machine())
    memory = next(int(line.split()[1]) for line in open("/proc/meminfo")
                  if line.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(memory / 2**20, 1),
            "kernel": platform.release(), "nice": os.nice(0)}


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return found


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime + the reaped children's (cutime + cstime) of each process."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15])
        except (OSError, IndexError):
            continue
    return total / tick


def files_kib(root: Path) -> int:
    """What the devices' files take in RAM (allocated blocks on the tmpfs)."""
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                continue
    return total // 1024


class Sampler:
    """Peak PSS of a process tree, sampled every `interval` seconds on a thread."""

    def __init__(self, roots: Callable[[], list[int]], interval: float = 0.25) -> None:
        self.roots, self.interval, self.peak = roots, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = [p for root in self.roots() for p in descendants(root)]
            self.peak = max(self.peak, pss_kib(pids))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def reap_orphans() -> None:
    """Wait for the device-side processes that were orphaned to us (the simulated reboots):
    their CPU then counts in this process's RUSAGE_CHILDREN."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# The deploy runs under this wrapper: it reports the CPU of the CLI and every ssh it started.
WRAPPER = ("import json, resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
           "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
           "open(sys.argv[1], 'w').write(json.dumps({'rc': code, 'cpu': r.ru_utime + r.ru_stime}))")


def run_deploy(sim: SimFleet, hosts: Path, bundle: Path, keys_dir: Path, parallel: int,
               work: Path) -> dict[str, object]:
    report, usage = work / "report.json", work / "usage.json"
    command = [str(Path(sys.executable).with_name("fleetforge")), "deploy", "--hosts", str(hosts),
               "--bundle", str(bundle), "--identity", str(sim.client_key), "--known-hosts",
               str(sim.known_hosts), "--canary", "2", "--parallel", str(parallel),
               "--report", str(report)]
    env = {**os.environ, "FLEETFORGE_OTA_KEYS": str(keys_dir), "FLEETFORGE_OTA_AGENT": sim.agent,
           "COLUMNS": "200"}
    servers = [d.server.process.pid for d in sim.devices if d.server.process.poll() is None]
    device_cpu = cpu_seconds(servers)
    before = os.times()
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-c", WRAPPER, str(usage), *command], cwd=work,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with Sampler(lambda: [process.pid]) as client_memory, \
            Sampler(lambda: servers + [os.getpid()]) as fleet_memory:
        _, errors = process.communicate()
    wall = time.monotonic() - started
    reap_orphans()
    after = os.times()
    measured = json.loads(usage.read_text())
    orphans = (after.children_user + after.children_system - before.children_user
               - before.children_system) - measured["cpu"]  # the wrapper's children = the client
    rows = json.loads(report.read_text()) if report.exists() else []
    if not rows:
        raise SystemExit(f"deploy wrote no report: {errors.decode()[-2000:]}")
    return {"wall_s": round(wall, 2), "client_cpu_s": round(measured["cpu"], 2),
            "device_cpu_s": round(cpu_seconds(servers) - device_cpu + max(0.0, orphans), 2),
            "client_peak_pss_mib": round(client_memory.peak / 1024, 1),
            "all_peak_pss_mib": round(fleet_memory.peak / 1024, 1),
            "exit": measured["rc"], "rows": rows, "load_after": load()}


def baseline(sim: SimFleet, bundle: Path, parallel: int) -> dict[str, object]:
    """The floor of a push over SSH: one `ssh HOST 'cat > /dev/null' < bundle` per device."""
    def push(device) -> bool:  # type: ignore[no-untyped-def]
        with open(bundle, "rb") as data:
            return subprocess.run(
                ["ssh", "-F", "none", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={sim.known_hosts}",
                 "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-i", str(sim.client_key),
                 "-o", "ConnectTimeout=20", "-p", str(device.target.port), "root@127.0.0.1",
                 "cat > /dev/null"], stdin=data, capture_output=True).returncode == 0

    before = os.times()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        done = list(pool.map(push, sim.devices))
    after = os.times()
    return {"wall_s": round(time.monotonic() - started, 2), "reached": sum(done),
            "client_cpu_s": round(after.children_user + after.children_system
                                  - before.children_user - before.children_system, 2)}


def check(sim: SimFleet, rows: list[dict[str, object]], version: str, old: set[str],
          rerun: bool) -> dict[str, object]:
    """Every healthy device updated, every faulty one reported with its reason, none half-updated."""
    by_host = {row["host"]: row for row in rows}
    wrong = []
    for device in sim.devices:
        row = by_host[str(device.target)]
        expected = device.expected_rerun_outcome if rerun else device.expected_outcome
        if row["outcome"] != expected or (device.fault and not row["message"]):
            wrong.append(f"{device.name} ({device.fault or 'healthy'}): {row['outcome']}: "
                         f"{row['message']}")
    statuses = sim.statuses()
    problems = unsettled(statuses, {version} | old)  # faulty devices keep an older version
    for device in sim.devices:
        s = statuses.get(device.name)
        on_new = device.expected_outcome == "updated"
        if s and (s.slot_versions.get(s.booted) == version) != on_new:
            problems.append(f"{device.name}: runs {s.slot_versions.get(s.booted)}")
    outcomes: dict[str, int] = {}
    for row in rows:
        outcomes[row["outcome"]] = outcomes.get(row["outcome"], 0) + 1
    return {"outcomes": outcomes, "unexpected": wrong, "half_updated": problems,
            "installs_max": max(d.installs() for d in sim.devices)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,50,200")
    parser.add_argument("--parallel", default="8,32")
    parser.add_argument("--faults", type=float, default=0.2, help="share of faulty devices")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--image-kb", type=int, default=1024)
    parser.add_argument("--server", default="dropbear", choices=("dropbear", "openssh"))
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphaned device processes come to us
    sizes = [int(n) for n in args.sizes.split(",")]
    parallels = [int(p) for p in args.parallel.split(",")]
    report: dict[str, object] = {"machine": machine(), "load_start": load(),
                                 "args": vars(args), "runs": []}
    print(f"machine: {report['machine']}\nload: {report['load_start']}", flush=True)
    base = Path(tempfile.mkdtemp(prefix="fleetforge-fleet-bench-", dir="/dev/shm"))
    try:
        keys.keygen(base / "keys")
        client_key = loopback.make_client_key(base / "id_ed25519")
        rnd = random.Random(args.seed)
        images = []
        for number in range(len(parallels) + 1):
            image = base / f"v{number + 1}.img"
            image.write_bytes(rnd.randbytes(args.image_kb << 10))
            images.append(image)
        bundles = [create_bundle(image, base / f"v{n + 2}.ffota", compatible=COMPATIBLE,
                                 version=f"{n + 2}.0.0", signing_key=keys.load_private(base / "keys"),
                                 segment_size=256 << 10)
                   for n, image in enumerate(images[1:])]
        for size in sizes:
            report["runs"].append(bench_size(size, args, parallels, images[0], bundles, base,
                                             client_key))
            Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
    report["load_end"] = load()
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(f"load: {report['load_end']}\nwritten: {args.output}")


def bench_size(size: int, args: argparse.Namespace, parallels: list[int], image: Path,
               bundles: list[Path], base: Path, client_key: Path) -> dict[str, object]:
    faults = choose_faults(size, args.faults, args.seed)
    work = base / f"n{size}"
    work.mkdir()
    started = time.monotonic()
    sim = start_fleet(work / "fleet", image, faults=faults, compatible=COMPATIBLE,
                      trusted_keys=[base / "keys" / keys.PUBLIC_NAME], client_key=client_key,
                      server_kind=args.server)
    try:
        servers = [d.server.process.pid for d in sim.devices if d.server.process.poll() is None]
        run: dict[str, object] = {
            "devices": size, "faults": {k.name: faults.count(k.name) for k in FAULT_KINDS},
            "start_s": round(time.monotonic() - started, 1),
            "idle_servers_pss_mib": round(pss_kib(servers) / 1024, 1),
            "device_files_mib": round(files_kib(sim.root) / 1024, 1),
            "bundle_mib": round(bundles[0].stat().st_size / 2**20, 2), "deploys": []}
        print(f"\nN={size}: started in {run['start_s']} s; idle servers {run['idle_servers_pss_mib']} "
              f"MiB PSS, device files {run['device_files_mib']} MiB; faults {run['faults']}",
              flush=True)
        healthy = [d for d in sim.devices if not d.fault]
        hosts = sim.write_hosts(work / "hosts", healthy[:2] + [d for d in sim.devices
                                                               if d not in healthy[:2]])
        old = {"1.0.0"}
        for number, parallel in enumerate(parallels):
            bundle = bundles[number]
            version = f"{number + 2}.0.0"
            plan = [("deploy", bundle)] + ([("rerun", bundle)] if number == len(parallels) - 1 else [])
            for kind, chosen in plan:
                measured = run_deploy(sim, hosts, chosen, base / "keys", parallel, work)
                measured.update(check(sim, measured.pop("rows"), version, old, kind == "rerun"))
                measured.update(kind=kind, version=version, parallel=parallel)
                measured["client_cpu_per_device_s"] = round(measured["client_cpu_s"] / size, 3)
                measured["client_pss_per_connection_mib"] = round(
                    measured["client_peak_pss_mib"] / min(parallel, size), 2)
                measured["device_cpu_per_device_s"] = round(measured["device_cpu_s"] / size, 3)
                measured["baseline_ssh_cat"] = baseline(sim, chosen, parallel)
                measured["wall_vs_baseline"] = round(
                    measured["wall_s"] / measured["baseline_ssh_cat"]["wall_s"], 2)
                run["deploys"].append(measured)
                print(f"  {kind} {version} --parallel {parallel}: {measured['wall_s']} s wall "
                      f"(ssh-cat baseline {measured['baseline_ssh_cat']['wall_s']} s), client CPU "
                      f"{measured['client_cpu_s']} s ({measured['client_cpu_per_device_s']} s/device), "
                      f"client peak {measured['client_peak_pss_mib']} MiB "
                      f"({measured['client_pss_per_connection_mib']} MiB/connection), devices' CPU "
                      f"{measured['device_cpu_s']} s; {measured['outcomes']}; unexpected "
                      f"{measured['unexpected'] or 'none'}; half-updated "
                      f"{measured['half_updated'] or 'none'}; load {measured['load_after']}",
                      flush=True)
            old.add(version)
        deploys = [d for d in run["deploys"] if d["kind"] == "deploy"]
        if len(deploys) >= 2:  # what one more parallel connection costs the push host
            low, high = deploys[0], deploys[-1]
            run["client_pss_per_added_connection_mib"] = round(
                (high["client_peak_pss_mib"] - low["client_peak_pss_mib"])
                / (min(high["parallel"], size) - min(low["parallel"], size) or 1), 2)
            print(f"  one more parallel connection: +{run['client_pss_per_added_connection_mib']} "
                  "MiB on the push host", flush=True)
        return run
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
