"""The points ledger: events/s with earning on against off, and the rebuild of 100k balances.

1. **Ingestion.** The event benchmark's service (bench/bench_events.py: gunicorn with the
   service's own config, a private redis-server holding the benchmark program's materialized
   members, the durable log fsynced per request) runs twice on the same bodies: with the
   benchmark program as it is (no ledger), and with the same program plus a ``points:``
   section (a Tuesday multiplier, a category multiplier, 12-month expiry). 20% of the events
   are purchase lines, each of which then reads its member's tier and posts its earn. The
   ratio on/off is the cost of the ledger on ingestion, measured in the same run.
2. **Rebuild.** 100,000 synthetic members' purchases (2-12 lines each over a year, by the pure
   earn rules with random tiers and categories), a redemption for every third member that
   can afford one, and an admin adjustment for some, are posted through the ledger
   (:class:`runtime.points.ledger.PointsLedger`: the durable log, then one Lua call per member)
   into a private redis-server. Then ``rebuild`` replays the log into every balance and compares
   it with Redis, at a moment when some lots have expired; then 10 live balances are tampered
   with behind the ledger's back, and the rebuild must name exactly those 10.

    python bench/bench_points.py                       # about 6 minutes; updates docs/BENCHMARKS.md
    python bench/bench_points.py --members 10000 --seconds 3 --no-doc
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_events import accepted, event_bodies  # noqa: E402
from bench.harness import (  # noqa: E402
    Gunicorn,
    RedisServer,
    fmt_ms,
    http,
    load_average,
    measured,
    require_wrk,
    wrk_run,
)
from bench.program import DEFAULT_WORKDIR, materialize_into, prepare, service_env  # noqa: E402
from bench.report import write_section  # noqa: E402

POINTS_SECTION = """
points:
  enabled: true
  expiry: {type: rolling, months: 12}
  multipliers:
    - {name: double_tuesday, factor: 2, days_of_week: [tue]}
    - {name: category_x3, factor: 3, categories: [%s]}
  rewards:
    - {id: free_item, title: A free item, points: 150}
