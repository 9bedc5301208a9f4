"""A decision's write with budgets and a contact policy: round trips and time, against one round trip.

Into a private, empty redis-server, with the service's own store (``RedisStore``), one
decision write (``commit_decision``: 3 offers, a contact policy of two caps) per member, in
four shapes (docs/redis.md, Reservations):

* ``no budget`` - the member script alone (1 round trip);
* ``budgeted`` - one offer draws on its own and a funder's period budget (paced): the budget
  script, then the member script (2);
* ``given back`` - as ``budgeted``, but the member's issue cap refuses the budgeted offer, so
  its budgets are given back (3);
* ``PING`` - the ceiling's unit: one bare round trip on the same connection.

Round trips are counted on the connection (every send is one); times are the median per
write over ``--writes`` members. The ceiling, measured in the same run, is the write as it
was before budgets left the member script: ``no budget``, one script call. A write of ``k``
round trips may take at most ``k`` times that (each extra step costs no more than one more
such call); ``PING`` shows how much of it is the network.

    python bench/bench_reservations.py                 # a few seconds; updates docs/BENCHMARKS.md
    python bench/bench_reservations.py --no-doc
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import RedisServer, load_average  # noqa: E402
from bench.report import write_section  # noqa: E402
from runtime.stores import BudgetClaim, CapRequest, ContactLimit  # noqa: E402
from runtime.stores.redis_store import RedisStore  # noqa: E402

NOW = 1_762_948_800  # 2025-11-12 12:00 UTC
CONTACT = (ContactLimit("all.week", "w2025-46", max_offers=50), ContactLimit("email.day", "d2025-11-12", 50))


class Counting(redis.Connection):
    """A connection that counts its sends (one send is one round trip)."""

    sent = 0

    def send_packed_command(self, command: object, check_health: bool = True) -> None:
        """Count, then send."""
        Counting.sent += 1
        super().send_packed_command(command, check_health)  # type: ignore[arg-type]


def shapes() -> dict[str, list[CapRequest]]:
    """The requests of each shape's write."""
    budgets = (BudgetClaim("o1", "d2025-11-12", 10**9, None, 250, 86400 * 3, paced_count=10**9),
               BudgetClaim("funder", "m2025-11", None, 10**12, 250, 86400 * 30, paced_minor=10**12))
    plain = [CapRequest("o2", member_limit=5), CapRequest("o3", member_limit=5)]
    return {"no budget": [CapRequest("o1", member_limit=5), *plain],
            "budgeted": [CapRequest("o1", member_limit=5, charge_minor=250, budgets=budgets), *plain],
            "given back": [CapRequest("o1", member_limit=1, charge_minor=250, budgets=budgets), *plain]}


def measure(store: RedisStore, client: redis.Redis, writes: int) -> dict[str, tuple[float, float]]:
    """Median seconds and mean round trips per write of each shape, and of a PING, the shapes
    interleaved write by write (so a busy machine slows them alike)."""
    todo = shapes()
    times: dict[str, list[float]] = {name: [] for name in (*todo, "PING")}
    trips: dict[str, list[int]] = {name: [] for name in todo}
    for i in range(writes):
        for name, reqs in todo.items():
            member = f"{name[:2]}{i}"
            if name == "given back":  # the member already holds o1: the cap refuses it
                store.commit_decision(member, reqs[:1], [None], NOW)
            sent, started = Counting.sent, time.perf_counter()
            store.commit_decision(member, reqs, [None] * len(reqs), NOW, contact=CONTACT)
            times[name].append(time.perf_counter() - started)
            trips[name].append(Counting.sent - sent)
        started = time.perf_counter()
        client.ping()
        times["PING"].append(time.perf_counter() - started)
    return {name: (statistics.median(t), statistics.fmean(trips[name]) if name in trips else 1.0)
            for name, t in times.items()}


def main() -> None:
    """Run the benchmark (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=2000, help="writes per shape (default 2000)")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, RedisServer(Path(work)) as server:
        pool = redis.ConnectionPool.from_url(server.url(), connection_class=Counting)
        client = redis.Redis(connection_pool=pool)
        store = RedisStore(client)
        store.commit_decision("warm", shapes()["budgeted"], [None] * 3, NOW, contact=CONTACT)  # load scripts
        got = measure(store, client, args.writes)
    unit = got["no budget"][0]
    rows = ["| write | round trips | median time (µs) | time / (round trips x `no budget`) | verdict |",
            "| --- | --- | --- | --- | --- |"]
    for name, (seconds, trips) in got.items():
        ratio = seconds / (trips * unit)
        ok = "-" if name in ("PING", "no budget") else "holds" if ratio <= 1.0 else f"MISSED ({ratio:.2f} > 1)"
        rows.append(f"| {name} | {trips:.0f} | {seconds * 1e6:.0f} | {ratio:.2f} | {ok} |")
    body = "\n".join([
        f"{args.writes} writes per shape (3 offers, 2 contact caps) on a private redis-server over loopback; "
        f"load average {load_average()}. Ceiling: a write of k round trips may take at most k times the "
        "`no budget` write (one member script call) of the same run.", "", *rows])
    print(body)
    if not args.no_doc:
        write_section("reservations", "A decision's write: budgets, member caps and contact policy "
                      "(issue 17)", body)


if __name__ == "__main__":
    main()
