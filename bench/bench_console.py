"""Server time of every operator console page, against the same app's ``/healthz`` (the ceiling).

The service app runs in this process on the serving benchmark's program (bench/program.py:
synthetic members, a trained model, the synthetic example program) with a private
redis-server holding the members (materialized with the service's own code). A console session
signs in with an admin key; then each page is requested ``--repeat`` times through Flask's test
client, the pages interleaved round by round so all see the same load on a shared machine. The
time is the wall time of the request inside the app: routing, the session check, the page's own
work (a decision, a store read, a report read) and the template; no network.

The ceiling is ``GET /healthz`` of the same app in the same rounds: what any request costs here.
Each page's median is reported next to it as a ratio. The campaign preview runs at 200 and
1,000 members, since its time grows with the audience.

    python bench/bench_console.py                 # 2,000 members, 30 rounds
    python bench/bench_console.py --repeat 10
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import API_KEY, RedisServer, load_average  # noqa: E402
from bench.profile_decisions import build_app  # noqa: E402
from bench.program import DEFAULT_WORKDIR, materialize_into, prepare, service_env  # noqa: E402
from bench.report import write_section  # noqa: E402

ADMIN_KEY = "bench-console-admin-0123456789"


def pages(member: str) -> dict[str, str]:
    """Page name -> URL, ``/healthz`` first (the ceiling)."""
    return {
        "/healthz (ceiling)": "/healthz",
        "sign-in form (signed out)": "/console/login",
        "home": "/console/",
        "member: current decision": f"/console/members?q={member}&channel=app",
        "offers (catalog, budget burn)": "/console/offers",
        "models (champion, importances, drift)": "/console/models",
        "lift (no report yet)": "/console/lift",
        "campaign preview, 200 members": "/console/preview?audience=segment&size=200&channel=app",
        "campaign preview, 1,000 members": "/console/preview?audience=segment&size=1000&channel=app",
    }


def sign_in(client: object) -> None:
    """An admin console session on ``client`` (the sign-in form's token, then the key)."""
    form = client.get("/console/login")  # type: ignore[attr-defined]
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.get_data(as_text=True))
    if token is None:
        raise RuntimeError("the sign-in form has no token")
    answer = client.post("/console/login", data={"api_key": ADMIN_KEY, "csrf_token": token.group(1)})  # type: ignore[attr-defined]
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in failed: {answer.status_code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=30, help="rounds over every page")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()

    bench = prepare(args.workdir, args.members, args.seed)
    with RedisServer(args.workdir) as redis_server:
        url = redis_server.url()
        members, _ = materialize_into(url, bench.data, bench.program)
        env = service_env(bench, bench.data, url, args.workdir / "console-events",
                          {"OFFERS_LOG_LEVEL": "WARNING", "OFFERS_DECISION_LOG_FSYNC": "none",
                           "OFFERS_API_KEYS": f"{API_KEY}:decisions,events;{ADMIN_KEY}:admin"})
        app = build_app(env)
        client, anonymous = app.test_client(), app.test_client()  # type: ignore[attr-defined]
        sign_in(client)
        urls = pages(members[0])

        def get(name: str, path: str) -> object:
            """The page through the signed-in client (the sign-in form through a signed-out one)."""
            return (anonymous if "signed out" in name else client).get(path)

        times: dict[str, list[float]] = {name: [] for name in urls}
        for name, path in urls.items():  # warm-up: imports, template compilation, first decision
            answer = get(name, path)
            if answer.status_code != 200:
                raise RuntimeError(f"{path}: {answer.status_code} {answer.get_data()[:300]!r}")
        for _ in range(args.repeat):
            for name, path in urls.items():
                started = time.perf_counter()
                answer = get(name, path)
                answer.get_data()
                times[name].append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    raise RuntimeError(f"{path}: {answer.status_code}")
    ceiling = statistics.median(times["/healthz (ceiling)"])
    lines = [f"{args.members:,} synthetic members in a private redis-server, {args.repeat} rounds over every page "
             f"(interleaved), Flask's test client in one process; load average {load_average()}.", "",
             "| page | median ms | p95 ms | median / `/healthz` |", "| --- | ---: | ---: | ---: |"]
    for name, runs in times.items():
        runs.sort()
        p95 = runs[min(len(runs) - 1, int(0.95 * len(runs)))]
        lines.append(f"| {name} | {statistics.median(runs):.2f} | {p95:.2f} | {statistics.median(runs) / ceiling:.1f}x |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("console", "Operator console: server time per page", body)


if __name__ == "__main__":
    main()
