"""Calls run as Ray tasks on a cluster (ML_TUNER_BACKEND=ray): connect, dispatch, collect.

Only `measure.measure_many` imports this module, and only when the Ray backend is chosen: Ray
takes seconds to import, and the rest of the tuner never pays for it. Nothing here knows what a
measurement is; the caller hands over a module-level function (workers import it by name, so
every node needs the same FleetForge installed) and its arguments.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import socket
from collections.abc import Callable, Iterator, Sequence

from fleetforge.errors import UserError
from fleetforge.progress import step_progress

ADDRESS_ENV = "RAY_ADDRESS"
# A task whose worker process or node dies is re-run this many times (Ray's `max_retries`; only
# system failures, never an exception the function raised itself).
RETRIES = 3
# Tasks in flight per CPU of the cluster: enough to keep every worker busy while results come
# back, few enough that a corpus of 100,000 jobs is not one giant submission.
IN_FLIGHT_PER_CPU = 4
# Fewer tasks than this are done before a progress bar would help (a search round is a few).
PROGRESS_MIN_TASKS = 20
RAY_CLIENT_PORT = 10001  # what `ray://HOST` means without a port
PROBE_SECONDS = 5.0
NEXT_STEP = ("start one (`ray start --head --port=6379` on the head, `ray start "
             "--address=HEAD:6379` on every other node), set RAY_ADDRESS to it, or unset "
             "RAY_ADDRESS for a Ray instance on this machine (ML_TUNER_BACKEND=pool: no Ray)")


def cluster_address() -> str | None:
    """The cluster to use: RAY_ADDRESS (`HOST:PORT`, `ray://HOST[:PORT]` or `auto`); None: Ray's
    own choice (the cluster `ray start` began on this machine, else a new local instance)."""
    return os.environ.get(ADDRESS_ENV) or None


def check_reachable(address: str) -> None:
    """Fail in seconds, with one line, where Ray itself would retry for minutes."""
    if address in ("auto", "local"):
        return  # Ray finds (or refuses) the cluster this machine runs, quickly
    host_port = address.removeprefix("ray://")
    host, _, port = host_port.rpartition(":")
    if not host:
        host, port = host_port, str(RAY_CLIENT_PORT)
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except (OSError, ValueError) as error:
        raise UserError(f"no Ray cluster answers at {address} ({error}); {NEXT_STEP}",
                        where=ADDRESS_ENV) from None


def connect() -> None:
    """Join the cluster RAY_ADDRESS names (once per process; a caller may have joined one)."""
    import ray

    if ray.is_initialized():
        return
    address = cluster_address()
    if address is not None:
        check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    except ConnectionError as error:
        raise UserError(f"cannot join the Ray cluster at {address or 'this machine'} ({error});"
                        f" {NEXT_STEP}", where=ADDRESS_ENV) from None


def run_tasks(func: Callable[..., object], calls: Sequence[tuple], *,
              label: str = "Ray tasks") -> Iterator[tuple[int, object]]:
    """Run func(*call) for each call as a Ray task; yield (index, value) as each finishes.

    A bytes argument is stored in the object store once and shared by every call that passes
    the same object (a subject's IR, for all its candidates): each node fetches it once.
    """
    import ray

    connect()
    remote = ray.remote(max_retries=RETRIES, num_cpus=1)(func)
    stored: dict[int, object] = {}

    def share(arg: object) -> object:
        if not isinstance(arg, bytes):
            return arg
        if id(arg) not in stored:  # `calls` keeps each object alive, so ids stay unique
            stored[id(arg)] = ray.put(arg)
        return stored[id(arg)]

    def submit(index: int) -> None:
        pending[remote.remote(*map(share, calls[index]))] = index

    window = max(1, int(ray.cluster_resources().get("CPU", 1))) * IN_FLIGHT_PER_CPU
    pending: dict[object, int] = {}
    queued = iter(range(len(calls)))
    for index in itertools.islice(queued, window):
        submit(index)
    with contextlib.ExitStack() as stack:
        progress = (stack.enter_context(step_progress())
                    if len(calls) >= PROGRESS_MIN_TASKS else None)
        bar = progress.add_task(label, total=len(calls)) if progress else None
        while pending:
            ray.wait(list(pending), num_returns=1)  # block for one, then take all that are ready
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            for ref in done:
                index = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayTaskError:
                    raise  # the function's own exception (also an instance of its class)
                except ray.exceptions.RayError as error:
                    raise UserError(f"a Ray task was lost on all {RETRIES + 1} tries "
                                    f"({type(error).__name__}); see `ray status` and the nodes'"
                                    f" logs (/tmp/ray/session_latest/logs)",
                                    where=cluster_address() or "local Ray") from None
                for refill in itertools.islice(queued, 1):
                    submit(refill)
                if progress:
                    progress.advance(bar)
                yield index, value
