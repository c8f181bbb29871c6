"""Run measurement jobs in parallel: a local process pool (default) or Ray when asked and installed."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from fleetforge.errors import UserError


def default_workers() -> int:
    """Worker count: ML_TUNER_WORKERS, else every core (the machine may be shared: set it)."""
    return int(os.environ.get("ML_TUNER_WORKERS", os.cpu_count() or 1))


def run_jobs(
    jobs: list[Any],
    func: Callable[..., Any],
    *,
    workers: int,
    on_done: Callable[[], None] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """Yield (job, func(job.module.path, job.passes, job.triple)) as each finishes."""
    backend = os.environ.get("ML_TUNER_BACKEND", "local")
    if backend == "ray":
        yield from _run_ray(jobs, func, on_done)
        return
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            out = func(job.module.path, job.passes, job.triple)
            if on_done:
                on_done()
            yield job, out
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(func, j.module.path, j.passes, j.triple): j for j in jobs}
        for future in as_completed(futures):
            if on_done:
                on_done()
            yield futures[future], future.result()


def _run_ray(jobs: list[Any], func: Callable[..., Any], on_done: Callable[[], None] | None):
    """Same jobs as Ray tasks (module files must be visible to every Ray worker)."""
    try:
        import ray  # type: ignore[import-not-found]
    except ModuleNotFoundError:
        raise UserError("ML_TUNER_BACKEND=ray but ray is not installed (pip install ray)") from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"))
    remote = ray.remote(func)
    refs = {remote.remote(j.module.path, j.passes, j.triple): j for j in jobs}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            if on_done:
                on_done()
            yield refs[ref], ray.get(ref)