"""


def points_program(base: Path, out: Path, category: str) -> Path:
    """The benchmark program with a ``points:`` section added."""
    out.write_text(base.read_text().rstrip("\n") + "\n" + POINTS_SECTION % category)
    return out


def ingestion(args: argparse.Namespace) -> dict[str, object]:
    """Events/s through gunicorn, ledger off then on, on the same bodies (module docstring, 1)."""
    require_wrk()
    work = args.workdir
    bench = prepare(work, args.members_service, args.seed)
    data_dir = bench.variant(100)
    runs = work / f"points-{time.strftime('%Y%m%d-%H%M%S')}"
    runs.mkdir(parents=True)
    offers = pd.read_parquet(data_dir / "offers.parquet", columns=["offer_id"])["offer_id"].astype(str).tolist()
    products = pd.read_parquet(data_dir / "products.parquet")
    category = str(products["category"].value_counts().index[0])
    program_on = points_program(bench.program, runs / "program-points.yaml", category)
    out: dict[str, object] = {"off": {}, "on": {}, "category": category}
    with RedisServer(runs) as redis_server:
        members, _ = materialize_into(redis_server.url(), data_dir, bench.program)
        bodies = {b: event_bodies(runs / f"events-{b}.txt", b, members, offers,
                                  products["product_id"].astype(str).tolist()) for b in args.batches}
        for label, program in (("off", bench.program), ("on", program_on)):
            # the wall clock: the bodies are stamped around now (the data's clock would make them "future")
            env = service_env(bench, data_dir, redis_server.url(), runs / f"log-{label}",
                              {"OFFERS_PROGRAM": str(program), "OFFERS_CLOCK": "wall"})
            with Gunicorn("service.wsgi:app", env, runs / f"service-{label}.log") as svc:
                status, body = http("POST", svc.base + "/v1/events", {
                    "event_id": f"probe-{label}", "member_id": members[0], "type": "transaction",
                    "amount_minor": 100, "ts": datetime.now(UTC).isoformat()})
                if status != 200:
                    raise RuntimeError(f"an event was refused: {status} {body[:300]!r}")
                for b in args.batches:
                    before = accepted(svc.base)
                    m = measured(svc, redis_server, lambda b=b: wrk_run(svc.base, "/v1/events", bodies[b],
                                                                        args.seconds, args.connections))
                    eps = (accepted(svc.base) - before) / m.load.seconds
                    out[label][b] = (m, eps)  # type: ignore[index]
                    print(f"ledger {label}, {b} events/request: {eps:,.0f} events/s, {m.cpu_ms / b:.2f} CPU ms/event, "
                          f"p99 {fmt_ms(m.load.p99_ms)} ms, non-2xx {m.load.non_2xx}")
        if any((runs / "log-on").glob("points-*.ndjson")) is False:
            raise RuntimeError("the ledger wrote no points log: earning did not run")
    return out


def rebuild_run(args: argparse.Namespace) -> dict[str, object]:
    """Post 100k members' purchases and redemptions through the ledger, then rebuild (module docstring, 2)."""
    from models.points import EarnContext, PurchaseLine, earn_postings
    from models.program import parse_program
    from runtime.events.log import EventLog
    from runtime.points.ledger import KIND, PointsLedger
    from runtime.points.rebuild import rebuild
    from runtime.stores import KeySpace
    from runtime.stores.redis_store import RedisStore, connect

    rng = random.Random(args.seed)
    program = parse_program(
        "name: bench\ntimezone: UTC\ntier_policy: {metric: spend, window: {type: lifetime}}\n"
        "tiers: [{name: Base, threshold: 0}, {name: Gold, threshold: 500, earn_multiplier: 1.5}]\n"
        + POINTS_SECTION % "DAIRY")
    zone = ZoneInfo("UTC")
    start = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    work = args.workdir / f"rebuild-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True)
    out: dict[str, object] = {"members": args.members}
    with RedisServer(work) as redis_server:
        store = RedisStore(connect(redis_server.url(), timeout_ms=5000, connect_timeout_ms=5000), KeySpace("bench"))
        ledger = PointsLedger(program, store, EventLog(work / "log", fsync="none", kind=KIND), zone)
        started = time.perf_counter()
        postings = 0
        for lo in range(0, args.members, 1000):
            batch: dict[str, list] = {}
            for m in range(lo, min(lo + 1000, args.members)):
                member = f"m{m}"
                tier = "Gold" if rng.random() < 0.2 else "Base"
                lines = [PurchaseLine(f"t{m}-{k}", member, start + rng.randint(0, 360 * 86_400),
                                      rng.randint(99, 9_999), rng.choice(["DAIRY", "BAKERY", "MEAT"]))
                         for k in range(rng.randint(2, 12))]
                batch[member] = [p for line in sorted(lines, key=lambda x: x.ts)
                                 for p in earn_postings(program, [], line, EarnContext(tier), zone)]
                postings += len(batch[member])
            ledger.post_many(batch, start + 365 * 86_400)
        redeemed = adjusted = 0
        for m in range(0, args.members, 3):
            key = f"r{m}"
            outcome = ledger.post(f"m{m}", [ledger.redeem_posting("free_item", key, start + 366 * 86_400)],
                                  start + 366 * 86_400)
            redeemed += outcome.status(f"redeem:{key}")["status"] == "applied"
        for m in range(1, args.members, 50):
            ledger.post(f"m{m}", [ledger.adjust_posting(25, "bench goodwill", "bench", f"a{m}", start + 367 * 86_400)],
                        start + 367 * 86_400)
            adjusted += 1
        out["post_seconds"] = time.perf_counter() - started
        out["postings"] = postings + redeemed + adjusted
        out["redeemed"], out["adjusted"] = redeemed, adjusted
        at = start + 500 * 86_400  # later than a year after the first purchases: many lots expired
        started = time.perf_counter()
        result = rebuild(work / "log", store, at)
        out["rebuild_seconds"] = time.perf_counter() - started
        out["rebuilt_members"], out["mismatches"] = result.members, len(result.mismatches)
        out["points"] = sum(int(a["balance"]) for a in result.accounts.values())
        out["expired"] = sum(int(a["totals"]["X"]) for a in result.accounts.values())
        tampered = {f"m{m}" for m in rng.sample(range(args.members), 10)}
        for member in tampered:
            store.client.hincrby(store.keys.points(member)[0], "l0:0", 5)
        again = rebuild(work / "log", store, at)
        out["tamper_found"] = set(again.mismatches) == tampered
        out["log_mib"] = sum(p.stat().st_size for p in (work / "log").glob("*.ndjson")) / 2**20
        used = store.client.info("memory")["used_memory"]
        out["redis_bytes_per_member"] = used / args.members
    return out


