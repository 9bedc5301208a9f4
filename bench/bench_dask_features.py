"""Point-in-time features in-process against a local Dask cluster of 1 and 2 workers.

Computes the feature matrix ``offers train`` computes (the sampled training rows and the test
rows of the default split) on a data directory, once in-process and once per worker count on
a ``LocalCluster`` of single-threaded worker processes (:mod:`training.distributed`), checks
every cluster matrix equals the in-process one bit for bit, and prints/writes wall time,
rows/s and peak RSS (the client's, and each worker's, from ``VmHWM`` in that process):

    offers data synthetic --members 300000 --seed 7 --out /tmp/syn300k
    python -m bench.bench_dask_features --data /tmp/syn300k --workers 1 --workers 2 --out dask.json

The in-process figure's peak RSS is the whole process's (data set loaded and features);
a worker's peak RSS is its own process's over the run (its partitions, the catalog, Dask).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB: ``VmHWM`` from /proc (Linux).

    Not ``getrusage``: its ``ru_maxrss`` survives ``execve``, so a worker process spawned by
    a large client would report the client's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rows_of(ds: Any) -> pd.DataFrame:
    """The training and test rows ``offers train`` computes features for (default split, sampled)."""
    from training.train import default_train_end, sample_test_members, sample_training_rows, split

    train, test = split(ds, default_train_end(ds))
    return pd.concat([sample_training_rows(train), sample_test_members(test)], ignore_index=True)


def run(data: Path, workers: list[int], out: Path | None) -> dict[str, Any]:
    from training.dataset import load_dataset
    from training.distributed import dask_client
    from training.train import PARTITION_MEMBERS, feature_matrix

    t0 = time.perf_counter()
    ds = load_dataset(data, validate=False)
    rows = rows_of(ds)
    load_s = time.perf_counter() - t0
    result: dict[str, Any] = {"data": str(data), "members": int(ds.history.n_members), "rows": len(rows),
                              "partitions": len(np.unique(rows["m"].to_numpy() // PARTITION_MEMBERS)),
                              "partition_members": PARTITION_MEMBERS, "load_s": round(load_s, 1), "runs": []}
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    reference = feature_matrix(ds, rows)
    wall = time.perf_counter() - t0
    result["runs"].append({"mode": "in-process", "wall_s": round(wall, 1), "rows_per_s": round(len(rows) / wall),
                           "client_peak_rss_mb": round(peak_rss_mb()), "client_peak_rss_before_mb": round(rss_before)})
    print(result["runs"][-1], flush=True)
    for n in workers:
        t0 = time.perf_counter()
        with dask_client(workers=n) as client:
            start_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            X = feature_matrix(ds, rows, client=client)
            wall = time.perf_counter() - t0
            worker_rss = client.run(peak_rss_mb)
        equal = bool(np.array_equal(X, reference, equal_nan=True))
        result["runs"].append({"mode": f"dask {n} worker{'s' if n > 1 else ''}", "wall_s": round(wall, 1),
                               "cluster_start_s": round(start_s, 1), "rows_per_s": round(len(rows) / wall),
                               "worker_peak_rss_mb": sorted(round(v) for v in worker_rss.values()),
                               "client_peak_rss_mb": round(peak_rss_mb()), "identical": equal})
        print(result["runs"][-1], flush=True)
        if not equal:
            raise SystemExit("the cluster's feature matrix differs from the in-process one")
    if out is not None:
        out.write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--workers", type=int, action="append", default=None,
                        help="worker counts to run (repeat; default 1 and 2)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    run(args.data, args.workers or [1, 2], args.out)


if __name__ == "__main__":
    main()
