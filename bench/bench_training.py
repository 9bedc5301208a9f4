"""Training benchmark: wall time and peak memory of `offers train`, on The Complete Journey
(features + training + evaluation, target under 60 s on 2 cores, with the model's test
metrics against the product-spend heuristic) and on a synthetic program (default 1M members).

Each run is a separate `offers train` process; its peak memory is read from
`/usr/bin/time -v`-style rusage of the child. Results go to docs/BENCHMARKS.md.

    python bench/bench_training.py                 # CJ + 1M synthetic
    python bench/bench_training.py --members 100000 --skip-cj
    python bench/bench_training.py --skip-synthetic --splits 2017-06-15,2017-08-01,2017-08-15

``--splits`` also trains on those cut-offs (default the three distinct ones around the benchmark's:
2017-07-15 and 2017-09-01 give the same exposures as 2017-08-01 and 2017-08-15) and tables, per split,
the served model against the product-spend heuristic and the candidate the selection chose (the
ranking floor, issue 15).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.report import write_section

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str]) -> tuple[float, float, str]:
    """Run ``offers ARGS`` in a child; return (wall seconds, that child's peak RSS in MiB, stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "offers_cli.main", *args], stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"offers {' '.join(args)} failed:\n{err.read().decode()[-3000:]}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def trained(registry: Path) -> dict:
    versions = sorted((registry / "versions").iterdir())
    return json.loads((versions[-1] / "metadata.json").read_text())


def split_row(cut: str, meta: dict) -> str:
    """One per-split table row: the served model against the heuristic on that split's test block."""
    m, h = meta["metrics"]["model"], meta["metrics"]["product_spend"]
    sel = meta["metrics"]["selection"]
    floor = "holds" if m["hit@1"] >= h["hit@1"] and m["hit@3"] >= h["hit@3"] else "**below**"
    return (f"| {cut} | {meta['rows']['train_positives']:,} / {meta['rows']['test_positives']:,} | `{sel['chosen']}` | "
            f"{m['hit@1']:.4f} / {h['hit@1']:.4f} | {m['hit@3']:.4f} / {h['hit@3']:.4f} | "
            f"{m['roc_auc']:.4f} / {h['roc_auc']:.4f} | {m['ece']:.5f} | {floor} |")


SPLIT_HEADER = ("| `--train-end` | train / test positives | served | hit@1 served / heuristic | "
                "hit@3 served / heuristic | ROC-AUC served / heuristic | ECE | floor |\n"
                "| --- | --- | --- | --- | --- | --- | --- | --- |\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--skip-cj", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--splits", default="2017-06-15,2017-08-01,2017-08-15",
                        help="CJ cut-offs for the per-split table (comma-separated; empty: none)")
    args = parser.parse_args()
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        if not args.skip_cj:
            run(["data", "completejourney", "--out", str(work / "cj")])
            wall, peak, _ = run(["train", "--data", str(work / "cj"), "--registry", str(work / "reg-cj"),
                                 "--train-end", "2017-08-01", "--config", "examples/programs/completejourney.yaml"])
            meta = trained(work / "reg-cj")
            per_split = {"2017-08-01": split_row("2017-08-01", meta)}
            for cut in [c for c in args.splits.split(",") if c and c not in per_split]:
                run(["train", "--data", str(work / "cj"), "--registry", str(work / f"reg-cj-{cut}"),
                     "--train-end", cut, "--config", "examples/programs/completejourney.yaml", "--bootstrap", "0"])
                per_split[cut] = split_row(cut, trained(work / f"reg-cj-{cut}"))
            splits = SPLIT_HEADER + "\n".join(per_split[c] for c in sorted(per_split)) + "\n"
            m, h = meta["metrics"]["model"], meta["metrics"]["product_spend"]
            sel = meta["metrics"]["selection"]
            t = meta["timings_s"]
            rows.append(f"| The Complete Journey, `--train-end 2017-08-01` | {wall:.1f} s | {peak:,.0f} MiB | "
                        f"load {t['load']} s, features {t['features']} s, fit {t['fit']} s, evaluate {t['evaluate']} s; "
                        f"features + training + evaluation = {t['features'] + t['fit'] + t['evaluate']:.1f} s (target < 60 s) |")
            quality = (
                "| measure | served model | product-spend heuristic | target |\n| --- | --- | --- | --- |\n"
                f"| member x coupon ROC-AUC | {m['roc_auc']:.4f} [{m['ci95']['roc_auc'][0]:.3f}, {m['ci95']['roc_auc'][1]:.3f}] | {h['roc_auc']:.4f} | >= 0.93 |\n"
                f"| hit@1 within member x campaign | {m['hit@1']:.4f} [{m['ci95']['hit@1'][0]:.3f}, {m['ci95']['hit@1'][1]:.3f}] | {h['hit@1']:.4f} | >= 0.45 |\n"
                f"| hit@3 within member x campaign | {m['hit@3']:.4f} [{m['ci95']['hit@3'][0]:.3f}, {m['ci95']['hit@3'][1]:.3f}] | {h['hit@3']:.4f} | >= 0.72 |\n"
                f"| NDCG@5 | {m['ndcg@5']:.4f} | {h['ndcg@5']:.4f} | |\n"
                f"| ECE | {m['ece']:.5f} | | |\n"
                f"| member x campaign ROC-AUC, from the offer model (1 - prod(1 - p)) | {meta['metrics']['member_campaign']['roc_auc']:.4f} | | |\n"
                f"| member x campaign ROC-AUC, dedicated model | {meta['metrics']['member_campaign_model']['roc_auc']:.4f} | | >= 0.85 |\n"
                f"\nServed: `{sel['chosen']}` (tree variant `{sel['variant']}`): {sel['reason']}. "
                "95% intervals from a bootstrap over members.\n"
                "\nThe ranking floor on every distinct split around it (test = exposures from the cut-off on; "
                "the served model against the heuristic on the same rows; `floor` holds when hit@1 and hit@3 are "
                "not below):\n\n" + splits)
        if not args.skip_synthetic:
            data = work / "syn"
            run(["data", "synthetic", "--members", str(args.members), "--out", str(data)])
            wall, peak, _ = run(["train", "--data", str(data), "--registry", str(work / "reg-syn"), "--bootstrap", "50"])
            meta = trained(work / "reg-syn")
            t = meta["timings_s"]
            r = meta["rows"]
            rows.append(f"| synthetic, {args.members:,} members | {wall:.1f} s | {peak:,.0f} MiB | "
                        f"load {t['load']} s, features {t['features']} s, fit {t['fit']} s, evaluate {t['evaluate']} s; "
                        f"{r['train_before_sampling']:,} training exposures sampled to {r['train']:,}, "
                        f"test {r['test_before_sampling']:,} sampled to {r['test']:,}; "
                        f"test AUC {meta['metrics']['model']['roc_auc']:.3f} |")
    load_after = os.getloadavg()
    table = "| data | wall time | peak memory | breakdown |\n| --- | --- | --- | --- |\n"
    load = (f"\nMachine load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in load_before)}, after: "
            f"{' / '.join(f'{x:.2f}' for x in load_after)}. LightGBM's OpenMP threads slow down far more than "
            "proportionally when other processes share the 2 cores; compare runs made on a quiet machine.\n")
    # one section per data set, so a run of one keeps the other's latest figures
    if not args.skip_cj:
        body = (table + rows[0] + "\n" + load + "\nModel quality on The Complete Journey "
                "(test = campaigns starting on or after 2017-08-01):\n\n" + quality)
        write_section("training", "Training: The Complete Journey", body)
        print(body)
    if not args.skip_synthetic:
        body = table + rows[-1] + "\n" + load
        write_section("training-synthetic", "Training: synthetic members at scale", body)
        print(body)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
