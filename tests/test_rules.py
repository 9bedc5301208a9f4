"""Targeting rules as expressions: parsing, validation at load, vectorized evaluation, failing clauses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.catalog import build_catalog
from models.decision import decide, decide_batch
from models.program import ProgramConfigError, parse_program
from models.request_context import CartLine, RequestContext
from tests.decision_helpers import AS_OF, member

#: AS_OF is Saturday 15 June 2024, 12:00 local.
BASE = """\
name: Rules
timezone: America/New_York
tier_policy:
  metric: spend
  window: {type: calendar_year}
tiers:
  - {name: Bronze, threshold: 0}
  - {name: Silver, threshold: 300}
  - {name: Gold, threshold: 700}
targeting:
  attributes: {attr_favourite_store: string, attr_visits_per_week: number, attr_app_user: boolean}
  context: {weather: string, temperature: number, loyalty_screen: boolean}
offers:
"""


def program_with(*rules: str, extra: str = ""):
    """A program whose offers o0, o1... carry ``rules`` (YAML flow mappings)."""
    offers = "".join(f"  - {{id: o{i}, kind: amount_off, title: O{i}, value: 1, rule: {r}}}\n"
                     for i, r in enumerate(rules))
    return parse_program(BASE + offers + extra)


def outcome(prog, members, request=None, as_of=AS_OF):
    """Each member's {offer: reason or ELIGIBLE} and failing clauses."""
    cat = build_catalog(prog)
    ids = [o.offer_id for o in cat.offers]
    out = []
    for d in decide_batch(cat, members, ids, np.full((len(members), len(ids)), 0.5), as_of=as_of, request=request):
        got = {e.offer_id: e.reason for e in d.excluded}
        got.update({o.offer_id: "ELIGIBLE" for o in d.offers})
        out.append((got, d.rule_clauses))
    return out


def verdict(rule: str, mem=None, request=None, as_of=AS_OF) -> str:
    return outcome(program_with(rule), [mem or member()], request, as_of)[0][0]["o0"]


CART = RequestContext(store_id="1234", device="app", location="US-NY",
                      cart_lines=(CartLine("latte", 2, 450, "coffee"), CartLine("muffin", 1, 300, "bakery")),
                      custom=(("weather", "rain"), ("temperature", 12.5), ("loyalty_screen", True)))


