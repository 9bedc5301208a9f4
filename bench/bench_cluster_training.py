"""`offers train` on a Dask LocalCluster: wall time and peak memory of the client and of each worker.

Issue 18 asks that no step hold all members at once. With ``--workers N`` the training design
is built on the workers (``training/cluster_design.py``) and the client holds only the sampled
design. This script runs ``offers train --data DATA --workers N`` (and, with ``--in-process``,
plain ``offers train``) as separate processes and, every 0.2 s while each runs, reads the
high-water mark of resident memory (``VmHWM`` in ``/proc/PID/status``) of the command itself
(the client) and of every descendant process (the Dask workers and their nanny processes).
``VmHWM`` only grows, so the last reading before a process exits is its peak, short of at most
the last 0.2 s.

    python bench/bench_cluster_training.py --data /tmp/syn1m --workers 2 --workers 1
    python bench/bench_cluster_training.py --members 300000 --workers 2 --in-process

Without ``--data`` it generates ``--members`` synthetic members (seed 7) in a temporary
directory. Results go to docs/BENCHMARKS.md, section "Training on Dask: the client bounded".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.report import write_section

ROOT = Path(__file__).resolve().parents[1]


def vm_hwm_mib(pid: int) -> float | None:
    """``VmHWM`` of process ``pid`` in MiB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def run_train(args: list[str]) -> dict[str, Any]:
    """Run ``offers train ARGS``; return wall time, the client's peak and each descendant's peak (MiB)."""
    peaks: dict[int, float] = {}
    names: dict[int, str] = {}
    done = threading.Event()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "offers_cli.main", "train", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def watch() -> None:
        parent = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                family = [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in family:
                hwm = vm_hwm_mib(p.pid)
                if hwm is not None:
                    peaks[p.pid] = max(peaks.get(p.pid, 0.0), hwm)
                    if p.pid not in names:
                        try:
                            names[p.pid] = " ".join(p.cmdline())[-80:]
                        except psutil.Error:
                            names[p.pid] = "?"
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    done.set()
    watcher.join()
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"offers train {' '.join(args)} failed:\n{err[-3000:]}")
    client = peaks.pop(proc.pid, 0.0)
    # the workers are the largest descendants; nannies and the semaphore tracker stay small
    workers = sorted(peaks.values(), reverse=True)
    return {"wall_s": wall, "client_peak_mib": client, "descendant_peaks_mib": workers, "stdout": out}


def latest(registry: Path) -> dict[str, Any]:
    versions = sorted((registry / "versions").iterdir())
    return dict(json.loads((versions[-1] / "metadata.json").read_text()), _path=str(versions[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="an existing data directory (else one is generated)")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, action="append", help="worker counts to run (repeatable)")
    parser.add_argument("--in-process", action="store_true", help="also run plain offers train")
    parser.add_argument("--bootstrap", type=int, default=0)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    worker_counts = args.workers or [2]
    with tempfile.TemporaryDirectory(prefix="bench-cluster-train-") as tmp:
        work = Path(tmp)
        data = args.data
        if data is None:
            data = work / "syn"
            subprocess.run([sys.executable, "-m", "offers_cli.main", "data", "synthetic", "--members",
                            str(args.members), "--seed", "7", "--out", str(data)], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        plans = [("in-process", [])] if args.in_process else []
        plans += [(f"Dask, {n} worker{'s' if n > 1 else ''}", ["--workers", str(n)]) for n in worker_counts]
        for label, extra in plans:
            registry = work / f"reg-{len(runs)}"
            load_before = os.getloadavg()[0]
            result = run_train(["--data", str(data), "--registry", str(registry), "--bootstrap",
                                str(args.bootstrap), *extra])
            result["load"] = (load_before, os.getloadavg()[0])
            meta = latest(registry)
            runs.append((label, result, meta))
            print(label, json.dumps({k: v for k, v in result.items() if k != "stdout"}), meta["timings_s"], flush=True)
        models = {label: (Path(meta["_path"]) / "model.txt").read_text() for label, _, meta in runs}
        same = len(set(models.values())) == 1
    n_members = runs[0][2]["rows"]
    lines = ["| run | wall | client peak RSS | peak RSS per worker | load, fit, evaluate (s) | "
             "training rows (sampled of) | test AUC | load avg before / after |",
             "| --- | ---: | ---: | ---: | --- | --- | ---: | --- |"]
    for label, result, meta in runs:
        t, r = meta["timings_s"], meta["rows"]
        n_workers = int(label.split()[1]) if label.startswith("Dask") else 0
        workers = result["descendant_peaks_mib"][:n_workers]
        lines.append(
            f"| {label} | {result['wall_s']:.0f} s | {result['client_peak_mib']:,.0f} MiB | "
            f"{' / '.join(f'{w:,.0f}' for w in workers) + ' MiB' if workers else '-'} | "
            f"{t.get('load', 0):.0f} (design {t.get('features', 0):.0f}), {t['fit']:.0f}, {t['evaluate']:.0f} | "
            f"{r['train']:,} ({r['train_before_sampling']:,}); test {r['test']:,} ({r['test_before_sampling']:,}) | "
            f"{meta['headline_metrics'].get('roc_auc', float('nan')):.4f} | "
            f"{result['load'][0]:.1f} / {result['load'][1]:.1f} |")
    body = (f"- data: `{data}`, "
            f"{n_members['train_before_sampling'] + n_members['test_before_sampling']:,} labelled exposures\n"
            f"- registered models identical across runs: {'yes' if same else 'no'}\n\n" + "\n".join(lines) + "\n")
    print(body)
    if not args.no_doc:
        write_section("cluster-training", "Training on Dask: the client bounded (issue 18)", body,
                      command="python " + " ".join(["bench/bench_cluster_training.py", *sys.argv[1:]]))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
