"""How many threads a LightGBM fit may use.

LightGBM's ``num_threads`` parameter overrides the OpenMP default, so a process started with
``OMP_NUM_THREADS=1`` (a test run, a batch job sharing its cores) would still fit on every
core unless the parameter itself follows the variable. On a busy machine LightGBM's spinning
threads make a small fit several times slower than one thread does (docs/BENCHMARKS.md,
"Test suite time").
"""

from __future__ import annotations

import os


def fit_threads() -> int:
    """``OMP_NUM_THREADS`` when it is set to a positive whole number, else every core.

    Why: the operator's (or the test run's) thread limit must reach LightGBM, which would
    otherwise take every core whatever the environment says.
    """
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return os.cpu_count() or 1
