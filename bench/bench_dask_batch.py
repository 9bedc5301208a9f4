"""``offers batch`` in-process against a local Dask cluster of 1 and 2 single-threaded workers.

Decides every member of a synthetic data directory (``offers data synthetic``) with a
registry's champion, once in-process (:func:`runtime.decisions.audience.run`, one Parquet
file) and once per worker count on a ``LocalCluster`` (:func:`runtime.decisions.cluster_batch.run_on_cluster`,
a directory of part files), each run in a fresh child process so peak RSS figures are the
run's own. Prints/writes wall time, members/s, rows/s, the client's peak RSS and each worker's
(``VmHWM`` of that process), and checks every cluster output has the in-process rows:

    offers data synthetic --members 200000 --seed 7 --out /tmp/syn200k
    python -m bench.bench_dask_batch --data /tmp/syn200k --registry REG --workers 1 --workers 2 --out batch.json

The model may come from a smaller synthetic program of the same seed (same catalog). The
program has no budgets, so no Redis is involved. Wall time excludes starting the cluster
(reported apart); the client's figure includes reading the audience and writing the output.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_dask_features import machine_load, peak_rss_mb  # noqa: E402


def one(mode: str, data: Path, registry: Path, audience: Path, out: Path, as_of: str) -> dict[str, Any]:
    """One run in this process: ``in-process`` or ``dask-N``; returns its figures."""
    import pandas as pd

    from runtime.settings import settings_for

    load = machine_load()
    if mode == "in-process":
        from runtime.decisions.audience import run

        t0 = time.perf_counter()
        summary = run(data, registry, audience, out, as_of=as_of)
        wall = time.perf_counter() - t0
        extra: dict[str, Any] = {}
    else:
        from runtime.decisions.cluster_batch import run_on_cluster
        from runtime.distributed import dask_client

        n = int(mode.split("-")[1])
        t0 = time.perf_counter()
        with dask_client(workers=n) as client:
            start = time.perf_counter() - t0
            t0 = time.perf_counter()
            summary = run_on_cluster(client, data, registry, audience, out, settings_for(), as_of=as_of)
            wall = time.perf_counter() - t0
            workers = client.run(peak_rss_mb)
        extra = {"cluster_start_s": round(start, 1), "worker_peak_rss_mb": sorted(round(v) for v in workers.values())}
    rows = len(pd.read_parquet(out, columns=["rank"]))
    return {"mode": mode, "members": summary.members, "rows": rows, "wall_s": round(wall, 1),
            "members_per_s": round(summary.members / wall), "rows_per_s": round(rows / wall),
            "client_peak_rss_mb": round(peak_rss_mb()), **extra, "load_before": load, "load_after": machine_load()}


def same_rows(a: Path, b: Path) -> bool:
    """Whether two outputs hold the same rows (order aside), every column exact."""
    import pandas as pd

    def norm(p: Path) -> pd.DataFrame:
        return pd.read_parquet(p).sort_values(["member_id", "rank"]).reset_index(drop=True)

    return bool(norm(a).equals(norm(b)))


def table(results: list[dict[str, Any]]) -> str:
    """The BENCHMARKS.md section body for one or more runs of :func:`main` (their JSON)."""
    lines = ["| members | run | wall | members/s | rows/s | peak RSS per worker | client peak RSS | "
             "load avg before/after | same rows as in-process |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    ratios = []
    for result in results:
        for r in result["runs"]:
            workers = " / ".join(f"{v:,} MB" for v in r.get("worker_peak_rss_mb", [])) or "-"
            load = f"{r['load_before']['loadavg_1m']:.1f} / {r['load_after']['loadavg_1m']:.1f}"
            same = {True: "yes", False: "NO", None: "-"}[r.get("identical")]
            lines.append(f"| {result['members']:,} | {r['mode']} | {r['wall_s']:.1f} s | {r['members_per_s']:,} | "
                         f"{r['rows_per_s']:,} | {workers} | {r['client_peak_rss_mb']:,} MB | {load} | {same} |")
        found = [f"{k.replace('_', ' ')} {v}x" for k, v in result.items() if k.startswith("speedup")]
        if found:
            ratios.append(f"- {result['members']:,} members, same run: " + "; ".join(found))
    return "\n".join(lines) + "\n\n" + "\n".join(ratios) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--registry", type=Path, default=None)
    parser.add_argument("--workers", type=int, action="append", default=None, help="worker counts (repeat; default 1 and 2)")
    parser.add_argument("--skip-in-process", action="store_true", help="only the cluster runs (no identity check)")
    parser.add_argument("--as-of", default="data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_dask_batch"))
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--doc-from", type=Path, action="append", default=None,
                        help="print the BENCHMARKS.md table of these JSON results and stop (repeat)")
    args = parser.parse_args()
    if args.doc_from:
        print(table([json.loads(p.read_text()) for p in args.doc_from]))
        return
    if args.data is None or args.registry is None:
        parser.error("--data and --registry are required")
    audience = args.work / "audience.txt"
    if args.one is not None:  # a child: one run, its figures as the last line
        out = args.work / ("in-process.parquet" if args.one == "in-process" else args.one)
        print(json.dumps(one(args.one, args.data, args.registry, audience, out, args.as_of)))
        return
    import pandas as pd

    args.work.mkdir(parents=True, exist_ok=True)
    ids = pd.read_parquet(args.data / "members.parquet", columns=["member_id"])["member_id"].astype(str)
    audience.write_text("\n".join(ids) + "\n")
    modes = ([] if args.skip_in_process else ["in-process"]) + [f"dask-{n}" for n in (args.workers or [1, 2])]
    from bench.cpu_scaling import two_process_ceiling

    result: dict[str, Any] = {"data": str(args.data), "members": len(ids), "runs": [],
                              "two_process_ceiling": two_process_ceiling()}  # what two processes can gain here
    print(result["two_process_ceiling"], flush=True)
    for mode in modes:
        target = args.work / ("in-process.parquet" if mode == "in-process" else mode)
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        done = subprocess.run([sys.executable, "-m", "bench.bench_dask_batch", "--one", mode, "--data", str(args.data),
                               "--registry", str(args.registry), "--work", str(args.work), "--as-of", args.as_of],
                              cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
        run = json.loads(done.stdout.strip().splitlines()[-1])
        if mode != "in-process" and not args.skip_in_process:
            run["identical"] = same_rows(args.work / "in-process.parquet", target)
        result["runs"].append(run)
        print(run, flush=True)
    by = {r["mode"]: r for r in result["runs"]}
    if "dask-1" in by and "dask-2" in by:
        result["speedup_2_vs_1"] = round(by["dask-1"]["wall_s"] / by["dask-2"]["wall_s"], 2)
        result["speedup_2_vs_1_of_ceiling"] = round(result["speedup_2_vs_1"] / result["two_process_ceiling"]["ceiling"], 2)
    if "in-process" in by and "dask-2" in by:
        result["speedup_2_vs_in_process"] = round(by["in-process"]["wall_s"] / by["dask-2"]["wall_s"], 2)
    print({k: v for k, v in result.items() if k != "runs"})
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
