"""Measurements on a real local Ray cluster (a head and one more worker node process on this
machine), compared with the local pool on the same jobs: same results in the same order, the
cache consulted before dispatch and written by the driver only, no result lost to a dead node."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ml_tuner.build import emit_raw_ir
from ml_tuner.cache import MeasureCache
from ml_tuner.knobs import OZ, load_knobs
from ml_tuner.measure import Job, Subject, measure_many

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
TARGET = "aarch64-linux-gnu"
UNITS = ("pid.c", "digest.c", "always.c", "slp.c")
NODE_MEMORY = 80 * 2**20  # object store per node: the IR of a few units
DEAD_ADDRESS = "127.0.0.1:9"  # discard port: nothing listens there


def _raylets() -> set[str]:
    found = subprocess.run(["pgrep", "-f", "raylet"], capture_output=True, text=True).stdout
    return set(found.split())


def _building(raylet: str) -> bool:
    """Whether a worker of this raylet is running a measurement now (Ray titles a busy worker
    process `ray::<function>`, an idle one `ray::IDLE`)."""
    children = Path(f"/proc/{raylet}/task/{raylet}/children").read_text().split()
    for child in children:
        try:
            if Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"ray::measure_shipped"):
                return True
        except OSError:
            continue  # it just exited
    return False


@pytest.fixture(scope="module")
def cluster():
    """A head (1 CPU) and one more worker node (1 CPU), each its own raylet process."""
    import ray
    from ray.cluster_utils import Cluster

    before = _raylets()
    nodes = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": NODE_MEMORY, "include_dashboard": False})
    head = _raylets()
    nodes.worker = nodes.add_node(num_cpus=1, object_store_memory=NODE_MEMORY)
    nodes.wait_for_nodes()
    (nodes.worker_raylet,) = _raylets() - head
    yield nodes
    ray.shutdown()
    nodes.shutdown()
    assert _raylets() <= before, "a raylet of the test cluster outlived it"


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> list[Job]:
    """A small corpus: the tuner tests' units, each with clang -Oz and two knob settings."""
    folder = tmp_path_factory.mktemp("ray-ir")
    space = load_knobs().for_target(TARGET)
    out = []
    for unit in UNITS:
        ir = folder / f"{Path(unit).stem}.ll"
        emit_raw_ir(DATA / unit, TARGET, (), ir)
        subject = Subject.unit(unit, ir, TARGET)
        out += [Job(subject, candidate, space) for candidate in (OZ, *space.singles()[:2])]
    return out


@pytest.fixture(scope="module")
def pool_results(jobs, tmp_path_factory):
    return measure_many(jobs, workers=2, keep_dir=tmp_path_factory.mktemp("pool-builds"),
                        backend="pool")


def _outcomes(results):
    # Everything but the seconds a build took: the job, its sizes, its error, cached or not,
    # and the kept object file's bytes.
    return [(r.job, r.sizes, r.error, r.cached, r.artifact and r.artifact.read_bytes())
            for r in results]


class DriverOnlyCache(MeasureCache):
    """The real SQLite cache, noting which process writes each row."""

    writers: list[int]

    def put(self, key, sizes, seconds):
        self.writers.append(os.getpid())
        super().put(key, sizes, seconds)


def test_ray_equals_pool_and_the_cache_is_consulted_before_dispatch(
        cluster, jobs, pool_results, tmp_path, monkeypatch):
    import ray

    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    assert all(r.sizes is not None for r in pool_results)
    with DriverOnlyCache(tmp_path / "m.sqlite") as cache:
        cache.writers = []
        kept = tmp_path / "builds"
        kept.mkdir()
        on_ray = measure_many(jobs, cache=cache, keep_dir=kept, backend="ray")
        assert _outcomes(on_ray) == _outcomes(pool_results)
        assert all(r.artifact.parent == kept for r in on_ray)
        assert cache.writers == [os.getpid()] * len(jobs) and len(cache) == len(jobs)
        # A second run must need no cluster at all: every job is a hit before anything is sent.
        ray.shutdown()
        monkeypatch.setenv("RAY_ADDRESS", DEAD_ADDRESS)
        again = measure_many(jobs, cache=cache, backend="ray")
        assert all(r.cached for r in again) and not ray.is_initialized()
        assert [r.sizes for r in again] == [r.sizes for r in pool_results]
        assert len(list(kept.iterdir())) == len(jobs)
        assert len(cache.writers) == len(jobs)


def test_a_worker_node_killed_mid_run_loses_no_result(cluster, jobs, pool_results, tmp_path,
                                                      monkeypatch):
    import ray

    from ml_tuner.ray_cluster import connect

    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    connect()
    # A worker process on each node first (a new driver's tasks need new ones), so the worker
    # node takes its share from the start instead of the head doing everything meanwhile.
    # (A lambda: workers cannot import this test module, Ray ships a lambda by value.)
    ready = ray.remote(lambda: None).options(scheduling_strategy="SPREAD")
    ray.get([ready.remote() for _ in range(4)])
    killed: list[bool] = []

    def kill_the_worker_node_while_it_builds():
        deadline = time.monotonic() + 30
        while not _building(cluster.worker_raylet) and time.monotonic() < deadline:
            time.sleep(0.002)
        killed.append(_building(cluster.worker_raylet))
        cluster.remove_node(cluster.worker, allow_graceful=False)

    killer = threading.Thread(target=kill_the_worker_node_while_it_builds)
    killer.start()
    on_ray = measure_many(jobs, keep_dir=tmp_path, backend="ray")
    killer.join()
    assert killed == [True], "the worker node was not building when it was killed"
    assert cluster.worker_raylet not in _raylets()
    assert _outcomes(on_ray) == _outcomes(pool_results)


def test_an_address_where_no_cluster_answers_is_one_line(tmp_path):
    env = {**os.environ, "ML_TUNER_BACKEND": "ray", "RAY_ADDRESS": DEAD_ADDRESS,
           "FLEETFORGE_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-m", "ml_tuner", "tune", str(DATA / "pid.c"),
                          "--target", TARGET, "-o", str(tmp_path / "pid.o")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: RAY_ADDRESS: no Ray cluster answers at {DEAD_ADDRESS}")
    assert "ray start --head" in lines[-1] and "Traceback" not in run.stderr
    assert not (tmp_path / "pid.o").exists()