def render(ing: dict[str, object] | None, reb: dict[str, object] | None, args: argparse.Namespace) -> str:
    """The BENCHMARKS.md section body."""
    lines: list[str] = []
    if ing:
        lines += [
            f"`POST /v1/events` through gunicorn (the service's own config), a private redis-server with "
            f"{args.members_service:,} materialized members, the durable log fsynced per request; the same bodies "
            f"(20% purchase lines) with the benchmark program as it is (ledger off) and with a `points:` section "
            f"(ledger on: Tuesday x2, category {ing['category']} x3, 12-month expiry). wrk, {args.connections} "
            f"connections, {args.seconds:.0f} s per run.", "",
            "| events per request | ledger off: events/s | ledger on: events/s | **on / off** | CPU ms per event, off | "
            "CPU ms per event, on | p99 ms off / on |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for b in args.batches:
            (m0, e0), (m1, e1) = ing["off"][b], ing["on"][b]  # type: ignore[index]
            lines.append(f"| {b} | {e0:,.0f} | {e1:,.0f} | **{e1 / e0:.2f}** | {m0.cpu_ms / b:.2f} | {m1.cpu_ms / b:.2f} | "
                         f"{fmt_ms(m0.load.p99_ms)} / {fmt_ms(m1.load.p99_ms)} |")
    if reb:
        lines += ["", f"Rebuild: {reb['members']:,} synthetic members, {reb['postings']:,} postings (purchase lines "
                      f"through the pure earn rules, {reb['redeemed']:,} redemptions, {reb['adjusted']:,} adjustments) "
                      f"posted through the ledger (log, then one Lua call per member) in {reb['post_seconds']:.1f} s; "
                      f"log {reb['log_mib']:.1f} MiB, Redis {reb['redis_bytes_per_member']:,.0f} bytes per member "
                      f"(all keys, the points account, entries and causes).", "",
                  "| members rebuilt | points in balances | points expired by then | mismatches with Redis | "
                  "rebuild time | 10 tampered balances found |",
                  "| ---: | ---: | ---: | ---: | ---: | --- |",
                  f"| {reb['rebuilt_members']:,} | {reb['points']:,} | {reb['expired']:,} | **{reb['mismatches']}** | "
                  f"{reb['rebuild_seconds']:.1f} s | {'exactly those 10' if reb['tamper_found'] else 'NO'} |"]
    lines += ["", f"Machine load average (1/5/15 min) at the end: {load_average()}."]
    return "\n".join(lines)


def main() -> None:
    """Parse options, run, print, and (unless --no-doc) refresh the points section."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--members", type=int, default=100_000, help="members of the rebuild (default 100,000)")
    parser.add_argument("--members-service", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-ingestion", action="store_true")
    parser.add_argument("--skip-rebuild", action="store_true")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    ing = None if args.skip_ingestion else ingestion(args)
    reb = None if args.skip_rebuild else rebuild_run(args)
    body = render(ing, reb, args)
    print(body)
    if not args.no_doc:
        write_section("points", "Points ledger: ingestion with earning, and the rebuild", body)


if __name__ == "__main__":
    main()
