"""The example programs reproduce their real counterparts for hand-built members."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.catalog import build_catalog
from models.decision import Decision, decide
from models.member import MemberContext
from models.program import Program, load_program
from models.tiers import TierState, member_tier_state

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "programs"


def example(name: str) -> Program:
    return load_program(EXAMPLES / f"{name}.yaml")


def state(program: Program, purchases: list[tuple[str, float]], as_of: str) -> TierState:
    """Tier state from (timestamp, dollars) purchases."""
    times = np.array([pd.Timestamp(t) for t, _ in purchases], dtype="datetime64[ns]")
    cents = np.array([round(d * 100) for _, d in purchases], dtype=np.int64)
    return member_tier_state(program, times, cents, pd.Timestamp(as_of))


def visits(n: int, start: str = "2024-01-02", every_days: int = 7, dollars: float = 5.0) -> list[tuple[str, float]]:
    first = pd.Timestamp(start)
    return [(str(first + pd.Timedelta(days=every_days * i)), dollars) for i in range(n)]


# -- Starbucks-like: stars per visit, Gold at 30 stars in 12 months --------------------------

def test_starbucks_gold_at_30_stars_within_12_months() -> None:
    sbux = example("starbucks")
    gold = state(sbux, visits(30), "2024-08-01")
    assert (gold.tier, gold.metric, gold.next_tier) == ("Gold", 30, None)
    green = state(sbux, visits(29), "2024-08-01")
    assert (green.tier, green.metric, green.delta_to_next) == ("Green", 29, 1)
    assert state(sbux, visits(4), "2024-08-01").tier == "Welcome"


def test_starbucks_stars_count_visits_not_dollars_and_expire_after_12_months() -> None:
    sbux = example("starbucks")
    big_spender = state(sbux, [("2024-03-01 08:00", 900.0)] * 3, "2024-04-01")  # one visit, 3 lines
    assert (big_spender.tier, big_spender.metric) == ("Welcome", 1)
    lapsed = state(sbux, visits(30, start="2023-01-02"), "2024-08-01")  # all older than 12 months
    assert (lapsed.tier, lapsed.metric) == ("Welcome", 0)
    gold = state(sbux, visits(30, start="2023-09-01"), "2024-08-01")
    # the oldest star (2023-09-01) leaves 365 days later, on 2024-08-31 (2024 is a leap year)
    assert gold.tier == "Gold" and gold.period_end == pd.Timestamp("2024-08-31")
    assert gold.delta_to_keep == 1


# -- MAC-Select-like: calendar-year spend, $0 / $150 / $500, one tier down -------------------

def test_mac_select_tiers_by_calendar_year_spend() -> None:
    mac = example("mac_select")
    assert state(mac, [("2024-02-01", 149.99)], "2024-06-01").tier == "Select"
    devoted = state(mac, [("2024-02-01", 100.0), ("2024-05-01", 50.0)], "2024-06-01")
    assert (devoted.tier, devoted.since) == ("Devoted", pd.Timestamp("2024-05-01"))
    assert devoted.delta_to_next == 35000 and devoted.next_tier == "Obsessed"
    obsessed = state(mac, [("2024-02-01", 520.0)], "2024-06-01")
    assert obsessed.tier == "Obsessed" and obsessed.delta_to_keep == 0


def test_mac_select_status_lasts_through_next_year_then_drops_one_tier() -> None:
    mac = example("mac_select")
    purchases = [("2023-03-01", 600.0)]
    held = state(mac, purchases, "2024-11-15")
    assert held.tier == "Obsessed" and held.delta_to_keep == 50000
    assert held.period_end.date() == pd.Timestamp("2024-12-31").date()
    assert held.at_risk and held.projected_tier == "Devoted"
    assert state(mac, purchases, "2025-02-01").tier == "Devoted"
    assert state(mac, purchases, "2026-02-01").tier == "Select"
    requalified = state(mac, [*purchases, ("2024-10-01", 510.0)], "2025-02-01")
    # requalifying in 2024 keeps Obsessed through 2025, held continuously since 2023
    assert requalified.tier == "Obsessed" and requalified.since == pd.Timestamp("2023-03-01")
    assert requalified.delta_to_keep == 50000  # nothing spent in 2025 yet


# -- Tesco- and CVS-like: no earned tiers ---------------------------------------------------

def test_cashback_programs_have_one_tier_and_their_earn_rate() -> None:
    tesco, cvs = example("tesco_clubcard"), example("cvs_extracare")
    for program in (tesco, cvs):
        s = state(program, [("2024-01-05", 80.0)], "2024-03-01")
        assert s.tier == program.tier_names[0] and s.next_tier is None and not s.at_risk
    # 1% back at Tesco, 2% back at CVS: points per major unit times the value of a point
    assert tesco.currency.earn_rate * tesco.currency.point_value == 0.01
    assert cvs.currency.earn_rate * cvs.currency.point_value == 0.02


# -- The Complete Journey and synthetic defaults -------------------------------------------

def test_completejourney_thresholds_and_grace() -> None:
    cj = example("completejourney")
    assert cj.threshold_units.tolist() == [0, 120_000, 360_000]
    silver = state(cj, [("2017-01-10", 1300.0)], "2017-06-01")
    assert silver.tier == "Silver" and silver.delta_to_next == 230_000
    in_grace = state(cj, [("2017-01-10", 1300.0)], "2018-01-20")  # left the window on 2018-01-10
    assert in_grace.tier == "Silver" and in_grace.metric == 0 and in_grace.at_risk
    assert state(cj, [("2017-01-10", 1300.0)], "2018-02-15").tier == "Bronze"


def test_synthetic_program_matches_the_generator_constants() -> None:
    synth = example("synthetic")
    assert synth.tier_names == ("Bronze", "Silver", "Gold")
    assert synth.threshold_units.tolist() == [0, 30_000, 70_000]
    assert synth.tier_policy.window.days == 365


# -- promotions for hand-built members ------------------------------------------------------

def decide_for(program: Program, purchases: list[tuple[str, float]], as_of: str, *, basket: float | None = None,
               propensity: float = 0.2, channel: str | None = None, **member_kw: object) -> Decision:
    """Decide over every program offer for a member built from (timestamp, dollars) purchases."""
    when = pd.Timestamp(as_of)
    tier = state(program, purchases, as_of)
    catalog = build_catalog(program)
    ids = [o.offer_id for o in catalog.offers]
    member = MemberContext("hand-built", tier=tier, has_history=True,
                           typical_basket_minor=None if basket is None else round(basket * 100),
                           **member_kw)  # type: ignore[arg-type]
    return decide(catalog, member, ids, np.full(len(ids), propensity), as_of=when, channel=channel,
                  max_offers=len(ids))


def got(decision: Decision) -> dict[str, str | None]:
    """Offer id -> text for returned offers, and id -> reason code for excluded ones."""
    out: dict[str, str | None] = {e.offer_id: e.reason for e in decision.excluded}
    out.update({o.offer_id: o.text for o in decision.offers})
    return out


def test_starbucks_gold_gets_double_star_day_green_is_challenged() -> None:
    sbux = example("starbucks")
    gold = got(decide_for(sbux, visits(30, start="2024-01-02"), "2024-08-01", birth_month=8))
    assert gold["double_star_day"] == "Gold members earn double stars on every purchase today"
    assert gold["birthday_drink"] == "Happy birthday! A free drink of your choice is on us this month"
    assert gold["reach_next_level"] == "TOP_TIER_REACHED"
    green = got(decide_for(sbux, visits(27, start="2024-01-02"), "2024-08-01", birth_month=3))
    assert green["double_star_day"] == "TIER_NOT_ELIGIBLE"
    assert green["birthday_drink"] == "BIRTHDAY_NOT_THIS_MONTH"
    assert green["reach_next_level"] == "Earn 3 stars by 31 Aug to reach Gold"
    far = got(decide_for(sbux, visits(20, start="2024-01-02"), "2024-08-01"))
    assert far["reach_next_level"] == "CHALLENGE_OUT_OF_REACH"  # 10 visits away, more than 4
    assert got(decide_for(sbux, visits(2), "2024-08-01", birth_month=8))["birthday_drink"] == "TIER_NOT_ELIGIBLE"


def test_starbucks_retention_nudge_before_gold_lapses() -> None:
    sbux = example("starbucks")
    # 30 weekly visits from 2023-09-01: the first star leaves on 2024-08-31
    d = got(decide_for(sbux, visits(30, start="2023-09-01"), "2024-08-15"))
    assert d["keep_gold"] == "Earn 1 star by 31 Aug to keep Gold"
    early = got(decide_for(sbux, visits(30, start="2023-09-01"), "2024-06-15"))
    assert early["keep_gold"] == "RETENTION_NOT_DUE"


def test_mac_select_challenge_perks_and_tiered_birthday() -> None:
    mac = example("mac_select")
    select = got(decide_for(mac, [("2024-03-01", 120.0)], "2024-11-15", basket=45.0, birth_month=11))
    assert select["reach_next_tier"] == "Spend $30 by 31 Dec to reach Devoted"
    assert select["early_access_launch"] == "TIER_NOT_ELIGIBLE"
    assert select["free_shipping"] == "TIER_NOT_ELIGIBLE"
    assert select["birthday_gift"] == "Happy birthday! Your $5 birthday reward is waiting"
    out_of_reach = got(decide_for(mac, [("2024-03-01", 20.0)], "2024-11-15", basket=45.0))
    assert out_of_reach["reach_next_tier"] == "CHALLENGE_OUT_OF_REACH"  # $130 > 1.5 x $45
    too_late = got(decide_for(mac, [("2024-03-01", 120.0)], "2024-12-25", basket=45.0))
    assert too_late["reach_next_tier"] == "NOT_ENOUGH_TIME"
    devoted = got(decide_for(mac, [("2024-03-01", 200.0)], "2024-11-15", basket=45.0, channel="web"))
    assert devoted["early_access_launch"] == "As a Devoted member you can shop the new collection before anyone else"
    assert devoted["free_shipping"] == "Free shipping on every order, a Devoted perk"


def test_mac_select_retention_and_obsessed_birthday() -> None:
    mac = example("mac_select")
    purchases = [("2023-04-01", 600.0), ("2024-02-01", 400.0)]
    d = decide_for(mac, purchases, "2024-12-01", basket=45.0, birth_month=12)
    texts = got(d)
    assert texts["keep_tier"] == "Spend $100 by 31 Dec to keep Obsessed"
    assert texts["birthday_gift"] == "Happy birthday! Your $20 birthday reward is waiting"
    promos = {o.offer_id: o.tier_promo for o in d.offers}
    assert promos["keep_tier"] == "retention_nudge" and promos["birthday_gift"] == "tier_value"
    assert promos["early_access_launch"] == "tier_restricted"


def test_tesco_supplier_coupons_go_to_category_buyers_and_are_funded() -> None:
    tesco = example("tesco_clubcard")
    coffee = decide_for(tesco, [("2024-01-05", 30.0)], "2024-03-01", basket=25.0,
                        bought_categories=frozenset({"COFFEE"}), recent_spend_minor=4500)
    texts = got(coffee)
    assert texts["brand_switch_coffee"] == "£1 off Brand X coffee, on us and Brand X"
    assert texts["brand_x_tea"] == "PRODUCT_NOT_BOUGHT"
    assert texts["double_up_vouchers"] is None  # eligible; no template
    funded = next(o for o in coffee.offers if o.offer_id == "brand_switch_coffee")
    assert "FUNDED_BY:Brand X:100%" in funded.reasons
    low = got(decide_for(tesco, [("2024-01-05", 30.0)], "2024-03-01", recent_spend_minor=3999))
    assert low["double_up_vouchers"] == "MIN_SPEND_NOT_MET"


def test_cvs_personalised_coupons_by_segment_and_tenure() -> None:
    cvs = example("cvs_extracare")
    new_carepass = got(decide_for(cvs, [], "2024-03-01", segment="carepass",
                                  joined_at=pd.Timestamp("2024-02-20"), channel="email"))
    assert new_carepass["carepass_monthly_reward"] == "Your monthly $10 CarePass reward is ready"
    assert new_carepass["welcome_coupon"] == "Welcome to ExtraCare: 20% off your next visit"
    regular = got(decide_for(cvs, [], "2024-03-01", segment="regular", joined_at=pd.Timestamp("2020-01-01"),
                             channel="email", bought_categories=frozenset({"BEAUTY"}), recent_spend_minor=5000))
    assert regular["carepass_monthly_reward"] == "SEGMENT_NOT_ELIGIBLE"
    assert regular["welcome_coupon"] == "JOIN_DATE_NOT_ELIGIBLE"
    assert "spend_30_get_10" in regular and regular["spend_30_get_10"] is None


def test_completejourney_and_synthetic_challenge_silver_members_near_gold() -> None:
    cj = got(decide_for(example("completejourney"), [("2017-01-10", 3560.0)], "2017-06-01", basket=30.0,
                        channel="mail"))
    assert cj["reach_next_tier"] == "Spend $40 by 1 Jul to reach Gold"
    synth = got(decide_for(example("synthetic"), [("2025-02-01", 650.0)], "2025-06-01", basket=40.0))
    assert synth["reach_next_tier"] == "Spend $50 by 1 Jul to reach Gold"
    assert synth["keep_tier"] == "RETENTION_NOT_DUE"


# -- targeting rules: the offers that depend on the request's context ---------------------

def _rule_outcomes(name: str, member: MemberContext, as_of: str, request: object) -> dict[str, str]:
    """Each offer of example ``name`` with a rule: ELIGIBLE, or its reason (and failing clause)."""
    from models.request_context import RequestContext

    assert request is None or isinstance(request, RequestContext)
    catalog = build_catalog(example(name))
    ids = [o.offer_id for o in catalog.offers if o.rules]
    d = decide(catalog, member, ids, np.full(len(ids), 0.5), as_of=pd.Timestamp(as_of), request=request,
               max_offers=len(ids))
    out = {e.offer_id: e.reason + (f" {d.rule_clauses[e.offer_id]}" if e.offer_id in d.rule_clauses else "")
           for e in d.excluded}
    out.update({o.offer_id: "ELIGIBLE" for o in d.offers})
    return out


def test_starbucks_mobile_order_happy_hour_and_reserve_rules() -> None:
    from models.request_context import RequestContext

    sbux = example("starbucks")
    green = MemberContext("m", tier=state(sbux, visits(10), "2024-08-01"))
    thursday_8am = "2024-08-01 08:30"
    got = _rule_outcomes("starbucks", green, thursday_8am, RequestContext(device="app"))
    assert got["mobile_order_morning"] == "ELIGIBLE"
    assert got["happy_hour"].startswith("RULE_NOT_MET") and "time.hour between 12 and 16" in got["happy_hour"]
    assert got["reserve_double_stars"].startswith("RULE_NOT_MET")
    web = _rule_outcomes("starbucks", green, thursday_8am, RequestContext(device="web"))
    assert web["mobile_order_morning"].endswith("rule.all[0]: context.device == app")
    afternoon = _rule_outcomes("starbucks", green, "2024-08-01 15:00", RequestContext(device="app",
                                                                                      store_id="SEA-ROASTERY"))
    assert afternoon["happy_hour"] == afternoon["reserve_double_stars"] == "ELIGIBLE"
    assert "time.hour between 5 and 9" in afternoon["mobile_order_morning"]
    welcome = MemberContext("w", tier=state(sbux, visits(1), "2024-08-01"))
    assert "member.tier >= Green" in _rule_outcomes("starbucks", welcome, thursday_8am,
                                                    RequestContext(device="app"))["mobile_order_morning"]


def test_tesco_basket_threshold_and_store_rules() -> None:
    from models.request_context import CartLine, RequestContext

    member = MemberContext("m")
    shop = tuple(CartLine(f"p{i}", 1, 700, "GROCERY") for i in range(10))  # £70, 10 items
    got = _rule_outcomes("tesco_clubcard", member, "2024-09-10 18:00",
                         RequestContext(device="handset", store_id="2911", cart_lines=shop))
    assert got["save_5_on_60"] == got["new_store_double_points"] == got["scan_as_you_shop"] == "ELIGIBLE"
    smokes = (*shop, CartLine("cigs", 1, 1200, "TOBACCO"))
    got = _rule_outcomes("tesco_clubcard", member, "2024-10-10 18:00",
                         RequestContext(store_id="2911", cart_lines=smokes))
    assert got["save_5_on_60"].endswith("rule.all[1].not: not (context.cart.categories contains any of "
                                        "[TOBACCO, INFANT FORMULA, LOTTERY])")
    assert "time.date between 2024-09-02 and 2024-09-29" in got["new_store_double_points"]
    assert "context.device in [handset, app]" in got["scan_as_you_shop"]


def test_cvs_kiosk_beauty_coupon_and_pharmacy_rules() -> None:
    from models.request_context import CartLine, RequestContext

    basket = (CartLine("lipstick", 2, 1299, "COSMETICS"),)
    got = _rule_outcomes("cvs_extracare", MemberContext("m", segment="carepass"), "2024-05-02 10:00",
                         RequestContext(device="kiosk", store_id="10431", cart_lines=basket,
                                        custom=(("pharmacy_pickup", True),)))
    assert got["beauty_5_off_25"] == got["pharmacy_pickup_bonus"] == got["store_reopening"] == "ELIGIBLE"
    got = _rule_outcomes("cvs_extracare", MemberContext("m", segment="regular"), "2024-05-02 10:00",
                         RequestContext(device="web", cart_lines=(CartLine("gum", 1, 199, "CANDY"),),
                                        custom=(("pharmacy_pickup", True),)))
    assert got["beauty_5_off_25"].endswith("context.device in [kiosk, app]")
    assert "rule.all[1].any: any(member.segment == carepass or context.cart.total >= 10)" \
        in got["pharmacy_pickup_bonus"]
