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


def machine_load() -> dict[str, float]:
    """The 1-minute load average and the share of the last minute some task waited for a CPU.

    The machine may be shared: figures taken while other work ran are slower than the code.
    """
    load = float(Path("/proc/loadavg").read_text().split()[0])
    pressure = Path("/proc/pressure/cpu")
    some = (float(pressure.read_text().split()[2].split("=")[1]) if pressure.exists() else float("nan"))
    return {"loadavg_1m": load, "cpu_pressure_avg60_pct": some}


def rows_of(ds: Any) -> pd.DataFrame:
    """The training and test rows ``offers train`` computes features for (default split, sampled)."""
    from training.train import default_train_end, sample_test_members, sample_training_rows, split

    train, test = split(ds, default_train_end(ds))
    return pd.concat([sample_training_rows(train), sample_test_members(test)], ignore_index=True)


def run(data: Path, workers: list[int], out: Path | None, in_process: bool = True) -> dict[str, Any]:
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
    from bench.cpu_scaling import two_process_ceiling

    result["two_process_ceiling"] = two_process_ceiling()  # what two processes can gain here at all
    print(result["two_process_ceiling"], flush=True)
    rss_before = peak_rss_mb()
    reference = None
    if in_process:
        t0 = time.perf_counter()
        reference = feature_matrix(ds, rows)
        wall = time.perf_counter() - t0
        result["runs"].append({"mode": "in-process", "task_compute_s": round(wall, 1), "wall_s": round(wall, 1),
                               "rows_per_s": round(len(rows) / wall), "client_peak_rss_mb": round(peak_rss_mb()),
                               "client_peak_rss_before_mb": round(rss_before), **machine_load()})
        print(result["runs"][-1], flush=True)
    for n in workers:
        t0 = time.perf_counter()
        with dask_client(workers=n) as client:
            start_s = time.perf_counter() - t0
            from distributed import get_task_stream

            t0 = time.perf_counter()
            with get_task_stream(client) as stream:
                X = feature_matrix(ds, rows, client=client)
            wall = time.perf_counter() - t0
            worker_rss = client.run(peak_rss_mb)
        # seconds the workers spent inside the tasks (reading + features), summed over tasks
        compute = sum(part["stop"] - part["start"] for task in stream.data for part in task["startstops"]
                      if part["action"] == "compute")
        equal = None if reference is None else bool(np.array_equal(X, reference, equal_nan=True))
        del X
        result["runs"].append({"mode": f"dask {n} worker{'s' if n > 1 else ''}", "wall_s": round(wall, 1),
                               "cluster_start_s": round(start_s, 1), "rows_per_s": round(len(rows) / wall),
                               "task_compute_s": round(compute, 1),
                               "worker_peak_rss_mb": sorted(round(v) for v in worker_rss.values()),
                               "client_peak_rss_mb": round(peak_rss_mb()), "identical": equal, **machine_load()})
        print(result["runs"][-1], flush=True)
        if equal is False:
            raise SystemExit("the cluster's feature matrix differs from the in-process one")
    walls = {r["mode"]: r["wall_s"] for r in result["runs"]}
    if "dask 1 worker" in walls and "dask 2 workers" in walls:
        result["speedup_2_vs_1"] = round(walls["dask 1 worker"] / walls["dask 2 workers"], 2)
        result["speedup_2_vs_1_of_ceiling"] = round(result["speedup_2_vs_1"] / result["two_process_ceiling"]["ceiling"], 2)
        print({k: v for k, v in result.items() if k.startswith("speedup")}, flush=True)
    if out is not None:
        out.write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--workers", type=int, action="append", default=None,
                        help="worker counts to run (repeat; default 1 and 2)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--skip-in-process", action="store_true",
                        help="only the cluster runs (no identity check): for data whose in-process run is too long")
    args = parser.parse_args()
    run(args.data, args.workers or [1, 2], args.out, not args.skip_in_process)


if __name__ == "__main__":
    main()
