"""Eligibility: every rule excludes with its own reason code, never an error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.caps import BudgetUsage, CapCounters
from models.decision import decide
from tests.decision_helpers import AS_OF, OfferCaps, catalog, member, offer, tier


def reasons(offers, mem=None, channel=None, counters=None, budgets=None) -> dict[str, str]:
    cat = catalog(offers)
    d = decide(cat, mem or member(), [o.offer_id for o in offers], np.full(len(offers), 0.5), as_of=AS_OF,
               channel=channel, counters=counters, budgets=budgets)
    out = {e.offer_id: e.reason for e in d.excluded}
    out.update({o.offer_id: "ELIGIBLE" for o in d.offers})
    return out


@pytest.mark.parametrize(("kw", "mem_kw", "code"), [
    ({"starts_at": AS_OF + pd.Timedelta(days=1)}, {}, "OUTSIDE_WINDOW"),
    ({"ends_at": AS_OF - pd.Timedelta(seconds=1)}, {}, "OUTSIDE_WINDOW"),
    ({"tiers": frozenset({"Gold"})}, {}, "TIER_NOT_ELIGIBLE"),
    ({"segments": frozenset({"family"})}, {"segment": "single"}, "SEGMENT_NOT_ELIGIBLE"),
    ({"segments": frozenset({"family"})}, {"segment": None}, "SEGMENT_NOT_ELIGIBLE"),
    ({"birthday_month": True}, {"birth_month": 7}, "BIRTHDAY_NOT_THIS_MONTH"),
    ({"birthday_month": True}, {"birth_month": None}, "BIRTHDAY_NOT_THIS_MONTH"),
    ({"join_max_days": 30}, {"joined_at": AS_OF - pd.Timedelta(days=31)}, "JOIN_DATE_NOT_ELIGIBLE"),
    ({"join_min_days": 365}, {"joined_at": None}, "JOIN_DATE_NOT_ELIGIBLE"),
    ({"min_recent_spend_minor": 20001}, {}, "MIN_SPEND_NOT_MET"),
    ({"bought_categories": frozenset({"COFFEE"})}, {"bought_categories": frozenset({"TEA"})}, "PRODUCT_NOT_BOUGHT"),
])
def test_each_rule_has_its_reason(kw: dict, mem_kw: dict, code: str) -> None:
    got = reasons([offer("x", **kw), offer("free")], member(**mem_kw))
    assert got == {"x": code, "free": "ELIGIBLE"}


@pytest.mark.parametrize(("kw", "mem_kw"), [
    ({"tiers": frozenset({"Gold", "Silver"})}, {"rank": 1}),
    ({"segments": frozenset({"family"})}, {"segment": "family"}),
    ({"birthday_month": True}, {"birth_month": AS_OF.month}),
    ({"join_max_days": 30}, {"joined_at": AS_OF - pd.Timedelta(days=30)}),
    ({"min_recent_spend_minor": 20000}, {}),
    ({"bought_products": frozenset({"p9"})}, {"bought_products": frozenset({"p9", "p1"})}),
])
def test_each_rule_passes_when_met(kw: dict, mem_kw: dict) -> None:
    assert reasons([offer("x", **kw)], member(**mem_kw)) == {"x": "ELIGIBLE"}


def test_channels_need_both_the_offer_and_the_member_opt_in() -> None:
    offers = [offer("app_only", channels=frozenset({"app"})), offer("any")]
    mem = member(channels=frozenset({"email"}))
    assert reasons(offers, mem, channel="email") == {"app_only": "CHANNEL_NOT_ELIGIBLE", "any": "ELIGIBLE"}
    assert reasons(offers, mem, channel="app") == {"app_only": "CHANNEL_NOT_ELIGIBLE", "any": "CHANNEL_NOT_ELIGIBLE"}
    assert reasons(offers, member(channels=None), channel="app") == {"app_only": "ELIGIBLE", "any": "ELIGIBLE"}


def test_caps_and_budgets_give_their_codes() -> None:
    offers = [offer("seen", caps=OfferCaps(impressions=2)), offer("used", caps=OfferCaps(redemptions=1)),
              offer("issued", caps=OfferCaps(issues=1)),
              offer("broke", budget_key="b", budget_count=10, cost_minor=50, budget_minor=1000),
              offer("fine", caps=OfferCaps(impressions=2))]
    counters = CapCounters(impressions={"seen": 2, "fine": 1}, redemptions={"used": 1}, issues={"issued": 1})
    got = reasons(offers, counters=counters, budgets=BudgetUsage(count={"b": 10}))
    assert got == {"seen": "FREQUENCY_CAPPED", "used": "MEMBER_CAP_REACHED", "issued": "MEMBER_CAP_REACHED",
                   "broke": "BUDGET_EXHAUSTED", "fine": "ELIGIBLE"}
    money = reasons(offers[3:4], budgets=BudgetUsage(minor={"b": 951}))
    assert money == {"broke": "BUDGET_EXHAUSTED"}
    assert reasons(offers[3:4], budgets=BudgetUsage(minor={"b": 950})) == {"broke": "ELIGIBLE"}


def test_unknown_candidates_are_excluded_not_errors() -> None:
    cat = catalog([offer("a")])
    d = decide(cat, member(), ["a", "ghost"], [0.2, 0.9], as_of=AS_OF)
    assert [o.offer_id for o in d.offers] == ["a"]
    assert [(e.offer_id, e.reason) for e in d.excluded] == [("ghost", "UNKNOWN_OFFER")]


def test_first_failing_rule_is_reported() -> None:
    late = offer("x", starts_at=AS_OF + pd.Timedelta(days=1), tiers=frozenset({"Gold"}))
    assert reasons([late]) == {"x": "OUTSIDE_WINDOW"}


def test_tier_mechanics_are_eligibility_too() -> None:
    offers = [offer("up", kind="tier_challenge", value=50), offer("keep", kind="tier_retention", value=50)]
    gold = member(rank=2, tier=tier(2, delta_to_keep=0))
    assert reasons(offers, gold) == {"up": "TOP_TIER_REACHED", "keep": "RETENTION_NOT_NEEDED"}
    no_state = member(tier=None)
    assert reasons(offers, no_state) == {"up": "TIER_UNKNOWN", "keep": "TIER_UNKNOWN"}
