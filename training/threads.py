"""How many threads a LightGBM fit may use, and how independent fits share them.

LightGBM's ``num_threads`` parameter overrides the OpenMP default, so a process started with
``OMP_NUM_THREADS=1`` (a test run, a batch job sharing its cores) would still fit on every
core unless the parameter itself follows the variable. On a busy machine LightGBM's spinning
threads make a small fit several times slower than one thread does (docs/BENCHMARKS.md,
"Test suite time").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

K = TypeVar("K")
T = TypeVar("T")


def fit_threads() -> int:
    """``OMP_NUM_THREADS`` when it is set to a positive whole number, else every core.

    Why: the operator's (or the test run's) thread limit must reach LightGBM, which would
    otherwise take every core whatever the environment says.
    """
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return os.cpu_count() or 1


#: Independent fits run at most this many at a time: each holds its own binned copy of up to
#: ``training.train.SEARCH_ROWS`` rows, so more would cost memory for little gain.
MAX_PARALLEL_FITS = 4


def fit_plan(n_fits: int) -> tuple[int, int]:
    """How many of ``n_fits`` independent LightGBM fits run at once, and the threads each gets.

    Why: model selection makes about ten small fits (7-leaf trees on a few hundred thousand
    rows) that do not depend on each other. Such a fit gains little from a second OpenMP thread,
    and on a shared machine its threads spin at every barrier while they wait for a core, so
    two single-threaded fits side by side use two cores much better than one fit on two threads
    (docs/BENCHMARKS.md, "Test suite time"). The thread budget stays :func:`fit_threads`: with
    ``OMP_NUM_THREADS=1`` the fits run one after another, as before.
    """
    threads = fit_threads()
    parallel = max(1, min(n_fits, threads, MAX_PARALLEL_FITS))
    return parallel, max(1, threads // parallel)


def run_fits(jobs: dict[K, Callable[[int], T]], on_done: Callable[[], None] | None = None) -> dict[K, T]:
    """Run independent fits (each called with its thread count) as :func:`fit_plan` says.

    The jobs run in threads of this process (LightGBM releases the GIL while it trains), in the
    order given, so callers put the longest first; the result of each is returned under its key,
    whatever order they finish in. A fit gets the same thread count whether it runs alone or beside
    others, so the models do not depend on the scheduling, only on the thread budget.
    """
    parallel, threads = fit_plan(len(jobs))
    if parallel == 1:
        out = {}
        for key, job in jobs.items():
            out[key] = job(threads)
            if on_done is not None:
                on_done()
        return out
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="fit") as pool:
        futures = {pool.submit(job, threads): key for key, job in jobs.items()}
        done: dict[K, T] = {}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            if on_done is not None:
                on_done()
    return {key: done[key] for key in jobs}
