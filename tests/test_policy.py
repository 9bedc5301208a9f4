"""Holdout, exploration, cold start and explanations."""

from __future__ import annotations

import numpy as np
import pytest

from models.decision import decide
from models.member import MemberContext
from models.policy import holdout_draw, in_holdout, seed_for
from tests.decision_helpers import AS_OF, catalog, member, offer, program


def test_holdout_share_is_respected_and_members_are_spread() -> None:
    ids = [f"member-{i}" for i in range(20000)]
    share = np.mean([in_holdout(m, "salt", 0.1) for m in ids])
    assert 0.09 < share < 0.11
    assert not any(in_holdout(m, "salt", 0.0) for m in ids[:100])
    other_salt = [in_holdout(m, "pepper", 0.1) for m in ids]
    same_salt = [in_holdout(m, "salt", 0.1) for m in ids]
    assert other_salt != same_salt
    assert 0.0 <= min(holdout_draw(m, "s") for m in ids[:500]) < max(holdout_draw(m, "s") for m in ids[:500]) < 1.0


def test_holdout_members_get_the_fallback_policy_flagged() -> None:
    prog = program(holdout=0.5, share=0.5)
    cat = catalog([offer("a", value=100), offer("b", value=300)], prog, popularity={"a": 0.5, "b": 0.01})
    members = [member(f"m{i}") for i in range(40)]
    decisions = [decide(cat, m, ["a", "b"], [0.01, 0.9], as_of=AS_OF, seed=i) for i, m in enumerate(members)]
    held = [d for d in decisions if d.holdout]
    assert held and len(held) < len(decisions)
    for d in held:
        assert d.policy == "holdout" and not d.explored
        assert [o.offer_id for o in d.offers] == ["a", "b"]  # by popularity x value, ignoring the model
        assert all(o.probability == 1.0 and "HOLDOUT_FALLBACK" in o.reasons for o in d.offers)
    for d in decisions:
        assert d.holdout == in_holdout(d.member_id, "test", 0.5)


def test_cold_start_member_ranks_by_popularity_then_value() -> None:
    cat = catalog([offer("popular", value=100), offer("valuable", value=900), offer("plain", value=300)],
                  popularity={"popular": 0.5})
    newbie = MemberContext("new", tier=None)
    d = decide(cat, newbie, ["popular", "valuable", "plain"], None, as_of=AS_OF)
    assert d.cold_start and d.policy == "cold_start" and d.fallback
    assert [o.offer_id for o in d.offers] == ["popular", "valuable", "plain"]
    assert d.offers[0].reasons[-1] == "COLD_START_FALLBACK:POPULARITY"
    assert d.offers[1].reasons[-1] == "COLD_START_FALLBACK:VALUE"
    # a known member whose scores are all missing is cold too
    assert decide(cat, member(), ["popular"], [np.nan], as_of=AS_OF).cold_start


def test_new_offer_falls_back_within_a_personalised_decision() -> None:
    cat = catalog([offer("known"), offer("brand_new")])
    d = decide(cat, member(), ["known", "brand_new"], [0.3, np.nan], as_of=AS_OF)
    new = next(o for o in d.offers if o.offer_id == "brand_new")
    assert d.policy == "personalised" and new.fallback and new.propensity == pytest.approx(0.3)
    assert "NEW_OFFER_FALLBACK:MEMBER_MEAN" in new.reasons and d.fallback


def test_reasons_name_eligibility_mechanic_and_top_features() -> None:
    cat = catalog([offer("gold_only", tiers=frozenset({"Gold"})), offer("plain")])
    contrib = np.array([[0.5, -2.0, 0.1, 0.0, 9.9], [0.0, 0.0, 0.0, 0.3, 9.9]])  # last column is the bias
    d = decide(cat, member(rank=2), ["gold_only", "plain"], [0.4, 0.2], as_of=AS_OF,
               contributions=contrib, feature_names=["recency", "frequency", "discount", "age"])
    first, second = d.offers
    assert first.reasons == ("ELIGIBLE_TIER:Gold", "TIER_MECHANIC:tier_restricted", "MODEL_PROPENSITY",
                             "FEATURE:frequency=-2.000", "FEATURE:recency=+0.500", "FEATURE:discount=+0.100")
    assert second.reasons == ("MODEL_PROPENSITY", "FEATURE:age=+0.300")


def test_same_seed_same_decision_and_seeds_vary_exploration() -> None:
    prog = program(share=0.5)
    cat = catalog([offer(f"o{i}") for i in range(12)], prog)
    props = np.linspace(0.05, 0.6, 12)
    ids = [o.offer_id for o in cat.offers]
    runs = [decide(cat, member(), ids, props, as_of=AS_OF, seed=seed_for("decision-7")) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    slates = {tuple(o.offer_id for o in decide(cat, member(), ids, props, as_of=AS_OF, seed=s).offers)
              for s in range(30)}
    assert len(slates) > 5


@pytest.mark.parametrize("method", ["epsilon_greedy", "thompson"])
def test_first_slot_frequencies_match_reported_probabilities(method: str) -> None:
    prog = program(share=0.4, method=method, max_offers=2)
    cat = catalog([offer(f"o{i}") for i in range(5)], prog)
    props = np.array([0.30, 0.25, 0.20, 0.10, 0.05])
    ids = [o.offer_id for o in cat.offers]
    counts: dict[str, int] = {}
    reported: dict[str, list[float]] = {}
    n = 3000
    for s in range(n):
        first = decide(cat, member(), ids, props, as_of=AS_OF, seed=s).offers[0]
        counts[first.offer_id] = counts.get(first.offer_id, 0) + 1
        reported.setdefault(first.offer_id, []).append(first.probability)
    for oid, c in counts.items():
        p = float(np.mean(reported[oid]))
        assert abs(c / n - p) < 5 * np.sqrt(p * (1 - p) / n) + 0.01, (oid, c / n, p)
    if method == "epsilon_greedy":
        assert reported["o0"][0] == pytest.approx(0.6 + 0.4 / 5)
        assert reported["o4"][0] == pytest.approx(0.4 / 5)