@pytest.mark.parametrize(("rule", "expected"), [
    ("{field: context.cart.total, gte: 12}", "ELIGIBLE"),          # 2 x 4.50 + 3.00 = 12.00
    ("{field: context.cart.total, gt: 12}", "RULE_NOT_MET"),
    ("{field: context.cart.total, between: [10, 12]}", "ELIGIBLE"),
    ("{field: context.cart.quantity, eq: 3}", "ELIGIBLE"),
    ("{field: context.cart.lines, lt: 2}", "RULE_NOT_MET"),
    ("{field: context.cart.categories, contains: coffee}", "ELIGIBLE"),
    ("{field: context.cart.categories, contains: [tea, juice]}", "RULE_NOT_MET"),
    ("{field: context.cart.product_ids, contains: [tea, muffin]}", "ELIGIBLE"),
    ("{field: context.store_id, eq: 1234}", "ELIGIBLE"),            # an unquoted id is read as text
    ("{field: context.store_id, in: ['77', '1234']}", "ELIGIBLE"),
    ("{field: context.device, ne: app}", "RULE_NOT_MET"),
    ("{field: context.location, not_in: [US-CA]}", "ELIGIBLE"),
    ("{field: context.weather, eq: rain}", "ELIGIBLE"),
    ("{field: context.temperature, lt: 10}", "RULE_NOT_MET"),
    ("{field: context.loyalty_screen, eq: true}", "ELIGIBLE"),
    ("{field: time.day_of_week, in: [sat, sun]}", "ELIGIBLE"),
    ("{field: time.day_of_week, eq: monday}", "RULE_NOT_MET"),
    ("{field: time.hour, between: [11, 14]}", "ELIGIBLE"),
    ("{field: time.date, gte: 2024-06-16}", "RULE_NOT_MET"),
    ("{field: time.date, eq: 2024-06-15}", "ELIGIBLE"),
    ("{field: time.month, eq: 6}", "ELIGIBLE"),
    ("{field: member.tier, gte: Silver}", "ELIGIBLE"),             # the member below is Silver
    ("{field: member.tier, gt: Silver}", "RULE_NOT_MET"),
    ("{field: member.tier, in: [Bronze, Gold]}", "RULE_NOT_MET"),
    ("{field: member.tier_progress, gte: 0.5}", "ELIGIBLE"),        # 500 of Gold's 700
    ("{field: member.tier_progress, gte: 0.75}", "RULE_NOT_MET"),
    ("{field: member.segment, eq: family}", "ELIGIBLE"),
    ("{field: member.points_balance, gte: 100}", "RULE_NOT_MET"),   # no ledger: missing
    ("{field: member.points_balance, exists: false}", "ELIGIBLE"),
    ("{field: member.recent_spend, gte: 200}", "ELIGIBLE"),          # 20,000 minor units
    ("{field: member.days_since_join, gt: 30}", "ELIGIBLE"),
    ("{field: member.attr_favourite_store, eq: 1234}", "ELIGIBLE"),  # stored as 1234.0 from a CSV
    ("{field: member.attr_visits_per_week, gte: 3}", "ELIGIBLE"),
    ("{field: member.attr_app_user, eq: false}", "RULE_NOT_MET"),
    ("{field: member.plans, contains: plus}", "RULE_NOT_MET"),
    ("{all: [{field: context.device, eq: app}, {field: context.cart.total, gte: 10}]}", "ELIGIBLE"),
    ("{any: [{field: context.device, eq: kiosk}, {field: member.tier, eq: Gold}]}", "RULE_NOT_MET"),
    ("{not: {field: context.device, eq: kiosk}}", "ELIGIBLE"),
    ("{not: {any: [{field: time.hour, lt: 6}, {field: time.hour, gte: 22}]}}", "ELIGIBLE"),
])
def test_each_operator_and_field(rule: str, expected: str) -> None:
    from tests.decision_helpers import tier

    mem = member(rank=1, tier=tier(1, metric=50000), segment="family",
                 joined_at=AS_OF - pd.Timedelta(days=90),
                 attributes=(("attr_favourite_store", 1234.0), ("attr_visits_per_week", 4.0), ("attr_app_user", 1.0)))
    assert verdict(rule, mem, CART) == expected


def test_missing_context_fails_every_comparison_but_not_exists() -> None:
    assert verdict("{field: context.cart.total, gte: 0}") == "RULE_NOT_MET"
    assert verdict("{field: context.device, ne: kiosk}") == "RULE_NOT_MET"
    assert verdict("{field: context.cart.categories, contains: coffee}") == "RULE_NOT_MET"
    assert verdict("{field: context.device, exists: false}") == "ELIGIBLE"
    assert verdict("{not: {field: context.device, eq: kiosk}}") == "ELIGIBLE"


def test_a_batch_is_evaluated_at_once_member_by_member_correctly() -> None:
    prog = program_with("{all: [{field: member.segment, in: [family, student]}, "
                        "{any: [{field: member.attr_visits_per_week, gte: 3}, {field: member.tier, eq: Gold}]}]}")
    members = [member("a", segment="family", attributes=(("attr_visits_per_week", 5.0),)),
               member("b", segment="family"),
               member("c", rank=2, segment="student"),
               member("d", segment=None, rank=2),
               member("e", segment="single", attributes=(("attr_visits_per_week", 9.0),))]
    got = outcome(prog, members)
    assert [g[0]["o0"] for g in got] == ["ELIGIBLE", "RULE_NOT_MET", "ELIGIBLE", "RULE_NOT_MET", "RULE_NOT_MET"]
    # the failing clause: the first false child of `all`, followed down; an `any` names itself
    assert got[1][1] == {"o0": "offers[0].rule.all[1].any: any(member.attr_visits_per_week >= 3 or member.tier == Gold)"}
    assert got[3][1] == {"o0": "offers[0].rule.all[0]: member.segment in [family, student]"}
    assert got[4][1] == got[3][1]
    assert got[0][1] == {}


