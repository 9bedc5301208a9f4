"""Decision core cost vs model cost: 1 member x 200 candidate offers.

The core is everything in a decision but the model call: eligibility, tier mechanics,
caps and budgets, arbitration, the exploration policy, reasons and member texts
(:func:`models.decision.decide`). The model call is LightGBM ``Booster.predict`` on a
200 x 30 feature matrix, single-threaded, from a model of 300 trees x 15 leaves trained
here on random data. The target: the core costs less than the model call.

Also reported: the core with Thompson sampling on every decision, with pred_contrib
reasons, and a 1,000-member batch (per member).

Run: ``python bench/bench_decision_core.py`` (add ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_section
from models.caps import BudgetState, CapCounters
from models.catalog import build_catalog
from models.decision import decide, decide_batch
from models.member import MemberContext
from models.program import load_program
from models.tiers import member_tier_state

ROOT = Path(__file__).resolve().parents[1]
N_OFFERS, N_FEATURES, N_TREES, N_LEAVES = 200, 30, 300, 15
AS_OF = pd.Timestamp("2025-06-15 12:00")
KINDS = ["amount_off", "percent_off", "points_multiplier", "bonus_points", "free_item", "free_shipping",
         "partner", "early_access"]


def offers_table(rng: np.random.Generator) -> pd.DataFrame:
    """200 contract offers with a realistic mix of restrictions."""
    n = N_OFFERS
    return pd.DataFrame({
        "offer_id": [f"c{i // 20}-o{i}" for i in range(n)],
        "campaign_id": [f"c{i // 20}" for i in range(n)],
        "kind": rng.choice(KINDS, n),
        "starts_at": AS_OF - pd.to_timedelta(rng.integers(0, 60, n), unit="D"),
        "ends_at": AS_OF + pd.to_timedelta(rng.integers(-5, 60, n), unit="D"),
        "title": [f"Offer {i}" for i in range(n)],
        "value": rng.integers(1, 30, n).astype(float),
        "cost_minor": rng.integers(50, 500, n),
        "channels": rng.choice(["app|email", "email", None, "app"], n),
        "tiers": rng.choice([None, None, None, "Gold", "Silver|Gold"], n),
        "segments": rng.choice([None, None, None, "family", "premium"], n),
        "funder": rng.choice([None, None, "Brand X"], n),
        "cost_share": rng.choice([0.0, 0.5, 1.0], n),
        "stacking_group": rng.choice([None, None, "weekly", "monthly"], n),
        "priority": rng.integers(0, 3, n),
    })


def setup(rng: np.random.Generator) -> dict[str, object]:
    program = load_program(ROOT / "examples" / "programs" / "synthetic.yaml")
    products = pd.DataFrame({"product_id": [f"p{i}" for i in range(40)],
                             "category": [f"CAT{i % 12}" for i in range(40)]})
    offers = offers_table(rng)
    offer_products = pd.DataFrame({"offer_id": offers["offer_id"], "product_id": rng.choice(products["product_id"], N_OFFERS)})
    catalog = build_catalog(program, offers, offer_products, products,
                            popularity={o: float(p) for o, p in zip(offers["offer_id"], rng.random(N_OFFERS) * 0.1, strict=True)})
    days = np.sort(rng.integers(0, 365, 60))
    tier = member_tier_state(program, (AS_OF - pd.to_timedelta(days, unit="D")).to_numpy(),
                             rng.integers(500, 2500, 60), AS_OF)
    member = MemberContext("member-42", tier=tier, segment="family", birth_month=6, joined_at=pd.Timestamp("2019-03-01"),
                           channels=frozenset({"app", "email"}), bought_categories=frozenset({"CAT1", "CAT2"}),
                           typical_basket_minor=3500, recent_spend_minor=40000, has_history=True)
    candidates = [o.offer_id for o in catalog.offers][:N_OFFERS]
    counters = CapCounters(impressions={c: int(rng.integers(0, 4)) for c in candidates[::3]},
                           issues={c: 1 for c in candidates[::7]})
    return {"program": program, "catalog": catalog, "member": member, "candidates": candidates, "counters": counters}


def train_model(rng: np.random.Generator) -> lgb.Booster:
    x = rng.random((20_000, N_FEATURES))
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] * x[:, 3] + rng.normal(0, 0.3, len(x)) > 0.6).astype(int)
    params = {"objective": "binary", "num_leaves": N_LEAVES, "learning_rate": 0.05, "num_threads": 1,
              "verbose": -1, "min_data_in_leaf": 20, "seed": 7}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=N_TREES)


def timeit(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and 95th percentile in microseconds, after a warm-up."""
    for _ in range(min(50, repeat)):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repetitions, no docs update")
    args = parser.parse_args()
    repeat = 50 if args.quick else 2000
    rng = np.random.default_rng(2025)
    s = setup(rng)
    booster = train_model(rng)
    features = rng.random((N_OFFERS, N_FEATURES))
    catalog, member, candidates, counters = s["catalog"], s["member"], s["candidates"], s["counters"]
    props = booster.predict(features, num_threads=1)
    contrib = booster.predict(features, num_threads=1, pred_contrib=True)
    names = [f"f{i}" for i in range(N_FEATURES)]
    seeds = iter(range(10**9))

    def core() -> object:
        return decide(catalog, member, candidates, props, as_of=AS_OF, channel="app", counters=counters,
                      budgets=BudgetState(catalog), seed=next(seeds))

    def core_reasons() -> object:
        return decide(catalog, member, candidates, props, as_of=AS_OF, channel="app", counters=counters,
                      budgets=BudgetState(catalog), contributions=contrib, feature_names=names, seed=next(seeds))

    thompson_catalog = catalog.__class__(
        s["program"].model_copy(update={"decisions": s["program"].decisions.model_copy(update={
            "exploration": s["program"].decisions.exploration.model_copy(update={"method": "thompson", "share": 1.0})})}),
        catalog.offers, catalog.popularity_map)

    def core_thompson() -> object:
        return decide(thompson_catalog, member, candidates, props, as_of=AS_OF, channel="app", counters=counters,
                      budgets=BudgetState(catalog), seed=next(seeds))

    def model() -> object:
        return booster.predict(features, num_threads=1)

    def model_contrib() -> object:
        return booster.predict(features, num_threads=1, pred_contrib=True)

    decision = core()
    results = {name: timeit(fn, max(5, repeat // slow)) for name, fn, slow in
               [("core", core, 1), ("model", model, 1), ("core_reasons", core_reasons, 1),
                ("core_thompson", core_thompson, 4), ("model_contrib", model_contrib, 100)]}
    n_batch = 100 if args.quick else 1000
    members = [MemberContext(f"m{i}", **{k: v for k, v in member.__dict__.items() if k != "member_id"})
               for i in range(n_batch)]
    batch_props = np.tile(props, (n_batch, 1))
    t0 = time.perf_counter()
    decide_batch(catalog, members, candidates, batch_props, as_of=AS_OF, channel="app")
    batch_us = (time.perf_counter() - t0) / n_batch * 1e6

    core_med, model_med = results["core"][0], results["model"][0]
    lines = [
        f"1 member x {N_OFFERS} candidates; program examples/programs/synthetic.yaml (epsilon-greedy, 10% exploration),"
        f" {len(decision.offers)} offers returned, {len(decision.excluded)} excluded. "
        f"Model: LightGBM {lgb.__version__}, {N_TREES} trees x {N_LEAVES} leaves, {N_FEATURES} features, num_threads=1.",
        "",
        "| step | median (µs) | p95 (µs) |",
        "| --- | ---: | ---: |",
    ]
    labels = {"core": "decision core (everything but the model)", "model": "model call: Booster.predict, 200 rows",
              "core_reasons": "decision core with pred_contrib reasons", "core_thompson":
              "decision core, Thompson sampling on every decision (exact pick probabilities)",
              "model_contrib": "model call with pred_contrib=True, 200 rows"}
    lines += [f"| {labels[k]} | {med:,.0f} | {p95:,.0f} |" for k, (med, p95) in results.items()]
    lines += [f"| batch: decide_batch, {n_batch} members x {N_OFFERS} candidates, per member | {batch_us:,.0f} | |",
              "", f"**Ratio core / model call: {core_med / model_med:.2f}** (target: below 1).",
              f"Thompson core / model call: {results['core_thompson'][0] / model_med:.2f}. Thompson reports each"
              " pick's probability computed by quadrature to 1e-9 (models/thompson.py), about 0.5-1 ms per slot"
              " with 200 candidates; the 400-draw Monte Carlo estimate it replaced (standard error up to 0.025)"
              " cost 1,912 µs per decision on this machine on 2026-12-06, with the plain core at 710 µs."]
    body = "\n".join(lines)
    print(body)
    if not args.quick:
        write_section("decision_core", "Decision core vs model call (1 member x 200 offers)", body,
                      command="python bench/bench_decision_core.py")


if __name__ == "__main__":
    main()
