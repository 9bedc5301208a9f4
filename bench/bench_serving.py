"""Real-time decisions through gunicorn vs a trivial Flask JSON endpoint under the same config.

What runs (all on loopback, every load run bounded in time):

1. the benchmark program (bench/program.py: synthetic members, a trained champion model,
   data variants with exactly 50 and 100 candidate offers at the decision moment);
2. a private redis-server; every member's history records and profile are written into
   it with the service's own materialization code;
3. the ceiling: ``bench.trivial_app:app`` (parse the JSON body, answer a small JSON
   document) under ``gunicorn -c python:service.gunicorn_conf``, the service's own config
   (sync workers, cores + 1 of them), driven by wrk exactly like the service;
   measured before and after the service runs, the mean is the ceiling;
4. for each candidate count, the service (``service.wsgi:app``, Redis store, API key,
   ``OFFERS_CLOCK=data``) under the same config, and ``POST /v1/decisions`` with
   ``{"member_id", "channel": "app"}`` for members with purchase history:

   * cache cold: every request is a different member and the score cache is emptied
     before each run, so each decision computes features and calls the model;
   * cache warm: the members' score vectors are cached first (as ``offers materialize``
     warms them) and the requests cycle over those members.

For each: the maximum throughput (wrk, N connections, unpaced), then p50/p99 with the
offered load held at half of that maximum (bench/harness.py: paced). The cache hit ratio
and degraded decisions are read from the service's /metrics around each run.

    python bench/bench_serving.py                   # about 6 minutes; updates docs/BENCHMARKS.md
    python bench/bench_serving.py --seconds 5 --no-doc
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    Gunicorn,
    LoadResult,
    Measured,
    RedisServer,
    effective_workers,
    fmt_ms,
    http,
    load_average,
    measured,
    metric_sum,
    paced,
    require_wrk,
    wrk_run,
)
from bench.program import (  # noqa: E402
    DEFAULT_WORKDIR,
    BenchProgram,
    drop_cache,
    materialize_into,
    prepare,
    service_env,
    warm_cache_into,
)
from bench.report import write_section  # noqa: E402

#: Targets of issue 6 (2 cores).
P99_TARGET_MS = 5.0
WARM_RATIO_TARGET = 0.70


def write_bodies(path: Path, members: list[str], channel: str = "app") -> Path:
    """One decision request body per line."""
    path.write_text("".join(json.dumps({"member_id": m, "channel": channel}) + "\n" for m in members))
    return path


class Counters:
    """Cache hits/misses and degraded decisions from /metrics, as deltas around a run."""

    def __init__(self, base: str):
        self.base = base
        self.start = self.read()

    def read(self) -> tuple[float, float, float, float]:
        return (metric_sum(self.base, "offers_score_cache_lookups_total", result="hit"),
                metric_sum(self.base, "offers_score_cache_lookups_total", result="miss"),
                metric_sum(self.base, "offers_decisions_degraded_total"),
                metric_sum(self.base, "offers_decisions_total"))

    def delta(self) -> dict[str, float]:
        now = self.read()
        hit, miss, degraded, decisions = (b - a for a, b in zip(self.start, now, strict=True))
        return {"hit_ratio": hit / (hit + miss) if hit + miss else float("nan"), "degraded": degraded,
                "decisions": decisions}


def decision_runs(svc: Gunicorn, redis_server: RedisServer, bodies: Path, seconds: float, connections: int,
                  drop: Callable[[], None] | None,
                  workers: int) -> tuple[Measured, LoadResult, dict[str, float], LoadResult, LoadResult]:
    """Max throughput (with CPU per request), half-load latency, metric deltas, one-connection latency,
    and half-load latency with as many connections as workers (no request waits for a worker)."""
    counters = Counters(svc.base)
    if drop is not None:
        drop()
    top = measured(svc, redis_server, lambda: wrk_run(svc.base, "/v1/decisions", bodies, seconds, connections))
    half = paced(svc.base, "/v1/decisions", bodies, top.load.rps / 2, seconds, connections, before_each=drop)
    half_w = paced(svc.base, "/v1/decisions", bodies, top.load.rps / 2, seconds, workers, threads=1,
                   before_each=drop)
    if drop is not None:
        drop()
    solo = wrk_run(svc.base, "/v1/decisions", bodies, seconds / 2, connections=1, threads=1)
    return top, half, counters.delta(), solo, half_w


def run(args: argparse.Namespace) -> dict[str, object]:
    """Everything in the module docstring; returns the results as a dict."""
    require_wrk()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    bench: BenchProgram = prepare(work, args.members, args.seed)
    variants = {n: bench.variant(n) for n in args.candidates}
    runs = work / f"serving-{time.strftime('%Y%m%d-%H%M%S')}"
    runs.mkdir()
    results: dict[str, object] = {"load_before": load_average(), "candidates": {}, "members": args.members,
                                  "model": bench.champion(), "workers": effective_workers(args.workers)}
    with RedisServer(runs) as redis_server:
        url = redis_server.url()
        members, secs = materialize_into(url, variants[args.candidates[0]], bench.program)
        print(f"materialized {args.members:,} members into a private Redis in {secs:.1f} s; "
              f"{len(members):,} have history")
        random.Random(7).shuffle(members)
        cold = write_bodies(runs / "cold.txt", members)
        warm_members = members[:args.warm_members]
        warm = write_bodies(runs / "warm.txt", warm_members)

        def ceiling(tag: str) -> dict[str, object]:
            env = {"OFFERS_EVENT_LOG": str(runs / "events-trivial"), "BENCH_REDIS_URL": redis_server.url(1)}
            with Gunicorn("bench.trivial_app:app", env, runs / "trivial.log", workers=args.workers) as trivial:
                got: dict[str, object] = {}
                for path in ("/echo", "/echo-redis", "/echo-redis2"):
                    got[path] = measured(trivial, redis_server,
                                         lambda p=path: wrk_run(trivial.base, p, cold, args.seconds, args.connections))
                top = got["/echo"]
                assert isinstance(top, Measured)
                got["half"] = paced(trivial.base, "/echo", cold, top.load.rps / 2, args.seconds, args.connections)
                got["half_w"] = paced(trivial.base, "/echo", cold, top.load.rps / 2, args.seconds,
                                      results["workers"], threads=1)  # type: ignore[arg-type]
                got["solo"] = wrk_run(trivial.base, "/echo", cold, args.seconds / 2, connections=1, threads=1)
            print(f"trivial ({tag}): " + "; ".join(
                f"{k} {v.load.rps:,.0f} req/s, {v.cpu_ms:.2f} CPU ms/req" for k, v in got.items()
                if isinstance(v, Measured)))
            return got

        before = ceiling("before")
        for n, data_dir in variants.items():
            env = service_env(bench, data_dir, url, runs / f"events-{n}")
            started = time.perf_counter()
            with Gunicorn("service.wsgi:app", env, runs / f"service-{n}.log", workers=args.workers) as svc:
                ready = time.perf_counter() - started
                status, body = http("POST", svc.base + "/v1/decisions", {"member_id": members[-1], "channel": "app"})
                if status != 200:
                    raise RuntimeError(f"a decision failed: {status} {body[:500]!r}")
                for m in members[-200:]:  # warm-up: every worker serves a few requests
                    http("POST", svc.base + "/v1/decisions", {"member_id": m, "channel": "app"})

                def drop() -> None:
                    drop_cache(url)

                workers = int(results["workers"])  # type: ignore[call-overload]
                cold_run = decision_runs(svc, redis_server, cold, args.seconds, args.connections, drop, workers)
                drop_cache(url)
                written, warm_secs = warm_cache_into(url, data_dir, bench.program, bench.model_dir(), warm_members)
                warm_run = decision_runs(svc, redis_server, warm, args.seconds, args.connections, None, workers)
            for kind, (top, half, m, solo, half_w) in (("cold", cold_run), ("warm", warm_run)):
                print(f"{n} candidates, cache {kind}: {top.load.rps:,.0f} req/s max, {top.cpu_ms:.2f} CPU ms/req; "
                      f"p50 {fmt_ms(half.p50_ms)} ms, p99 {fmt_ms(half.p99_ms)} ms at {half.rps:,.0f} req/s; "
                      f"with {workers} connections p99 {fmt_ms(half_w.p99_ms)} ms at {half_w.rps:,.0f} req/s; "
                      f"one connection p50 {fmt_ms(solo.p50_ms)} ms, p99 {fmt_ms(solo.p99_ms)} ms; {m}")
            results["candidates"][n] = {  # type: ignore[index]
                "ready_s": ready, "cold": cold_run, "warm": warm_run, "warmed": written, "warm_seconds": warm_secs}
        after = ceiling("after")
    results["ceiling"] = (before, after)
    results["load_after"] = load_average()
    results["runs"] = str(runs)
    return results


def verdict(value: float, target: float, at_most: bool) -> str:
    """'holds' or 'MISSED by N.Nx' for a target that ``value`` must stay under (or reach)."""
    ok = value <= target if at_most else value >= target
    return "holds" if ok else f"MISSED by {value / target if at_most else target / value:.1f}x"


def render(results: dict[str, object], args: argparse.Namespace) -> str:
    """The BENCHMARKS.md section body."""
    before, after = results["ceiling"]  # type: ignore[misc]

    def rps(path: str) -> float:
        return float(before[path].load.rps + after[path].load.rps) / 2

    def cpu(path: str) -> float:
        return float(before[path].cpu_ms + after[path].cpu_ms) / 2

    ceil_rps, ceil_cpu = rps("/echo"), cpu("/echo")
    one_rps, one_cpu = rps("/echo-redis"), cpu("/echo-redis")
    two_rps, two_cpu = rps("/echo-redis2"), cpu("/echo-redis2")
    ceil_half = min(before["half"], after["half"], key=lambda r: r.p99_ms)
    ceil_solo = min(before["solo"], after["solo"], key=lambda r: r.p99_ms)
    ceil_half_w = min(before["half_w"], after["half_w"], key=lambda r: r.p99_ms)
    workers = results["workers"]
    lines = [
        f"`POST /v1/decisions` through gunicorn with the service's own config "
        f"(`-c python:service.gunicorn_conf`: {results['workers']} sync workers, no preload, one LightGBM "
        f"thread each), Redis store (a private redis-server), `OFFERS_CLOCK=data`, API key on; "
        f"{args.members:,} synthetic members materialized with the service's own code; model "
        f"`{results['model']}` (LightGBM, trained by `offers train`). wrk on the same machine, "
        f"{args.connections} connections, 2 threads, {args.seconds:.0f} s per run: maximum throughput unpaced, "
        f"then latency with the offered load paced to half of that maximum. Cache cold: a different member per "
        f"request and the score cache emptied before each run; warm: {args.warm_members:,} members' vectors "
        f"cached first, requests cycle over them. CPU ms per request: user + system CPU of the gunicorn "
        f"processes and of redis-server during the maximum-throughput run, divided by its requests; unlike "
        f"requests/s it hardly moves with what else runs on the machine.",
        "",
        f"**Ceilings** (same run, same gunicorn config, same request bodies; mean of a run before and one after "
        f"the service's): `bench.trivial_app` `POST /echo` (parse JSON, answer JSON) **{ceil_rps:,.0f} req/s**, "
        f"{ceil_cpu:.2f} CPU ms per request; at half load p50 {fmt_ms(ceil_half.p50_ms)} ms, "
        f"p99 {fmt_ms(ceil_half.p99_ms)} ms; at half load over {workers} connections p50 "
        f"{fmt_ms(ceil_half_w.p50_ms)} ms, p99 {fmt_ms(ceil_half_w.p99_ms)} ms; one connection p50 {fmt_ms(ceil_solo.p50_ms)} ms, "
        f"p99 {fmt_ms(ceil_solo.p99_ms)} ms. Plus one Redis `GET` of 1 KB: {one_rps:,.0f} req/s "
        f"({one_rps / ceil_rps:.2f} of trivial), {one_cpu:.2f} CPU ms. Plus a `GET` and then an `EVALSHA` (two "
        f"sequential round trips, as a decision makes: one pipelined read, one script call): {two_rps:,.0f} req/s "
        f"({two_rps / ceil_rps:.2f} of trivial), {two_cpu:.2f} CPU ms.",
        "",
        "| candidates | cache | max req/s | / trivial | CPU ms/req (server + Redis) | trivial CPU / this CPU | "
        f"offered load for latency | p50 ms | p99 ms | same load over {workers} connections: p50 / p99 ms | "
        "one connection: p50 / p99 ms | hit ratio | errors / degraded |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for n, res in results["candidates"].items():  # type: ignore[attr-defined]
        for kind in ("cold", "warm"):
            top, half, m, solo, half_w = res[kind]
            errors = sum(r.non_2xx + r.errors for r in (top.load, half, solo, half_w))
            lines.append(
                f"| {n} | {kind} | {top.load.rps:,.0f} | {top.load.rps / ceil_rps:.2f} | "
                f"{top.server_cpu_ms:.1f} + {top.redis_cpu_ms:.2f} | {ceil_cpu / top.cpu_ms:.2f} | "
                f"{half.rps:,.0f} req/s ({half.rps / top.load.rps:.0%} of max) | {fmt_ms(half.p50_ms)} | "
                f"{fmt_ms(half.p99_ms)} | {fmt_ms(half_w.p50_ms)} / {fmt_ms(half_w.p99_ms)} | "
                f"{fmt_ms(solo.p50_ms)} / {fmt_ms(solo.p99_ms)} | {m['hit_ratio']:.2f} | "
                f"{errors} / {m['degraded']:.0f} |")
        if n == 100:
            cold_half = res["cold"][1]
            verdicts.append(
                f"- uncached decision over 100 candidates, p99 at half of max throughput: "
                f"**{fmt_ms(cold_half.p99_ms)} ms** (target <= {P99_TARGET_MS:.0f} ms: "
                f"{verdict(cold_half.p99_ms, P99_TARGET_MS, True)}); CPU per decision "
                f"{res['cold'][0].cpu_ms:.1f} ms, itself {res['cold'][0].cpu_ms / P99_TARGET_MS:.1f}x the budget; "
                f"at the same load over {workers} connections (no request waits for a worker) "
                f"{fmt_ms(res['cold'][4].p99_ms)} ms ({verdict(res['cold'][4].p99_ms, P99_TARGET_MS, True)}; the "
                f"trivial endpoint's {fmt_ms(ceil_half_w.p99_ms)} ms); p99 with one connection "
                f"{fmt_ms(res['cold'][3].p99_ms)} ms")
        warm_top = res["warm"][0]
        warm_ratio = warm_top.load.rps / ceil_rps
        verdicts.append(f"- warm-cache decisions, {n} candidates: **{warm_ratio:.2f}** of the trivial endpoint's "
                        f"req/s (target >= {WARM_RATIO_TARGET:.2f}: {verdict(warm_ratio, WARM_RATIO_TARGET, False)}); "
                        f"by CPU per request {ceil_cpu / warm_top.cpu_ms:.2f}; the two-round-trip ceiling alone is "
                        f"{two_rps / ceil_rps:.2f}")
    lines += ["", "Targets (issue 6, 2 cores):", *verdicts, "",
              f"Machine load average (1/5/15 min) before: {results['load_before']}, after: {results['load_after']}; "
              "other processes on the machine share the 2 cores with the server and wrk, so absolute figures "
              "move between runs; the ratios to the same-run ceiling and the CPU per request are what to compare. "
              "Latency is wrk's (closed loop, paced per connection), from request sent to response read. "
              "Where the time goes and what it would take: [performance.md](performance.md)."]
    return "\n".join(lines)


def main() -> None:
    """Parse options, run, print, and (unless --no-doc) refresh the serving section."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=20_000, help="synthetic members (default 20,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--candidates", type=int, nargs="+", default=[50, 100],
                        help="candidate offer counts to run (default 50 100)")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per load run (default 15)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: the config's)")
    parser.add_argument("--warm-members", type=int, default=4000, help="members cached for the warm runs")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help=f"where the program, model and run logs live (default {DEFAULT_WORKDIR})")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/BENCHMARKS.md")
    args = parser.parse_args()
    results = run(args)
    body = render(results, args)
    print(body)
    if not args.no_doc:
        write_section("serving", "Real-time decisions vs a trivial endpoint (gunicorn, wrk)", body)


if __name__ == "__main__":
    main()