def test_rules_and_fixed_fields_combine_and_report_in_order() -> None:
    """The fixed fields are checked first (their codes win), then the rule, then caps."""
    prog = parse_program(BASE + """\
  - {id: gold, kind: amount_off, title: G, value: 1, tiers: [Gold], rule: {field: context.device, eq: app}}
  - {id: app, kind: amount_off, title: A, value: 1, rule: {field: context.device, eq: app}}
offer_defaults:
  amount_off:
    rule: {field: time.hour, lt: 20}
""")
    got, clauses = outcome(prog, [member()], RequestContext(device="web"))[0]
    assert got == {"gold": "TIER_NOT_ELIGIBLE", "app": "RULE_NOT_MET"}
    assert clauses == {"app": "offers[1].rule: context.device == app"}
    late = AS_OF.replace(hour=21)
    got, clauses = outcome(prog, [member()], RequestContext(device="app"), as_of=late)[0]
    assert got["app"] == "RULE_NOT_MET"
    assert clauses == {"app": "offer_defaults.amount_off.rule: time.hour < 20"}


def test_contract_offers_share_their_kinds_rule_and_it_is_evaluated_once() -> None:
    prog = parse_program(BASE + "  []\n" + """\
offer_defaults:
  percent_off:
    rule: {all: [{field: context.cart.total, gte: 20}, {field: context.store_id, in: ['12', '13']}]}
""")
    n = 300
    table = pd.DataFrame({"offer_id": [f"c{i}" for i in range(n)], "campaign_id": "c", "title": "t",
                          "kind": ["percent_off" if i % 2 else "amount_off" for i in range(n)], "value": 10.0,
                          "starts_at": AS_OF - pd.Timedelta(days=1), "ends_at": AS_OF + pd.Timedelta(days=1)})
    cat = build_catalog(prog, table)
    assert len(cat.rules.shapes) == 1 and len(cat.rules.tests) == 2
    ids = [o.offer_id for o in cat.offers]
    d = decide(cat, member(), ids, np.full(n, 0.5), as_of=AS_OF, max_offers=n,
               request=RequestContext(store_id="12", cart_total_minor=1999))
    reasons = {e.offer_id: e.reason for e in d.excluded}
    assert {reasons.get(f"c{i}") for i in range(1, n, 2)} == {"RULE_NOT_MET"}
    assert not any(f"c{i}" in reasons for i in range(0, n, 2))
    assert d.rule_clauses["c1"] == "offer_defaults.percent_off.rule.all[0]: context.cart.total >= 20"


def test_promotion_rules_gate_the_tier_mechanics() -> None:
    prog = parse_program(BASE + """\
  - {id: reach_gold, kind: tier_challenge, title: Reach Gold}
promotions:
  upgrade_challenge:
    reach_multiple: 100
    rule: {field: context.device, eq: app}
""")
    got, clauses = outcome(prog, [member()], RequestContext(device="web"))[0]
    assert got["reach_gold"] == "RULE_NOT_MET"
    assert clauses == {"reach_gold": "promotions.upgrade_challenge.rule: context.device == app"}
    assert outcome(prog, [member()], RequestContext(device="app"))[0][0]["reach_gold"] == "ELIGIBLE"


def test_passed_rule_is_a_reason() -> None:
    prog = program_with("{field: context.device, eq: app}")
    cat = build_catalog(prog)
    d = decide(cat, member(), ["o0"], [0.5], as_of=AS_OF, request=RequestContext(device="app"))
    assert "ELIGIBLE_RULE" in d.offers[0].reasons


