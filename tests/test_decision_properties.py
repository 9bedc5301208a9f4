"""Properties of the decision core, checked on generated catalogs, members and counters.

1. Caps and budgets are never exceeded, one decision after another and across a batch.
2. Holdout membership is stable across calls and across processes.
3. An offer restricted to some tiers never reaches a member of another tier.
4. The probabilities a decision reports are the ones its policy implies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.caps import BudgetState, BudgetUsage, CapCounters
from models.catalog import Catalog, Offer, OfferCaps
from models.decision import Decision, decide, decide_batch, decisions_frame
from models.policy import in_holdout, seed_for
from tests.decision_helpers import AS_OF, member, program

ROOT = Path(__file__).resolve().parents[1]
TIERS = ("Bronze", "Silver", "Gold")
KINDS = ("amount_off", "percent_off", "points_multiplier", "bonus_points", "free_item", "partner")


@st.composite
def offers(draw: st.DrawFn) -> list[Offer]:
    n = draw(st.integers(1, 12))
    out = []
    for i in range(n):
        budget_key = draw(st.sampled_from([None, "b1", "b2"]))
        out.append(Offer(
            offer_id=f"o{i}", kind=draw(st.sampled_from(KINDS)), title=f"O{i}",
            value=float(draw(st.integers(1, 50))),
            cost_minor=draw(st.sampled_from([None, 50, 200])),
            tiers=draw(st.sampled_from([None, frozenset({"Gold"}), frozenset({"Silver", "Gold"}),
                                        frozenset({"Bronze"})])),
            category=draw(st.sampled_from([None, "A", "B"])),
            stacking_group=draw(st.sampled_from([None, None, "g"])),
            caps=OfferCaps(impressions=draw(st.sampled_from([None, 1, 2])), issues=draw(st.sampled_from([None, 1, 3])),
                           redemptions=draw(st.sampled_from([None, 1]))),
            budget_key=budget_key,
            budget_count=draw(st.sampled_from([None, 1, 3])) if budget_key else None,
            budget_minor=draw(st.sampled_from([None, 100, 500])) if budget_key else None,
        ))
    return out


def catalog_of(items: list[Offer], share: float = 0.0, holdout: float = 0.0, method: str = "epsilon_greedy",
               per_category: int = 2, max_offers: int = 4) -> Catalog:
    prog = program(share=share, holdout=holdout, method=method, per_category=per_category, max_offers=max_offers)
    return Catalog(prog, items)


def propensity_rows(n_members: int, n_offers: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    props = rng.random((n_members, n_offers))
    props[rng.random((n_members, n_offers)) < 0.15] = np.nan
    return props


policies = st.sampled_from(["epsilon_greedy", "thompson"])


# -- 1. caps and budgets --------------------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=offers(), seed=st.integers(0, 10**6), share=st.sampled_from([0.0, 0.3, 1.0]), method=policies)
def test_caps_and_budgets_are_never_exceeded_over_repeated_decisions(items: list[Offer], seed: int, share: float,
                                                                     method: str) -> None:
    cat = catalog_of(items, share=share, method=method)
    ids = [o.offer_id for o in items]
    budget = BudgetState(cat)
    spent_count: dict[str, int] = {}
    spent_minor: dict[str, int] = {}
    for who in range(3):
        impressions: dict[str, int] = {}
        issues: dict[str, int] = {}
        for turn in range(4):
            props = propensity_rows(1, len(ids), seed + 10 * who + turn)[0]
            d = decide(cat, member(f"m{who}", rank=who % 3), ids, props, as_of=AS_OF,
                       counters=CapCounters(impressions=dict(impressions), issues=dict(issues)),
                       budgets=budget, seed=seed + turn)
            for inc in d.increments:
                target = {"impression": impressions, "issue": issues,
                          "budget_count": spent_count, "budget_minor": spent_minor}[inc.subject]
                target[inc.key] = target.get(inc.key, 0) + inc.amount
            for o in items:
                assert impressions.get(o.offer_id, 0) <= (o.caps.impressions or 10**9)
                assert issues.get(o.offer_id, 0) <= (o.caps.issues or 10**9)
    _assert_budgets_hold(items, spent_count, spent_minor)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=offers(), seed=st.integers(0, 10**6), n=st.integers(1, 15), share=st.sampled_from([0.0, 0.5]))
def test_batch_budgets_hold_across_the_whole_batch_in_member_order(items: list[Offer], seed: int, n: int,
                                                                   share: float) -> None:
    cat = catalog_of(items, share=share)
    ids = [o.offer_id for o in items]
    members = [member(f"m{i}", rank=i % 3) for i in range(n)]
    decisions = decide_batch(cat, members, ids, propensity_rows(n, len(ids), seed), as_of=AS_OF, seed=seed)
    spent_count: dict[str, int] = {}
    spent_minor: dict[str, int] = {}
    for d in decisions:
        for inc in d.increments:
            target = {"budget_count": spent_count, "budget_minor": spent_minor}.get(inc.subject)
            if target is not None:
                target[inc.key] = target.get(inc.key, 0) + inc.amount
        assert len({o.offer_id for o in d.offers}) == len(d.offers)  # an offer at most once per decision
    _assert_budgets_hold(items, spent_count, spent_minor)


def _assert_budgets_hold(items: list[Offer], count: dict[str, int], minor: dict[str, int]) -> None:
    for key in {o.budget_key for o in items if o.budget_key}:
        limits = [o for o in items if o.budget_key == key]
        count_limit = min((o.budget_count for o in limits if o.budget_count is not None), default=None)
        minor_limit = min((o.budget_minor for o in limits if o.budget_minor is not None), default=None)
        if count_limit is not None:
            assert count.get(key, 0) <= count_limit
        if minor_limit is not None:
            assert minor.get(key, 0) <= minor_limit


def test_batch_consumes_budget_first_come_first_served() -> None:
    items = [Offer(offer_id="scarce", kind="amount_off", title="S", value=100, budget_key="k", budget_count=2),
             Offer(offer_id="plenty", kind="amount_off", title="P", value=100)]
    cat = catalog_of(items)
    members = [member(f"m{i}") for i in range(5)]
    props = np.tile([0.9, 0.1], (5, 1))
    got = [[o.offer_id for o in d.offers] for d in decide_batch(cat, members, ["scarce", "plenty"], props, as_of=AS_OF)]
    assert got[:2] == [["scarce", "plenty"]] * 2 and got[2:] == [["plenty"]] * 3
    used = BudgetUsage(count={"k": 1})
    again = decide_batch(cat, members, ["scarce", "plenty"], props, as_of=AS_OF, budgets=used)
    assert [len(d.offers) for d in again] == [2, 1, 1, 1, 1]
    assert [e.reason for e in again[1].excluded] == ["BUDGET_EXHAUSTED"]


@settings(max_examples=40, deadline=None)
@given(items=offers(), seed=st.integers(0, 10**6), share=st.sampled_from([0.0, 0.5]), method=policies)
def test_batch_decisions_equal_single_decisions(items: list[Offer], seed: int, share: float, method: str) -> None:
    items = [Offer(**{**o.__dict__, "budget_key": None}) for o in items]  # budgets would couple members
    cat = catalog_of(items, share=share, method=method)
    ids = [o.offer_id for o in items]
    members = [member(f"m{i}", rank=i % 3) for i in range(4)]
    props = propensity_rows(4, len(ids), seed)
    batch = decide_batch(cat, members, ids, props, as_of=AS_OF, seed=seed)
    for i, m in enumerate(members):
        assert batch[i] == decide(cat, m, ids, props[i], as_of=AS_OF, seed=seed_for(seed, m.member_id))
    frame = decisions_frame(batch)
    assert len(frame) == sum(len(d.offers) for d in batch)


# -- 2. holdout stability -------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(member_id=st.text(min_size=1, max_size=30), salt=st.text(max_size=10), share=st.floats(0.0, 0.99))
def test_holdout_is_stable_across_calls(member_id: str, salt: str, share: float) -> None:
    first = in_holdout(member_id, salt, share)
    assert all(in_holdout(member_id, salt, share) == first for _ in range(3))
    assert in_holdout(member_id, salt, min(share + 0.005, 0.99)) or not first  # monotone in the share


def test_holdout_is_stable_across_processes() -> None:
    ids = [f"member-{i}" for i in range(500)] + ["", "ünïcødé", "1029"]
    script = ("import json, sys\nfrom models.policy import in_holdout\n"
              "ids = json.load(sys.stdin)\nprint(json.dumps([in_holdout(m, 'salt-1', 0.3) for m in ids]))")
    results = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", script], input=json.dumps(ids), capture_output=True,
                              text=True, check=True, cwd=ROOT, env=env)
        results.append(json.loads(done.stdout))
    here = [in_holdout(m, "salt-1", 0.3) for m in ids]
    assert results[0] == results[1] == here
    assert 100 < sum(here) < 200


# -- 3. tier restrictions -------------------------------------------------------------------

@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=offers(), seed=st.integers(0, 10**6), share=st.sampled_from([0.0, 0.5, 1.0]),
       holdout=st.sampled_from([0.0, 0.5]), method=policies, ranks=st.lists(st.integers(0, 2), min_size=1, max_size=6))
def test_tier_restricted_offers_never_reach_other_tiers(items: list[Offer], seed: int, share: float, holdout: float,
                                                        method: str, ranks: list[int]) -> None:
    cat = catalog_of(items, share=share, holdout=holdout, method=method)
    ids = [o.offer_id for o in items]
    members = [member(f"m{i}", rank=r) for i, r in enumerate(ranks)]
    props = propensity_rows(len(members), len(ids), seed)
    batch = decide_batch(cat, members, ids, props, as_of=AS_OF, seed=seed)
    singles = [decide(cat, m, ids, props[i], as_of=AS_OF, seed=seed + i) for i, m in enumerate(members)]
    for d, m in [*zip(batch, members, strict=True), *zip(singles, members, strict=True)]:
        for o in d.offers:
            allowed = cat[o.offer_id].tiers
            assert allowed is None or TIERS[m.tier.tier_rank] in allowed  # type: ignore[union-attr]


# -- 4. probabilities -----------------------------------------------------------------------

@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=offers(), seed=st.integers(0, 10**6), share=st.sampled_from([0.0, 0.2, 0.7, 1.0]),
       holdout=st.sampled_from([0.0, 0.5]), rank=st.integers(0, 2))
def test_probabilities_follow_the_epsilon_greedy_policy(items: list[Offer], seed: int, share: float, holdout: float,
                                                        rank: int) -> None:
    cat = catalog_of(items, share=share, holdout=holdout)
    greedy_cat = catalog_of(items, share=0.0, holdout=holdout)
    ids = [o.offer_id for o in items]
    props = propensity_rows(1, len(ids), seed)[0]
    d = decide(cat, member("m", rank=rank), ids, props, as_of=AS_OF, seed=seed)
    greedy = decide(greedy_cat, member("m", rank=rank), ids, props, as_of=AS_OF, seed=seed)
    _check_probabilities(d, greedy, share, len(ids))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=offers(), seed=st.integers(0, 10**6), share=st.sampled_from([0.2, 1.0]))
def test_thompson_probabilities_are_valid_conditional_probabilities(items: list[Offer], seed: int,
                                                                    share: float) -> None:
    cat = catalog_of(items, share=share, method="thompson")
    ids = [o.offer_id for o in items]
    d = decide(cat, member("m"), ids, propensity_rows(1, len(ids), seed)[0], as_of=AS_OF, seed=seed)
    assert all(0.0 < o.probability <= 1.0 for o in d.offers)
    if d.offers and not d.explored and d.policy == "personalised":
        assert d.offers[0].probability >= 1 - share  # the greedy pick at least keeps the exploit share


def _check_probabilities(d: Decision, greedy: Decision, share: float, n_candidates: int) -> None:
    assert all(0.0 < o.probability <= 1.0 for o in d.offers)
    if d.policy != "personalised" or share == 0:
        assert all(o.probability == 1.0 and not o.explored for o in d.offers)
        assert [o.offer_id for o in d.offers] == [o.offer_id for o in greedy.offers]
        return
    if not d.explored:
        assert [o.offer_id for o in d.offers] == [o.offer_id for o in greedy.offers]
    if d.offers:
        # every eligible candidate is feasible for the first slot
        n_feasible = n_candidates - sum(e.reason != "DIVERSITY_LIMIT" for e in d.excluded)
        on_greedy = d.offers[0].offer_id == greedy.offers[0].offer_id
        expected = (1 - share) * on_greedy + share / n_feasible
        assert abs(d.offers[0].probability - expected) < 1e-9
    slate_probability = float(np.prod([o.probability for o in d.offers]))
    assert 0.0 < slate_probability <= 1.0

