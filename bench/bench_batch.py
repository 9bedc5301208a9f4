"""Batch decisions: member x offer decisions per second vs raw ``Booster.predict`` on the same matrix.

Three measurements on the benchmark program (bench/program.py; the data variant with
100 candidate offers at the decision moment, of which the model scores the contract
offers and the program's own 3 are decided without a score):

1. ``POST /v1/decisions/batch`` through gunicorn (the service's config, Redis store holding
   the materialized members, score cache emptied first): requests of ``--per-request``
   members, one at a time, so one worker on one core does the work; the streamed NDJSON
   is read to its summary line.
2. ``offers batch`` (the CLI: an audience file in, Parquet out, no online store), when the
   installed CLI has it, as a child process; its wall time includes start-up and loading.
3. The ceiling, in this process: the same members' feature matrix, built with the
   service's own ``feature_rows`` in chunks of the batch endpoint's size, scored by the
   champion's ``Booster.predict(num_threads=1)`` alone. Rows per second of that call is
   the ceiling; the building of the matrix is reported too (it is part of every decision).

Ratio = (members decided per second x scored offers per member) / (Booster.predict rows
per second): the share of raw model throughput a full decision keeps.

    python bench/bench_batch.py                       # about 3 minutes; updates docs/BENCHMARKS.md
    python bench/bench_batch.py --members-decided 2000 --no-doc
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import API_KEY, HOST, Gunicorn, RedisServer, load_average  # noqa: E402
from bench.program import (  # noqa: E402
    DEFAULT_WORKDIR,
    BenchProgram,
    drop_cache,
    materialize_into,
    prepare,
    service_env,
)
from bench.report import write_section  # noqa: E402

TARGET_RATIO = 0.70
CHUNK = 200  # members per feature matrix, as service.decisions.batch.CHUNK


def post_batch(port: int, members: list[str], channel: str = "app") -> tuple[float, int, dict[str, object]]:
    """One streamed batch request; returns (seconds, decision lines, summary)."""
    body = json.dumps({"member_ids": members, "channel": channel}).encode()
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    started = time.perf_counter()
    conn.request("POST", "/v1/decisions/batch", body=body,
                 headers={"Content-Type": "application/json", "X-API-Key": API_KEY})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"batch answered {resp.status}: {resp.read()[:500]!r}")
    lines, summary = 0, {}
    for raw in resp:
        doc = json.loads(raw)
        if "summary" in doc:
            summary = doc["summary"]
        else:
            lines += 1
    seconds = time.perf_counter() - started
    conn.close()
    return seconds, lines, summary


def ceiling(bench: BenchProgram, data_dir: Path, members: list[str], channel: str = "app",
            repeat: int = 3) -> dict[str, float]:
    """Feature-matrix build time and raw Booster.predict rows/s on the same members' rows."""
    from models.model import PropensityModel
    from runtime.decisions.materialize import load_members
    from runtime.decisions.scoring import feature_rows
    from runtime.decisions.setup import DecisionSetup

    setup = DecisionSetup.load(data_dir, bench.program, "data")
    model = PropensityModel.load(bench.model_dir())
    hist, _ = load_members(setup, data_dir, members)
    index = {m: i for i, m in enumerate(hist.member_ids.astype(str))}
    rows = np.array([index[m] for m in members if m in index], dtype=np.int64)
    as_of = setup.moment().local
    universe = setup.universe(as_of)
    started = time.perf_counter()
    chunks = [feature_rows(setup, hist, rows[lo:lo + CHUNK], universe, as_of, channel, model.program)
              for lo in range(0, len(rows), CHUNK)]
    build = time.perf_counter() - started
    n_rows = sum(len(x) for x in chunks)
    model.booster.predict(chunks[0][:100], num_threads=1)  # warm
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for x in chunks:
            model.booster.predict(x, num_threads=1)
        best = min(best, time.perf_counter() - started)
    # what the service itself scores with (OFFERS_COMPILE_MODEL, on by default): lleaves-compiled trees
    compiled = float("nan")
    if model.try_compile() is None:
        model.raw_score(chunks[0][:100])
        compiled = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            for x in chunks:
                model.raw_score(x)
            compiled = min(compiled, time.perf_counter() - started)
    return {"rows": n_rows, "compiled_s": compiled, "compiled_rows_per_s": n_rows / compiled, "members": len(rows), "scored_per_member": len(universe.scorable),
            "candidates": len(universe.offer_ids), "predict_s": best, "predict_rows_per_s": n_rows / best,
            "build_s": build, "build_rows_per_s": n_rows / build, "trees": model.booster.num_trees(),
            "features": model.booster.num_feature()}


