"""Arbitration: P x V x L minus cost, deterministic ties, diversity, levers, tier values."""

from __future__ import annotations

import numpy as np
import pytest

from models.decision import decide
from tests.decision_helpers import AS_OF, catalog, member, offer, program


def ranked(cat, props, mem=None, **kw) -> list[str]:
    ids = [o.offer_id for o in cat.offers]
    return [o.offer_id for o in decide(cat, mem or member(), ids, props, as_of=AS_OF, **kw).offers]


def test_priority_is_propensity_times_value_and_levers_minus_retailer_cost() -> None:
    prog = program(margin=0.25, levers="{kind: {percent_off: 2.0}, tier: {Silver: 1.5}}")
    cat = catalog([offer("pct", kind="percent_off", value=10, cost_minor=300),
                   offer("amt", value=500, cost_minor=500, funder="Brand", cost_share=0.8, lever=0.5)], prog)
    d = decide(cat, member(rank=1), ["pct", "amt"], [0.2, 0.4], as_of=AS_OF)
    got = {o.offer_id: o for o in d.offers}
    basket = 4000
    # 10% of a $40 basket = 400 minor; business value 0.25 * 4000; levers 2.0 (kind) * 1.5 (tier)
    assert got["pct"].value_minor == pytest.approx(400)
    assert got["pct"].priority == pytest.approx(0.2 * ((400 + 0.25 * basket) * 3.0) - 0.2 * 300)
    # supplier pays 80% of the cost; offer lever 0.5 and tier lever 1.5
    assert got["amt"].priority == pytest.approx(0.4 * ((500 + 0.25 * basket) * 0.75) - 0.4 * 100)
    assert "LEVER:x3.00" in got["pct"].reasons and "FUNDED_BY:Brand:80%" in got["amt"].reasons


def test_supplier_funding_wins_at_equal_propensity_and_value() -> None:
    cat = catalog([offer("retailer", cost_minor=100), offer("supplier", cost_minor=100, funder="X", cost_share=1.0)])
    assert ranked(cat, [0.3, 0.3]) == ["supplier", "retailer"]


def test_ties_break_on_business_priority_then_value_then_id() -> None:
    cat = catalog([offer("b"), offer("a"), offer("c", priority=5)])
    assert ranked(cat, [0.1, 0.1, 0.1]) == ["c", "a", "b"]
    again = catalog([offer("z"), offer("y")])
    assert ranked(again, [0.2, 0.2]) == ["y", "z"]
    # equal priority with different values: 0.2 * 100 == 0.1 * 200, the bigger value first
    valued = catalog([offer("small", value=100), offer("big", value=200)])
    assert ranked(valued, [0.2, 0.1]) == ["big", "small"]


def test_ranking_is_deterministic_without_exploration() -> None:
    rng = np.random.default_rng(0)
    cat = catalog([offer(f"o{i}", value=float(rng.integers(50, 500))) for i in range(40)])
    props = rng.random(40)
    first = ranked(cat, props, seed=1)
    assert all(ranked(cat, props, seed=s) == first for s in range(2, 6))


def test_diversity_limits_categories_and_stacking_groups() -> None:
    prog = program(per_category=2)
    offers = [offer("c1", category="CHEESE"), offer("c2", category="CHEESE"), offer("c3", category="CHEESE"),
              offer("g1", stacking_group="weekly"), offer("g2", stacking_group="weekly"), offer("free")]
    cat = catalog(offers, prog)
    d = decide(cat, member(), [o.offer_id for o in offers], [0.9, 0.8, 0.7, 0.6, 0.5, 0.1], as_of=AS_OF)
    assert [o.offer_id for o in d.offers] == ["c1", "c2", "g1", "free"]
    assert {(e.offer_id, e.reason) for e in d.excluded} == {("c3", "DIVERSITY_LIMIT"), ("g2", "DIVERSITY_LIMIT")}


def test_slate_size_follows_max_offers() -> None:
    cat = catalog([offer(f"o{i}") for i in range(10)], program(max_offers=3))
    assert len(ranked(cat, np.linspace(0.1, 0.9, 10))) == 3
    assert len(ranked(cat, np.linspace(0.1, 0.9, 10), max_offers=7)) == 7


def test_tier_values_and_earn_multipliers_differentiate_by_tier() -> None:
    cat = catalog([offer("gift", kind="birthday", value=500, tier_values={"Gold": 2000}),
                   offer("double", kind="points_multiplier", value=2)])
    ids = ["gift", "double"]
    bronze = {o.offer_id: o for o in decide(cat, member(rank=0), ids, [0.5, 0.5], as_of=AS_OF).offers}
    gold = {o.offer_id: o for o in decide(cat, member(rank=2), ids, [0.5, 0.5], as_of=AS_OF).offers}
    assert (bronze["gift"].value, gold["gift"].value) == (500, 2000)
    assert gold["gift"].tier_promo == "tier_value" and bronze["double"].tier_promo is None
    # 2x points on a $40 basket at 1 point per $ worth 1 cent: 40 cents, doubled by Gold's earn multiplier
    assert bronze["double"].value_minor == pytest.approx(40) and gold["double"].value_minor == pytest.approx(80)
    assert gold["double"].tier_promo == "tier_value"
