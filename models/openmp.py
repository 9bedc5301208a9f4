"""OpenMP's wait policy for LightGBM's threads, set before LightGBM loads.

By default libgomp's idle threads spin at every barrier before they sleep. A LightGBM fit or
prediction on several threads meets thousands of barriers, and when another process shares the
cores (a test run, a benchmark, another job on the host) the spinning thread holds a core the
thread it waits for needs: a 70,000-row fit on 2 threads took 22 s instead of 4.5 s on a busy
2-core machine (docs/BENCHMARKS.md, "Test suite time"). Passive waiting costs little when the
machine is idle. An operator's own ``OMP_WAIT_POLICY`` wins; importing LightGBM before this
package leaves its OpenMP runtime as it was.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