def cli_batch(bench: BenchProgram, data_dir: Path, members: list[str], work: Path) -> dict[str, float] | None:
    """``offers batch`` on an audience file, if the CLI has the command; (wall seconds, its own figure)."""
    check = subprocess.run([sys.executable, "-m", "offers_cli.main", "batch", "--help"], cwd=ROOT,
                           capture_output=True, text=True, check=False)
    if check.returncode != 0:
        return None
    audience = work / "audience.txt"
    audience.write_text("\n".join(members) + "\n")
    out = work / "batch-out.parquet"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "offers_cli.main", "batch", "--registry", str(bench.registry),
                           "--data", str(data_dir), "--program", str(bench.program), "--members", str(audience),
                           "--out", str(out), "--as-of", "data", "--channel", "app"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"offers batch failed: {done.stdout[-1000:]} {done.stderr[-2000:]}")
    m = re.search(r"in ([0-9.]+)s", done.stdout)
    return {"wall_s": wall, "own_s": float(m.group(1)) if m else wall, "members": len(members)}


def run(args: argparse.Namespace) -> dict[str, object]:
    """Everything in the module docstring."""
    bench = prepare(args.workdir, args.members, args.seed)
    data_dir = bench.variant(args.candidates)
    runs = args.workdir / f"batch-{time.strftime('%Y%m%d-%H%M%S')}"
    runs.mkdir(parents=True)
    res: dict[str, object] = {"load_before": load_average(), "model": bench.champion()}
    with RedisServer(runs) as redis_server:
        members, _ = materialize_into(redis_server.url(), data_dir, bench.program)
        decided = members[:args.members_decided]
        env = service_env(bench, data_dir, redis_server.url(), runs / "events")
        with Gunicorn("service.wsgi:app", env, runs / "service.log", workers=args.workers) as svc:
            post_batch(svc.port, members[-50:])  # warm-up
            drop_cache(redis_server.url())
            total_s, total_lines, summaries = 0.0, 0, []
            for lo in range(0, len(decided), args.per_request):
                secs, lines, summary = post_batch(svc.port, decided[lo:lo + args.per_request])
                total_s += secs
                total_lines += lines
                summaries.append(summary)
            res["endpoint"] = {"seconds": total_s, "members": total_lines, "requests": len(summaries),
                               "summary": summaries[-1] if summaries else {}}
            print(f"/v1/decisions/batch: {total_lines:,} members in {total_s:.1f} s "
                  f"({total_lines / total_s:,.0f} members/s)")
    res["cli"] = cli_batch(bench, data_dir, decided, runs)
    if res["cli"] is not None:
        print(f"offers batch: {res['cli']}")
    res["ceiling"] = ceiling(bench, data_dir, decided)
    print(f"ceiling: {res['ceiling']}")
    res["load_after"] = load_average()
    return res


