"""The decision core answers exactly as before it kept exclusions as arrays.

``tests/decision_reference.py`` is the core as it was (objects built eagerly, one sort per
member). Every field of every decision, the excluded list and the increments included,
must be equal, through ``decide`` (one member at a time) and ``decide_batch``, on
generated catalogs, members, counters, budgets and propensities, and on a larger fixed
program with exploration and model-contribution reasons.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.arbitration import order
from models.caps import BudgetState, BudgetUsage, CapCounters
from models.catalog import Catalog, Offer, OfferCaps
from models.decision import decide, decide_batch
from models.member import MemberContext
from models.policy import seed_for
from models.program import load_program
from runtime.decisions.outcome import Outcome
from runtime.decisions.outcome_json import outcome_json
from tests.decision_helpers import AS_OF, member, program, tier
from tests.decision_reference import plain, reference

KINDS = ("amount_off", "percent_off", "points_multiplier", "bonus_points", "free_item", "partner",
         "tier_challenge", "tier_retention")
TEXTS = (None, None, "{value} off for {tier}", "{title}: {amount} by {deadline} ({days_left} days)")
FEATURES = ["f0", "f1", "f2", "f3"]


@st.composite
def offers(draw: st.DrawFn) -> list[Offer]:
    out = []
    for i in range(draw(st.integers(1, 14))):
        budget_key = draw(st.sampled_from([None, None, "b1", "b2"]))
        out.append(Offer(
            offer_id=f"o{i:02d}", kind=draw(st.sampled_from(KINDS)), title=f"Offer {i}",
            value=float(draw(st.integers(1, 40))), text=draw(st.sampled_from(TEXTS)),
            tier_values=draw(st.sampled_from([{}, {}, {"Gold": 50.0}])),
            cost_minor=draw(st.sampled_from([None, 50, 200])),
            funder=draw(st.sampled_from([None, "Brand"])), cost_share=draw(st.sampled_from([0.0, 0.5])),
            channels=draw(st.sampled_from([None, frozenset({"app"}), frozenset({"email"})])),
            tiers=draw(st.sampled_from([None, None, frozenset({"Gold"}), frozenset({"Silver", "Gold"})])),
            segments=draw(st.sampled_from([None, None, frozenset({"family"})])),
            category=draw(st.sampled_from([None, "A", "B"])),
            stacking_group=draw(st.sampled_from([None, None, "g"])),
            caps=OfferCaps(impressions=draw(st.sampled_from([None, 1, 2])), issues=draw(st.sampled_from([None, 1])),
                           redemptions=draw(st.sampled_from([None, 1]))),
            budget_key=budget_key,
            budget_count=draw(st.sampled_from([None, 1, 3])) if budget_key else None,
            budget_minor=draw(st.sampled_from([None, 300])) if budget_key else None,
            priority=draw(st.sampled_from([0, 0, 1])), lever=draw(st.sampled_from([1.0, 1.0, 1.5])),
            requires_coupon=draw(st.booleans())))
    return out


@st.composite
def members(draw: st.DrawFn, n: int) -> list[MemberContext]:
    out = []
    for i in range(n):
        rank = draw(st.sampled_from([0, 1, 2, None]))
        out.append(member(
            f"m{i}", rank=rank or 0, tier=None if rank is None else tier(
                rank, delta_to_next=draw(st.sampled_from([500, 10000])), delta_to_keep=draw(st.sampled_from([0, 300])),
                period_end=draw(st.sampled_from([AS_OF + pd.Timedelta(days=10), pd.Timestamp("2024-12-31")]))),
            segment=draw(st.sampled_from([None, "family"])), channels=draw(st.sampled_from([None, frozenset({"app"})])),
            has_history=draw(st.sampled_from([True, True, False]))))
    return out


def counters_for(items: list[Offer], n: int, seed: int) -> list[CapCounters]:
    rng = np.random.default_rng(seed)
    ids = [o.offer_id for o in items]
    return [CapCounters(impressions={o: int(rng.integers(0, 3)) for o in ids if rng.random() < 0.3},
                        issues={o: 1 for o in ids if rng.random() < 0.15},
                        redemptions={o: 1 for o in ids if rng.random() < 0.1}) for _ in range(n)]


def inputs(items: list[Offer], n: int, seed: int, *, unscored: float) -> tuple[list[str], np.ndarray]:
    """Candidates (shuffled, sometimes with an id the catalog lacks) and propensities
    (some missing, some members without any score)."""
    rng = np.random.default_rng(seed)
    ids = [o.offer_id for o in items] + (["ghost"] if rng.random() < 0.5 else [])
    ids = [ids[k] for k in rng.permutation(len(ids))]
    props = np.round(rng.random((n, len(ids))), 2)  # rounding makes priority ties common
    props[rng.random((n, len(ids))) < 0.2] = np.nan
    props[rng.random(n) < unscored] = np.nan
    return ids, props


policy_settings = st.tuples(st.sampled_from([0.0, 0.3, 1.0]), st.sampled_from(["epsilon_greedy", "thompson"]),
                            st.sampled_from([0.0, 0.3]), st.integers(1, 3), st.integers(1, 5),
                            st.sampled_from(["{}", "{kind: {percent_off: 2.0}, tier: {Silver: 1.5}}"]))


def catalog_of(items: list[Offer], share: float, method: str, holdout: float, per_category: int, max_offers: int,
               levers: str, popular: bool) -> Catalog:
    prog = program(max_offers=max_offers, margin=0.1, per_category=per_category, share=share, method=method,
                   holdout=holdout, levers=levers)
    popularity = {o.offer_id: 0.1 * (i % 4) for i, o in enumerate(items) if i % 3} if popular else None
    return Catalog(prog, items, popularity)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=offers(), group=members(6), seed=st.integers(0, 10**6), policy=policy_settings,
       popular=st.booleans(), channel=st.sampled_from([None, "app"]), used=st.sampled_from([0, 1]),
       n=st.sampled_from([None, 2]))
def test_batch_decisions_equal_the_reference(items: list[Offer], group: list[MemberContext], seed: int,
                                             policy: tuple, popular: bool, channel: str | None, used: int,
                                             n: int | None) -> None:
    cat = catalog_of(items, *policy, popular=popular)
    ids, props = inputs(items, len(group), seed, unscored=0.2)
    counters = counters_for(items, len(group), seed)
    usage = BudgetUsage(count={"b1": used}, minor={"b2": 100 * used})
    got = decide_batch(cat, group, ids, props, as_of=AS_OF, channel=channel, counters=counters, budgets=usage,
                       seed=seed, max_offers=n)
    want = reference(cat, group, ids, props, as_of=AS_OF, channel=channel, counters=counters,
                     budget=BudgetState(cat, usage), seeds=[seed_for(seed, m.member_id) for m in group], max_offers=n)
    assert [plain(d) for d in got] == want


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=offers(), group=members(3), seed=st.integers(0, 10**6), policy=policy_settings,
       popular=st.booleans(), channel=st.sampled_from([None, "app"]), explain=st.booleans(),
       scored=st.booleans())
def test_single_decisions_equal_the_reference(items: list[Offer], group: list[MemberContext], seed: int,
                                              policy: tuple, popular: bool, channel: str | None, explain: bool,
                                              scored: bool) -> None:
    cat = catalog_of(items, *policy, popular=popular)
    ids, props = inputs(items, len(group), seed, unscored=0.3)
    counters = counters_for(items, len(group), seed)
    contrib = np.random.default_rng(seed).normal(size=(len(group), len(ids), len(FEATURES) + 1)) if explain else None
    names = FEATURES if explain else None
    budget, twin = BudgetState(cat), BudgetState(cat)  # consumed in place, one decision after another
    for i, m in enumerate(group):
        got = decide(cat, m, ids, props[i] if scored else None, as_of=AS_OF, channel=channel, counters=counters[i],
                     budgets=budget, contributions=None if contrib is None else contrib[i], feature_names=names,
                     seed=seed + i)
        want = reference(cat, [m], ids, props[i:i + 1] if scored else None, as_of=AS_OF, channel=channel,
                         counters=[counters[i]], budget=twin, seeds=[seed + i],
                         contrib=None if contrib is None else contrib[i:i + 1], feature_names=names)
        assert plain(got) == want[0]
        assert list(budget.count) == list(twin.count) and list(budget.minor) == list(twin.minor)


def test_a_larger_program_decides_as_the_reference_alone_and_in_a_batch() -> None:
    """150 offers under the synthetic example program (exploration, holdout, promotions),
    80 members of every tier, with and without scores, one batch and one by one."""
    rng = np.random.default_rng(7)
    prog = load_program("examples/programs/synthetic.yaml")
    for method in ("epsilon_greedy", "thompson"):
        decisions = prog.decisions.model_copy(update={"exploration": prog.decisions.exploration.model_copy(
            update={"method": method, "share": 0.3})})
        cat = Catalog(prog.model_copy(update={"decisions": decisions}), _realistic_offers(rng, prog.tier_names),
                      {f"x{i:03d}": float(rng.random()) for i in range(0, 150, 4)})
        group = [member(f"member-{k}", rank=int(rng.integers(0, len(prog.tiers))) % 3,
                        typical_basket_minor=int(rng.integers(500, 9000)), has_history=bool(rng.random() < 0.9))
                 for k in range(80)]
        ids = [o.offer_id for o in cat.offers]
        props = rng.random((len(group), len(ids)))
        props[rng.random(props.shape) < 0.1] = np.nan
        contrib = rng.normal(size=(len(group), len(ids), 6))
        got = decide_batch(cat, group, ids, props, as_of=AS_OF, channel="app", seed=11)
        seeds = [seed_for(11, m.member_id) for m in group]
        want = reference(cat, group, ids, props, as_of=AS_OF, channel="app", counters=None,
                         budget=BudgetState(cat), seeds=seeds)
        assert [plain(d) for d in got] == want
        for i in range(0, len(group), 7):
            alone = decide(cat, group[i], ids, props[i], as_of=AS_OF, channel="app", contributions=contrib[i],
                           feature_names=[*FEATURES, "f4"], seed=seeds[i])
            assert plain(alone) == reference(cat, group[i:i + 1], ids, props[i:i + 1], as_of=AS_OF, channel="app",
                                             counters=None, budget=BudgetState(cat), seeds=seeds[i:i + 1],
                                             contrib=contrib[i:i + 1], feature_names=[*FEATURES, "f4"])[0]


def _realistic_offers(rng: np.random.Generator, tiers: list[str]) -> list[Offer]:
    out = []
    for i in range(150):
        kind = str(rng.choice(KINDS[:6]))
        budget = bool(rng.random() < 0.1)
        out.append(Offer(
            offer_id=f"x{i:03d}", kind=kind, title=f"Offer {i}", value=float(rng.integers(1, 30)),
            cost_minor=int(rng.integers(50, 500)), funder="Brand X" if rng.random() < 0.2 else None,
            cost_share=0.4 if rng.random() < 0.5 else 0.0,
            channels=frozenset({"app"}) if rng.random() < 0.3 else None,
            tiers=frozenset(tiers[1:]) if rng.random() < 0.2 else None,
            category=f"c{rng.integers(0, 6)}" if rng.random() < 0.8 else None,
            stacking_group="weekly" if rng.random() < 0.1 else None,
            budget_key="launch" if budget else None, budget_count=25 if budget else None,
            priority=int(rng.integers(0, 2)), requires_coupon=bool(rng.random() < 0.5)))
    return out


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10**6), m=st.integers(0, 5), c=st.integers(0, 12))
def test_ranks_for_a_batch_are_order_row_by_row(seed: int, m: int, c: int) -> None:
    rng = np.random.default_rng(seed)
    cat = Catalog(program(), [Offer(offer_id=f"o{k}", kind="amount_off", title="t", priority=int(rng.integers(0, 2)))
                              for k in range(max(c, 1))])
    pos = rng.integers(0, max(c, 1), c)
    priority = np.round(rng.random((m, c)), 1)  # many ties
    value = np.round(rng.random((m, c)), 1)
    ranks = order(cat, pos, priority, value)
    assert ranks.shape == (m, c)
    for i in range(m):
        assert ranks[i].tolist() == order(cat, pos, priority[i], value[i]).tolist()


def test_decisions_compare_hash_and_print_with_their_exclusions() -> None:
    cat = Catalog(program(per_category=1), [Offer(offer_id="a", kind="amount_off", title="A", value=5, category="k"),
                                            Offer(offer_id="b", kind="amount_off", title="B", value=4, category="k")])
    one = decide(cat, member(), ["a", "b", "ghost"], [0.5, 0.5, 0.5], as_of=AS_OF)
    two = decide(cat, member(), ["a", "b", "ghost"], [0.5, 0.5, 0.5], as_of=AS_OF)
    other = decide(cat, member(), ["a", "ghost"], [0.5, 0.5], as_of=AS_OF)
    assert one == two and hash(one) == hash(two)
    assert one.offers == other.offers and one != other  # the same offers, other exclusions
    assert one.excluded == (("ghost", "UNKNOWN_OFFER"), ("b", "DIVERSITY_LIMIT"))
    assert repr(one).startswith("Decision(member_id='m1', offers=(RankedOffer(offer_id='a'")
    assert "excluded=(Excluded(offer_id='ghost', reason='UNKNOWN_OFFER'), Excluded(offer_id='b', " \
           "reason='DIVERSITY_LIMIT')), holdout=False" in repr(one)
    assert "increments=(CounterIncrement(scope='member', subject='impression', key='a', amount=1, " \
           "window_days=None), CounterIncrement(scope='member', subject='issue'" in repr(one)


def test_an_outcome_lists_the_decisions_exclusions_then_the_refused_offers() -> None:
    from models.decision import Excluded

    cat = Catalog(program(), [Offer(offer_id="a", kind="amount_off", title="A", value=5),
                              Offer(offer_id="b", kind="amount_off", title="B", value=4, channels=frozenset({"x"}))])
    decision = decide(cat, member(), ["a", "b"], [0.5, 0.5], as_of=AS_OF, channel="app")
    refused = (Excluded("a", "BUDGET_EXHAUSTED"),)
    outcome = Outcome(decision_id="d", member_id="m1", as_of=datetime(2024, 6, 15, tzinfo=UTC), model_version=None,
                      decision=decision, offers=(), refused=refused, member=member(), scores="none", history="none")
    assert outcome.excluded == (("b", "CHANNEL_NOT_ELIGIBLE"), ("a", "BUDGET_EXHAUSTED"))
    assert outcome_json(cat.program, outcome)["excluded"] == [{"offer_id": "b", "reason": "CHANNEL_NOT_ELIGIBLE"},
                                                              {"offer_id": "a", "reason": "BUDGET_EXHAUSTED"}]
    assert "excluded" not in outcome_json(cat.program, outcome, include_excluded=False)
