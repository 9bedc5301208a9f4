"""Where a decision's time goes: profile POST /v1/decisions in-process, cache cold and warm.

Builds the service app (``service.app.create_app``) against the benchmark program
(bench/program.py) and a private redis-server, loads it synchronously, and sends
decision requests through Flask's test client (no HTTP server, no network) under
pyinstrument (``pip install pyinstrument``) or cProfile. Cold: every request a different
member with an empty score cache; warm: the same members again, now cached.

    python bench/profile_decisions.py                    # pyinstrument trees, 300 decisions each
    python bench/profile_decisions.py --cprofile         # cProfile, top functions by cumulative time
    python bench/profile_decisions.py --html /tmp/prof   # also pyinstrument HTML pages
    python bench/profile_decisions.py --batch 1000       # POST /v1/decisions/batch of 1,000 members instead
    python bench/profile_decisions.py --steps            # no profiler: mean wall ms of each step, cold then warm

It also prints the mean wall time per decision, in-process, without HTTP.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import API_KEY, RedisServer  # noqa: E402
from bench.program import DEFAULT_WORKDIR, drop_cache, materialize_into, prepare, service_env  # noqa: E402


def build_app(env: dict[str, str]) -> object:
    """The service app with ``env`` as its settings, loaded synchronously."""
    from runtime.settings import load_settings
    from service.app import create_app
    from service.state import EXTENSION

    app = create_app(load_settings(env))
    service = app.extensions[EXTENSION].decisions
    if not service.wait(600):
        raise RuntimeError("the decision engine did not load")
    holder = service.holder
    for _ in range(600):
        if holder is None or holder.current() is not None:
            break
        time.sleep(0.5)
    return app


def profile(fn: Callable[[], None], use_cprofile: bool, html: Path | None, tag: str) -> str:
    """Run ``fn`` under a profiler; return the text report."""
    if use_cprofile:
        prof = cProfile.Profile()
        prof.enable()
        fn()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(45)
        return out.getvalue()
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    fn()
    profiler.stop()
    if html is not None:
        html.mkdir(parents=True, exist_ok=True)
        (html / f"{tag}.html").write_text(profiler.output_html())
    return profiler.output_text(unicode=False, color=False, show_all=False)


#: The steps of ``DecisionPipeline.decide`` that ``--steps`` times: (module, attribute) pairs it looks up at call time.
STEPS = (("runtime.decisions.pipeline", "history_from_records"), ("runtime.decisions.pipeline", "member_inputs"),
         ("runtime.decisions.pipeline", "feature_rows"), ("runtime.decisions.pipeline", "predict"),
         ("runtime.decisions.pipeline", "decide_members"), ("runtime.decisions.pipeline", "commit"),
         ("service.decisions.routes", "outcome_json"))


def timed_steps(totals: dict[str, float]) -> None:
    """Wrap each of :data:`STEPS` and ``RedisStore.fetch_member`` so their wall time adds up in ``totals``."""
    import importlib

    from runtime.stores.redis_store import RedisStore

    def wrap(owner: object, name: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)

    from runtime.decisions.decision_log import DecisionLog

    for module, name in STEPS:
        wrap(importlib.import_module(module), name)
    wrap(RedisStore, "fetch_member")
    wrap(DecisionLog, "append")


def main() -> None:
    """Profile cold then warm decisions and print the reports."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cprofile", action="store_true", help="cProfile instead of pyinstrument")
    parser.add_argument("--html", type=Path, default=None, help="directory for pyinstrument HTML reports")
    parser.add_argument("--batch", type=int, default=0, help="profile one /v1/decisions/batch of this many members")
    parser.add_argument("--steps", action="store_true",
                        help="no profiler: time each step of a decision (mean wall ms), cold then warm")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--decision-log", choices=["interval", "request", "none", "off"], default="interval",
                        help="OFFERS_DECISION_LOG_FSYNC: the service's group commit (default), fsync per "
                             "decision, none, or no log")
    args = parser.parse_args()

    bench = prepare(args.workdir, args.members, args.seed)
    data_dir = bench.variant(args.candidates)
    with RedisServer(args.workdir) as redis_server:
        members, _ = materialize_into(redis_server.url(), data_dir, bench.program)
        env = service_env(bench, data_dir, redis_server.url(), args.workdir / "profile-events",
                          {"OFFERS_LOG_LEVEL": "WARNING", "OFFERS_DECISION_LOG_FSYNC": args.decision_log})
        app = build_app(env)
        client = app.test_client()  # type: ignore[attr-defined]
        headers = {"X-API-Key": API_KEY}
        for m in members[-50:]:  # warm-up
            client.post("/v1/decisions", json={"member_id": m, "channel": "app"}, headers=headers)
        sample = members[:args.decisions]
        drop_cache(redis_server.url())
        if args.batch:
            audience = members[:args.batch]

            def batch() -> None:
                r = client.post("/v1/decisions/batch", json={"member_ids": audience, "channel": "app"},
                                headers=headers)
                if r.status_code != 200 or b'"summary"' not in r.get_data():
                    raise RuntimeError(f"{r.status_code}: {r.get_data()[-300:]!r}")

            started = time.perf_counter()
            report = profile(batch, args.cprofile, args.html, "batch")
            print(f"===== batch of {len(audience):,} members over {args.candidates} candidates: "
                  f"{time.perf_counter() - started:.1f} s under the profiler =====")
            print(report)
            drop_cache(redis_server.url())
            started = time.perf_counter()
            batch()
            print(f"batch, no profiler: {(time.perf_counter() - started) / len(audience) * 1000:.2f} ms per member")
            return

        def decide_all() -> None:
            for m in sample:
                r = client.post("/v1/decisions", json={"member_id": m, "channel": "app"}, headers=headers)
                if r.status_code != 200:
                    raise RuntimeError(f"{r.status_code}: {r.get_data()[:300]!r}")

        if args.steps:
            totals: dict[str, float] = {}
            timed_steps(totals)
            drop_cache(redis_server.url())
            for tag in ("cold", "warm"):  # cold fills the cache the warm pass reads
                totals.clear()
                started, cpu = time.perf_counter(), time.process_time()
                decide_all()
                per = (time.perf_counter() - started) / len(sample) * 1000
                cpu_per = (time.process_time() - cpu) / len(sample) * 1000
                steps = ", ".join(f"{k} {v / len(sample) * 1000:.2f}" for k, v in totals.items())
                log_share = totals.get("append", 0.0) / len(sample) * 1000 / per
                print(f"{tag}: {per:.2f} ms per decision in-process ({cpu_per:.2f} CPU ms of this process); "
                      f"decision log {log_share:.1%} of the wall time; steps (ms): {steps}")
            return

        for tag in ("cold", "warm"):  # cold fills the cache the warm pass reads
            started = time.perf_counter()
            report = profile(decide_all, args.cprofile, args.html, tag)
            per = (time.perf_counter() - started) / len(sample) * 1000
            print(f"===== {tag}: {len(sample)} decisions over {args.candidates} candidates, "
                  f"{per:.2f} ms each under the profiler =====")
            print(report)
        for tag in ("warm", "cold"):
            if tag == "cold":
                drop_cache(redis_server.url())
            started = time.perf_counter()
            decide_all()
            print(f"{tag}, no profiler: {(time.perf_counter() - started) / len(sample) * 1000:.2f} ms per decision")


if __name__ == "__main__":
    main()
