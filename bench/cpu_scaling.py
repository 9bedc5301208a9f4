"""The machine's own two-process ceiling: how much faster two plain processes run than one.

A Dask cluster of two single-threaded workers can be at most as much faster than one as the
machine lets two ordinary processes be. On a shared or oversubscribed virtual machine two vCPUs
may give far less than 2x; a benchmark that judges Dask's scaling reports this ceiling, measured
in the same run, beside it (``bench_dask_features.py``, ``bench_dask_batch.py``).

The work is single-threaded numpy of the kind the feature code does (sort, prefix sum, random
gather over 4M float64), run once alone and then in two processes at once:

    python -m bench.cpu_scaling
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

_WORK = """
import time
import numpy as np
rng = np.random.default_rng(0)
a = rng.random(4_000_000)
t = time.perf_counter()
for _ in range(12):
    c = np.cumsum(np.sort(a))
    g = c[rng.integers(0, len(a), len(a))]
print(time.perf_counter() - t)
"""


def _start() -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _WORK], stdout=subprocess.PIPE, text=True, env=env)


def _seconds(proc: subprocess.Popen[str]) -> float:
    out, _ = proc.communicate()
    return float(out.strip())


def two_process_ceiling(rounds: int = 3) -> dict[str, Any]:
    """The best of ``rounds``: one process's time alone, two at once, and the throughput ratio (2.0 is perfect)."""
    alone, together = [], []
    for _ in range(rounds):
        alone.append(_seconds(_start()))
        pair = [_start(), _start()]
        together.append(max(_seconds(p) for p in pair))
        time.sleep(0.2)
    one, two = min(alone), min(together)
    return {"one_process_s": round(one, 2), "two_processes_s": round(two, 2), "ceiling": round(2 * one / two, 2)}


if __name__ == "__main__":
    print(json.dumps(two_process_ceiling()))
