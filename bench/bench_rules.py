"""Targeting rules' CPU cost per real-time decision: a 20-clause rule set against fixed-field rules.

Two services in one process, on the serving benchmark's program (bench/program.py: synthetic
members, a trained model, exactly ``--candidates`` candidate offers) and one private
redis-server:

* ``fixed``: examples/programs/synthetic.yaml as it is: today's fixed-field eligibility
  (channels, tiers, segments from the offers table; birthday, caps, budgets...);
* ``rules``: the same program plus 20 distinct comparisons in targeting rules: one rule per
  offer kind in ``offer_defaults`` (so every contract candidate carries one) and one on each
  of the program's own offers, over member, time and request-context fields (:data:`RULES`).

Both get the same requests (``POST /v1/decisions`` through Flask's test client, with a
request context: device, store, location, a 5-line cart), so the difference is the rule
engine alone: compiling is done at start-up; per decision it reads the fields, runs the
comparisons and combines them (``models.rule_checks.rule_checks``, also timed on its own).
The rules are written to hold for most members, so both variants rank about as many
candidates (the excluded counts are printed).

Decisions alternate between the variants one by one, so both see the same load on a shared
machine; each variant decides for its own members (the two services share the score cache),
first with an empty score cache (cold: features and the model run), then again (warm: cached
scores). CPU is this process's ``time.process_time`` per request (redis-server runs apart).

    python bench/bench_rules.py                 # 2,000 members (the model is trained once), 3 rounds
    python bench/bench_rules.py --decisions 300 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import API_KEY, RedisServer  # noqa: E402
from bench.profile_decisions import build_app  # noqa: E402
from bench.program import DEFAULT_WORKDIR, drop_cache, materialize_into, prepare, service_env  # noqa: E402

#: The rule set: per offer kind (offer_defaults) and for the program's own offers; 20 distinct comparisons.
RULES: dict[str, dict[str, Any]] = {
    "amount_off": {"all": [{"field": "context.device", "in": ["app", "web"]},
                           {"field": "time.hour", "between": [0, 23]},
                           {"not": {"field": "context.cart.categories", "contains": ["TOBACCO", "LOTTERY"]}},
                           {"field": "member.tier", "gte": "Bronze"}]},
    "percent_off": {"any": [{"field": "context.cart.total", "gte": 5},
                            {"field": "member.recent_spend", "gte": 1},
                            {"field": "member.segment", "exists": True}]},
    "free_item": {"all": [{"field": "context.store_id", "not_in": ["0000", "9999"]},
                          {"field": "time.day_of_week", "in": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}]},
    "points_multiplier": {"all": [{"field": "member.days_since_join", "gte": 0},
                                  {"field": "member.tier_progress", "lte": 1}]},
    "bonus_points": {"any": [{"field": "context.cart.quantity", "gte": 1},
                             {"field": "member.typical_basket", "gt": 0},
                             {"field": "context.store_id", "exists": True}]},
    "free_shipping": {"all": [{"field": "context.location", "exists": True},
                              {"field": "context.cart.lines", "lte": 500}]},
    "tier_challenge": {"not": {"field": "context.device", "eq": "kiosk"}},
    "tier_retention": {"field": "time.month", "between": [1, 12]},
    "birthday": {"any": [{"field": "member.birth_month", "exists": True},
                         {"field": "time.date", "gte": "2000-01-01"}]},
}
CONTEXT = {"device": "app", "store_id": "1042", "location": "US-WA",
           "cart": {"lines": [{"product_id": f"p{i}", "quantity": 1 + i % 2, "price": 3.5 + i,
                               "category": ["DAIRY", "BAKERY", "PRODUCE", "SNACKS", "BEVERAGES"][i]}
                              for i in range(5)]}}


def rules_program(base: Path, out: Path) -> Path:
    """``base`` with :data:`RULES` added to its ``offer_defaults``; checks there are 20 comparisons."""
    from models.program import load_program
    from models.rules import Compare, offer_rules, walk

    config = yaml.safe_load(base.read_text())
    defaults = config.setdefault("offer_defaults", {})
    for kind, rule in RULES.items():
        defaults.setdefault(kind, {})["rule"] = rule
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    program = load_program(out)
    tests = {n.key for kind in RULES for r in offer_rules(program, kind) for n in walk(r) if isinstance(n, Compare)}
    if len(tests) != 20:
        raise RuntimeError(f"the rule set has {len(tests)} distinct comparisons, not 20")
    return out


def timed_rule_checks(totals: dict[str, float]) -> None:
    """Add the CPU time of ``rule_checks`` (the rule engine's whole per-call work) to ``totals``."""
    import models.decision as decision

    inner = decision.rule_checks

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            totals["rules"] = totals.get("rules", 0.0) + time.process_time() - started

    decision.rule_checks = timed  # type: ignore[assignment]


def main() -> None:
    """Run the comparison and print the table docs/BENCHMARKS.md records."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--decisions", type=int, default=200, help="members per (round, variant)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args()

    bench = prepare(args.workdir, args.members, args.seed)
    data_dir = bench.variant(args.candidates)
    programs = {"fixed": bench.program, "rules": rules_program(bench.program, args.workdir / "rules-program.yaml")}
    totals: dict[str, float] = {}
    timed_rule_checks(totals)
    with RedisServer(args.workdir) as redis_server:
        url = redis_server.url()
        members, _ = materialize_into(url, data_dir, bench.program)
        need = args.decisions * args.rounds * 2
        if len(members) < need + 50:
            raise SystemExit(f"{len(members)} members with history, {need + 50} needed: lower --decisions/--rounds")
        apps = {}
        for name, program in programs.items():
            env = service_env(bench, data_dir, url, args.workdir / f"rules-events-{name}",
                              {"OFFERS_LOG_LEVEL": "WARNING", "OFFERS_DECISION_LOG_FSYNC": "none",
                               "OFFERS_PROGRAM": str(program)})
            apps[name] = build_app(env).test_client()  # type: ignore[attr-defined]
        headers = {"X-API-Key": API_KEY}

        def decide(name: str, member: str) -> tuple[float, float, int]:
            """One decision: (CPU ms, rule-engine CPU ms, excluded candidates)."""
            totals.clear()
            cpu = time.process_time()
            r = apps[name].post("/v1/decisions", json={"member_id": member, "channel": "app", "context": CONTEXT},
                                headers=headers)
            spent = (time.process_time() - cpu) * 1000
            if r.status_code != 200:
                raise RuntimeError(f"{r.status_code}: {r.get_data()[:300]!r}")
            return spent, totals.get("rules", 0.0) * 1000, len(r.get_json()["excluded"])

        for m in members[-50:]:  # warm-up: imports, first-call paths
            for name in apps:
                decide(name, m)
        # decisions alternate between the variants one by one (each on its own members: the two
        # services share the score cache), so both see the same load on this shared machine
        results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
        for r in range(args.rounds):
            lo = r * 2 * args.decisions
            pairs = list(zip(members[lo:lo + args.decisions], members[lo + args.decisions:lo + 2 * args.decisions],
                             strict=True))
            drop_cache(url)
            for tag in ("cold", "warm"):
                for i, (a, b) in enumerate(pairs):
                    order = (("fixed", a), ("rules", b)) if i % 2 == 0 else (("rules", b), ("fixed", a))
                    for name, member in order:
                        results.setdefault((name, tag), []).append(decide(name, member))
    print(f"{args.candidates} candidates, {args.rounds} rounds x {args.decisions} decisions per variant and pass, "
          f"the variants interleaved decision by decision")
    print("| pass | variant | CPU ms / decision, mean | median | rule engine CPU ms, mean | excluded per decision |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    means: dict[tuple[str, str], float] = {}
    for (name, tag), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        means[(name, tag)] = statistics.mean(r[0] for r in runs)
        print(f"| {tag} | {name} | {means[(name, tag)]:.2f} | {statistics.median(r[0] for r in runs):.2f} | "
              f"{statistics.mean(r[1] for r in runs):.3f} | {statistics.mean(r[2] for r in runs):.1f} |")
    for tag in ("cold", "warm"):
        ratio = means[("rules", tag)] / means[("fixed", tag)]
        median = (statistics.median(r[0] for r in results[("rules", tag)])
                  / statistics.median(r[0] for r in results[("fixed", tag)]))
        engine = statistics.mean(r[1] for r in results[("rules", tag)])
        print(f"{tag}: rules / fixed CPU per decision = {ratio:.3f} ({ratio - 1:+.1%}; medians {median:.3f}); "
              f"the rule engine itself {engine:.3f} ms = {engine / means[('rules', tag)]:.1%} of a decision "
              "(target: under 10% extra)")

if __name__ == "__main__":
    main()