@pytest.mark.parametrize(("rule", "path", "message"), [
    ("{field: member.shoe_size, gt: 3}", "offers[0].rule.field", "unknown field 'member.shoe_size'"),
    ("{field: member.attr_shoe_size, gt: 3}", "offers[0].rule.field", "declare it under targeting.attributes"),
    ("{field: context.basket_id, eq: x}", "offers[0].rule.field", "declare it under targeting.context"),
    ("{field: context.cart.total, above: 3}", "offers[0].rule.above", "unknown operator 'above'"),
    ("{field: context.device, gt: app}", "offers[0].rule.gt", "operator 'gt' does not apply to context.device"),
    ("{field: context.cart.total, gte: twenty}", "offers[0].rule.gte", "expected a number"),
    ("{field: member.tier, eq: Diamond}", "offers[0].rule.eq", "expected a tier name"),
    ("{field: time.day_of_week, in: [sat, funday]}", "offers[0].rule.in[1]", "expected a day of the week"),
    ("{field: time.hour, between: [20, 6]}", "offers[0].rule.between", "low (20) is above its high (6)"),
    ("{field: time.date, gte: '2024-13-01'}", "offers[0].rule.gte", "expected a date"),
    ("{field: context.loyalty_screen, eq: 1}", "offers[0].rule.eq", "expected true or false"),
    ("{all: []}", "offers[0].rule.all", "'all' takes a non-empty list of rules"),
    ("{any: {field: time.hour, gt: 3}}", "offers[0].rule.any", "'any' takes a non-empty list of rules"),
    ("{all: [{field: time.hour, gt: 3}, {not: []}]}", "offers[0].rule.all[1].not", "a rule is a mapping"),
    ("{all: [{field: time.hour}]}", "offers[0].rule.all[0]", "exactly one operator"),
    ("{field: time.hour, gt: 3, lt: 5}", "offers[0].rule", "exactly one operator, not gt, lt"),
    ("{all: [{field: time.hour, gt: 3}], field: time.hour}", "offers[0].rule", "'all' must be alone"),
    ("{eq: 3}", "offers[0].rule.field", "a comparison needs field"),
])
def test_malformed_rules_are_refused_at_load_with_path_and_reason(rule: str, path: str, message: str) -> None:
    with pytest.raises(ProgramConfigError) as info:
        program_with(rule)
    issues = info.value.issues
    assert issues[0][0] == path and message in issues[0][2], issues
    assert issues[0][1] == 14  # the offer's line


def test_rules_in_offer_defaults_promotions_and_declarations_are_checked() -> None:
    with pytest.raises(ProgramConfigError) as info:
        parse_program(BASE.replace("attr_app_user: boolean", "appuser: boolean")
                      .replace("weather: string", "cart: string") + "  []\n" + """\
offer_defaults:
  amount_off:
    rule: {field: context.cart.total, gte: -}
promotions:
  retention_nudge:
    rule: {not: {}}
""")
    got = {(path, msg.split(";")[0].split(",")[0]) for path, _, msg in info.value.issues}
    assert ("targeting.attributes.appuser", "an attribute column is named attr_ followed by lower-case letters") in got
    assert ("targeting.context.cart", "'cart' is a built-in context key") in got
    assert ("offer_defaults.amount_off.rule.gte", "expected a number (major money units)") in got
    assert ("promotions.retention_nudge.rule.not", "a rule is a mapping: all") in got


def test_money_literals_are_major_units() -> None:
    prog = program_with("{field: context.cart.total, gte: 20.5}")
    assert build_catalog(prog).rules.tests[0].value == 2050.0
    assert verdict("{field: context.cart.total, gte: 20.5}", request=RequestContext(cart_total_minor=2050)) \
        == "ELIGIBLE"
    assert verdict("{field: context.cart.total, gte: 20.5}", request=RequestContext(cart_total_minor=2049)) \
        == "RULE_NOT_MET"