def render(res: dict[str, object], args: argparse.Namespace) -> str:
    """The BENCHMARKS.md section body."""
    c = res["ceiling"]
    assert isinstance(c, dict)
    per, cands = c["scored_per_member"], c["candidates"]
    predict_rps = c["predict_rows_per_s"]
    e = res["endpoint"]
    assert isinstance(e, dict)
    e_mps = e["members"] / e["seconds"]
    lines = [
        f"{args.members_decided:,} members with history x {cands} candidate offers each ({per} scored by the model, "
        f"the program's {cands - per} own offers decided without a score); model `{res['model']}`: LightGBM, "
        f"{c['trees']} trees, {c['features']} features, one thread. Ceiling, same run, same members: their feature "
        f"matrix ({c['rows']:,} rows, built with the service's `feature_rows` in chunks of {CHUNK} members) scored "
        f"by `Booster.predict(num_threads=1)` alone: **{predict_rps:,.0f} rows/s** "
        f"({c['predict_s']:.2f} s). Building that matrix took {c['build_s']:.1f} s "
        f"({c['build_rows_per_s']:,.0f} rows/s).",
        "",
        f"The service scores with the same trees compiled by lleaves (`OFFERS_COMPILE_MODEL`, on by default): "
        f"{c['compiled_rows_per_s']:,.0f} rows/s on that matrix, {c['compiled_rows_per_s'] / predict_rps:.1f}x "
        f"`Booster.predict`; the last column divides by that rate instead.",
        "",
        "| path | members/s | member x offer decisions/s | scored rows/s | / Booster.predict | / compiled predict |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| `POST /v1/decisions/batch` ({args.per_request:,} members per request, one request at a time, "
        f"score cache empty) | {e_mps:,.0f} | {e_mps * cands:,.0f} | {e_mps * per:,.0f} | "
        f"**{e_mps * per / predict_rps:.2f}** | {e_mps * per / c['compiled_rows_per_s']:.2f} |",
    ]
    ratios = [e_mps * per / predict_rps]
    cli = res.get("cli")
    if isinstance(cli, dict):
        own = cli["members"] / cli["own_s"]
        lines.append(f"| `offers batch` (CLI, Parquet out; its own timing, {cli['wall_s']:.1f} s wall with start-up) "
                     f"| {own:,.0f} | {own * cands:,.0f} | {own * per:,.0f} | **{own * per / predict_rps:.2f}** | "
                     f"{own * per / c['compiled_rows_per_s']:.2f} |")
        ratios.append(own * per / predict_rps)
    else:
        lines.append("| `offers batch` | not measured: the installed CLI has no `batch` command yet | | | | |")
    best = max(ratios)
    verdict = "holds" if best >= TARGET_RATIO else f"MISSED by {TARGET_RATIO / best:.1f}x"
    lines += ["", f"Target (issue 6): batch scoring >= {TARGET_RATIO:.0%} of raw Booster.predict throughput: "
                  f"best **{best:.2f}** ({verdict}). Feature building alone runs at "
                  f"{c['build_rows_per_s'] / predict_rps:.2f}x the Booster.predict rate; building plus the "
                  f"compiled model, and nothing else, would reach "
                  f"{1 / (1 / c['build_rows_per_s'] + 1 / c['compiled_rows_per_s']) / predict_rps:.2f} of the "
                  f"ceiling, so everything else a decision does (state, caps, arbitration, coupons, output) "
                  f"is what separates the two.",
              "", f"Machine load average (1/5/15 min) before: {res['load_before']}, after: {res['load_after']}."]
    return "\n".join(lines)


def main() -> None:
    """Parse options, run, print, and (unless --no-doc) refresh the batch section."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members-decided", type=int, default=10_000, help="members decided (default 10,000)")
    parser.add_argument("--per-request", type=int, default=2000, help="members per batch request (default 2,000)")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: the config's)")
    parser.add_argument("--members", type=int, default=20_000, help="synthetic members in the program")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/BENCHMARKS.md")
    args = parser.parse_args()
    res = run(args)
    body = render(res, args)
    print(body)
    if not args.no_doc:
        write_section("batch", "Batch decisions vs raw Booster.predict", body)


if __name__ == "__main__":
    main()
