"""The seed programs end to end (issue 16, section 6): examples/programs/ Starbucks-, MAC-Select-,
Tesco- and CVS-like, each with its own earning scheme, through the real service on Redis.

Each test writes a small contract data directory whose members' past purchases put them in
known tiers, starts the service on the example program with a fixed clock, materializes the
members into Redis, then sends transaction events with explicit timestamps, asks for
decisions, redeems points and checks balances, tiers and offers against figures computed by
hand in the comments. Nothing depends on today's date.

No model is registered, so decisions use the cold-start fallback; every assertion is about
eligibility, tiers and the ledger, never about a ranking the model would choose.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from flask import Flask

from runtime.decisions.materialize import load_members, materialize
from service.app import create_app
from service.state import ServiceState
from tests.decisions_env import close_app
from tests.factory import write_tiny
from tests.service_helpers import ALL_KEYS, DECISIONS_KEY, EVENTS_KEY, make_settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "programs"
EVENTS = {"X-API-Key": EVENTS_KEY}
READ = {"X-API-Key": DECISIONS_KEY}

pytestmark = pytest.mark.redis


# -- a small contract data directory per program -------------------------------------------------
def _data(path: Path, members: list[dict[str, Any]], products: dict[str, str],
          purchases: list[tuple[str, str, str, int]]) -> Path:
    """A valid data directory: ``members`` (member_id, joined_at, birth_month, segment),
    ``products`` (id -> category) and ``purchases`` (member, local time, product, cents),
    one basket per purchase. The offers tables are empty: the program's own offers are tested."""
    ts = pd.Timestamp
    tables = {
        "members": pd.DataFrame({
            "member_id": [m["member_id"] for m in members],
            "joined_at": [ts(m["joined_at"]) if m.get("joined_at") else pd.NaT for m in members],
            "birth_month": pd.array([m.get("birth_month") for m in members], dtype="Int64"),
            "segment": [m.get("segment") for m in members],
        }),
        "products": pd.DataFrame({
            "product_id": list(products),
            "department": ["STORE"] * len(products),
            "category": list(products.values()),
            "brand": ["National"] * len(products),
        }),
        "transactions": pd.DataFrame({
            "member_id": [p[0] for p in purchases],
            "purchased_at": [ts(p[1]) for p in purchases],
            "basket_id": [f"h{i}" for i in range(len(purchases))],
            "product_id": [p[2] for p in purchases],
            "quantity": [1] * len(purchases),
            "amount_minor": [p[3] for p in purchases],
            "discount_minor": [0] * len(purchases),
            "coupon_discount_minor": [0] * len(purchases),
        }),
        "offers": pd.DataFrame({
            "offer_id": pd.Series([], dtype=str), "campaign_id": pd.Series([], dtype=str),
            "kind": pd.Series([], dtype=str), "starts_at": pd.Series([], dtype="datetime64[ns]"),
            "ends_at": pd.Series([], dtype="datetime64[ns]"), "title": pd.Series([], dtype=str),
            "value": pd.Series([], dtype=float), "channels": pd.Series([], dtype=str)}),
        "offer_products": pd.DataFrame({"offer_id": pd.Series([], dtype=str),
                                        "product_id": pd.Series([], dtype=str)}),
        "exposures": pd.DataFrame({
            "exposure_id": pd.Series([], dtype=str), "member_id": pd.Series([], dtype=str),
            "offer_id": pd.Series([], dtype=str), "exposed_at": pd.Series([], dtype="datetime64[ns]"),
            "channel": pd.Series([], dtype=str)}),
        "redemptions": pd.DataFrame({
            "redemption_id": pd.Series([], dtype=str), "member_id": pd.Series([], dtype=str),
            "offer_id": pd.Series([], dtype=str), "redeemed_at": pd.Series([], dtype="datetime64[ns]")}),
    }
    return write_tiny(path, tables)


def _app(tmp_path: Path, data: Path, program: str, redis_url: str, clock: str, prefix: str,
         fresh: bool = True) -> Flask:
    """The service on ``data`` with examples/programs/<program>.yaml; ``fresh``: its members
    materialized (a later app on the same prefix keeps what the first one stored instead)."""
    app = create_app(make_settings(tmp_path, api_keys=ALL_KEYS, clock=clock, redis_url=redis_url, data=data,
                                   program=EXAMPLES / f"{program}.yaml", redis_prefix=prefix,
                                   redis_timeout_ms=5000, redis_connect_timeout_ms=5000))
    state: ServiceState = app.extensions["offers"]
    assert state.decisions is not None and state.decisions.wait(60)
    assert state.points is not None and state.decisions.setup is not None, state.decisions.error
    if fresh:
        hist, profiles = load_members(state.decisions.setup, data)
        materialize(state.store, state.decisions.setup, hist, profiles)
    return app


def _prefix() -> str:
    return "pp" + uuid.uuid4().hex[:8]


class Client:
    """The calls a program's tests make, each checked for success unless told otherwise."""

    def __init__(self, app: Flask):
        self.app = app
        self.http = app.test_client()

    def send(self, *events: dict[str, Any]) -> None:
        resp = self.http.post("/v1/events", json=list(events), headers=EVENTS)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.get_json()["accepted"] == len(events), resp.get_json()

    def decide(self, member: str, channel: str = "app") -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """(member json, returned offers by id, excluded offer id -> reason)."""
        resp = self.http.post("/v1/decisions", json={"member_id": member, "channel": channel, "n": 10},
                              headers=READ)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        return (body["member"], {o["offer_id"]: o for o in body["offers"]},
                {e["offer_id"]: e["reason"] for e in body["excluded"]})

    def points(self, member: str) -> dict[str, Any]:
        resp = self.http.get(f"/v1/members/{member}/points?entries=20", headers=READ)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body: dict[str, Any] = resp.get_json()
        return body

    def redeem(self, member: str, reward: str, key: str, status: int = 200) -> dict[str, Any]:
        resp = self.http.post(f"/v1/members/{member}/points/redeem", json={"reward_id": reward, "channel": "app"},
                              headers={**EVENTS, "Idempotency-Key": key})
        assert resp.status_code == status, resp.get_data(as_text=True)
        body: dict[str, Any] = resp.get_json()
        return body


def tx(event_id: str, member: str, ts: str, cents: int, product: str, basket: str | None = None,
       **extra: Any) -> dict[str, Any]:
    """One purchase line (a transaction event); ``ts`` is RFC 3339 with its offset."""
    out = {"event_id": event_id, "member_id": member, "type": "transaction", "ts": ts, "amount_minor": cents,
           "product_id": product, **extra}
    if basket is not None:
        out["basket_id"] = basket
    return out


def epoch(local: str, zone: str) -> int:
    """Epoch seconds of a local wall time in ``zone``."""
    return int(datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).timestamp())


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    """Apps a test started, closed whatever happens."""
    started: list[Flask] = []
    yield started
    for app in started:
        close_app(app)


# -- Starbucks-like: a star per visit, Gold at 30 stars in 12 months, 12 stars buy a drink ---------
# Tuesday 6 Aug 2024, 12:00 in Seattle (PDT, UTC-7)
SBUX_CLOCK = "2024-08-06T12:00:00-07:00"


def _sbux_data(path: Path) -> Path:
    weekly = [str(pd.Timestamp("2024-01-02 08:00") + pd.Timedelta(days=7 * i)) for i in range(30)]
    purchases = [("sb_gold", t, "latte", 495) for t in weekly]            # 30 visits: Gold
    purchases += [("sb_green", t, "latte", 495) for t in weekly[:10]]     # 10 visits: Green
    purchases += [("sb_new", "2024-07-30 08:00", "muffin", 325)]          # 1 visit: Welcome
    members = [{"member_id": "sb_gold", "joined_at": "2023-05-01", "birth_month": 1},
               {"member_id": "sb_green", "joined_at": "2023-05-01", "birth_month": 8},
               {"member_id": "sb_new", "joined_at": "2024-07-30", "birth_month": 3}]
    return _data(path, members, {"latte": "ESPRESSO", "muffin": "BAKERY"}, purchases)


def test_starbucks_stars_per_visit_double_star_day_free_drink(tmp_path: Path, redis_url: str,
                                                              apps: list[Flask]) -> None:
    app = _app(tmp_path, _sbux_data(tmp_path / "data"), "starbucks", redis_url, SBUX_CLOCK, _prefix())
    apps.append(app)
    c = Client(app)
    # tiers from the history: 30 visits in 12 months is Gold, 10 Green, 1 Welcome; no stars yet
    # (the ledger starts empty: history before the ledger earned nothing)
    gold, offers, excluded = c.decide("sb_gold")
    assert (gold["tier"], gold["metric"], gold["points_balance"]) == ("Gold", 30, 0)
    assert offers["double_star_day"]["text"] == "Gold members earn double stars on every purchase today"
    assert excluded["free_drink_reward"] == "POINTS_INSUFFICIENT"  # 0 stars, 9 needed for the nudge
    assert excluded["keep_gold"] == "RETENTION_NOT_DUE"           # Gold holds until 1 Jan 2025
    green, offers, excluded = c.decide("sb_green")
    assert (green["tier"], green["metric"], green["delta_to_next"]) == ("Green", 10, 20)
    assert excluded["double_star_day"] == "TIER_NOT_ELIGIBLE"
    assert excluded["reach_next_level"] == "CHALLENGE_OUT_OF_REACH"  # 20 visits away, more than 4
    assert "birthday_drink" in offers                              # born in August
    new, _, excluded = c.decide("sb_new")
    assert (new["tier"], new["metric"]) == ("Welcome", 1)
    assert excluded["double_star_day"] == "TIER_NOT_ELIGIBLE" and excluded["birthday_drink"] == "TIER_NOT_ELIGIBLE"

    # sb_gold was issued the Double-Star Day offer by that decision (at the clock, 12:00 PDT).
    # A visit is a distinct purchase time (a basket's lines share theirs), whatever its lines and amount:
    #   basket g1 at 08:00 (before the offer reached them), 2 lines: 1 visit x 1 star      = 1
    #   basket g2 at 12:30, 2 lines: 1 visit x 1 star x 2 (Double-Star Day)              = 2
    #   g3 at 13:00, one line without a basket (a basket of its own): 1 x 2              = 2
    c.send(tx("g1-1", "sb_gold", "2024-08-06T08:00:00-07:00", 495, "latte", "g1"),
           tx("g1-2", "sb_gold", "2024-08-06T08:00:00-07:00", 325, "muffin", "g1"),
           tx("g2-1", "sb_gold", "2024-08-06T12:30:00-07:00", 495, "latte", "g2"),
           tx("g2-2", "sb_gold", "2024-08-06T12:30:00-07:00", 2_000, "muffin", "g2"),
           tx("g3", "sb_gold", "2024-08-06T13:00:00-07:00", 210, "latte"))
    view = c.points("sb_gold")
    assert view["balance"] == 5 and view["pending"] == 0
    earns = {e["m"]["basket_id"] or e["m"]["event_id"]: e["points"] for e in view["entries"] if e["kind"] == "earn"}
    assert earns == {"g1": 1, "g2": 2, "g3": 2}  # one entry per visit (its cause: visit:<time>)
    # stars earned on 6 Aug expire six months later, on 6 Feb 2025: nothing expires within 30 days
    assert view["expiring_soon"] == []
    _, offers, excluded = c.decide("sb_gold")
    assert excluded["free_drink_reward"] == "POINTS_INSUFFICIENT"  # 5 < 12 - 3
    # two more doubled visits: 5 + 2 x 2 = 9 stars, 3 short of the drink: the nudge
    c.send(tx("g4", "sb_gold", "2024-08-06T13:30:00-07:00", 495, "latte"),
           tx("g5", "sb_gold", "2024-08-06T14:00:00-07:00", 495, "latte"))
    gold, offers, _ = c.decide("sb_gold")
    assert gold["points_balance"] == 9
    nudge = offers["free_drink_reward"]
    assert "POINTS_NUDGE:3" in nudge["reasons"] and nudge["text"] == "A free drink for 12 stars (you have 9)"
    # the next morning (still before the clock + 24 h): 9 + 2 x 2 = 13 stars
    # the Double-Star Day offer applies for 24 hours after it reached the member (valid_days: 1),
    # so g7 at 09:00 on 7 Aug, within them, is doubled too
    c.send(tx("g6", "sb_gold", "2024-08-06T15:00:00-07:00", 495, "latte"),
           tx("g7", "sb_gold", "2024-08-07T09:00:00-07:00", 495, "latte"))
    gold, offers, _ = c.decide("sb_gold")
    assert gold["points_balance"] == 13 and "POINTS_BALANCE:13" in offers["free_drink_reward"]["reasons"]
    # 12 stars buy the drink: 13 - 12 = 1; the same key replays, a new one is refused (1 < 12)
    first = c.redeem("sb_gold", "free_drink", "sb-k1")
    assert (first["status"], first["balance"], first["entry"]["points"]) == ("redeemed", 1, -12)
    assert c.redeem("sb_gold", "free_drink", "sb-k1") == first
    refused = c.redeem("sb_gold", "free_drink", "sb-k2", status=409)
    assert (refused["balance"], refused["needed"]) == (1, 12)
    assert c.points("sb_gold")["balance"] == 1

    # sb_green: 12 visits on 20 Feb 2024 from 10:00 (each its own basket; the history's 20 Feb
    # visit was at 08:00, a visit being a distinct purchase time) and one on 5 Aug.
    # Stars earned on 20 Feb expire on 20 Aug (local midnight): 12 stars within 30 days.
    feb = [tx(f"f{i}", "sb_green", f"2024-02-20T{10 + i // 2:02d}:{30 * (i % 2):02d}:00-08:00", 395, "latte")
           for i in range(12)]
    c.send(*feb, tx("a1", "sb_green", "2024-08-05T08:00:00-07:00", 395, "latte"))
    green, offers, excluded = c.decide("sb_green")
    # 10 visits in the history + 13 sent = 23 stars in 12 months: still Green, 7 from Gold
    assert (green["tier"], green["metric"], green["delta_to_next"]) == ("Green", 23, 7)
    assert green["points_balance"] == 13
    assert offers["stars_expiring"]["text"] == "12 stars expire on 20 Aug: 12 of them buy a free drink"
    assert excluded["free_drink_reward"] == "TIER_NOT_ELIGIBLE"  # the free-drink offer is for Gold
    view = c.points("sb_green")
    assert view["expiring_soon"] == [{"points": 12, "expires_at": epoch("2024-08-20T00:00", "America/Los_Angeles")}]
    # sb_new: one visit, one star
    c.send(tx("n1", "sb_new", "2024-08-06T07:45:00-07:00", 325, "muffin"))
    assert c.points("sb_new")["balance"] == 1
    # a visit is a distinct purchase time, for the ledger as for the tier engine: one basket whose
    # two lines are stamped five minutes apart is two visits, two more stars
    c.send(tx("n2-1", "sb_new", "2024-08-06T08:00:00-07:00", 325, "muffin", "n2"),
           tx("n2-2", "sb_new", "2024-08-06T08:05:00-07:00", 250, "latte", "n2"),
           tx("n2-3", "sb_new", "2024-08-06T08:05:00-07:00", 100, "cookie", "n2"))  # same time: same visit
    new, _, _ = c.decide("sb_new")
    assert (new["tier"], new["points_balance"]) == ("Welcome", 3)
    # the tier metric counts the same visits: 1 in the history + n1 + 08:00 + 08:05 = 4
    assert new["metric"] == 4
    app.extensions["offers"].close()  # keep its Redis keys for the next app
    apps.remove(app)

    # 21 Aug, the same Redis: sb_green's February stars are gone, as an expire entry; the rest stay
    later = _app(tmp_path / "later", tmp_path / "data", "starbucks", redis_url, "2024-08-21T12:00:00-07:00",
                 app.extensions["offers"].settings.redis_prefix, fresh=False)
    apps.append(later)
    view = Client(later).points("sb_green")
    assert view["balance"] == 1 and view["lifetime"]["expired"] == 12
    assert view["entries"][0]["kind"] == "expire" and view["entries"][0]["points"] == -12
    assert Client(later).points("sb_gold")["balance"] == 1


# -- MAC-Select-like: calendar-year spend tiers, 1 point per dollar (x1.25 Obsessed), 100 buy $5 ---
# Friday 15 Nov 2024, 12:00 in New York (EST, UTC-5)
MAC_CLOCK = "2024-11-15T12:00:00-05:00"


def _mac_data(path: Path) -> Path:
    purchases = [("mac_devoted", "2024-03-01 14:00", "foundation", 48_000),  # $480 this year: Devoted
                 ("mac_obsessed", "2024-02-01 14:00", "foundation", 52_000),  # $520: Obsessed
                 ("mac_select", "2024-03-01 14:00", "lipstick", 12_000)]      # $120: Select
    members = [{"member_id": "mac_devoted", "joined_at": "2022-01-10", "birth_month": 6},
               {"member_id": "mac_obsessed", "joined_at": "2021-05-01", "birth_month": 2},
               {"member_id": "mac_select", "joined_at": "2023-09-01", "birth_month": 11}]
    return _data(path, members, {"lipstick": "LIPSTICK", "foundation": "FOUNDATION"}, purchases)


def test_mac_select_tier_rates_reward_voucher_and_refund(tmp_path: Path, redis_url: str,
                                                         apps: list[Flask]) -> None:
    app = _app(tmp_path, _mac_data(tmp_path / "data"), "mac_select", redis_url, MAC_CLOCK, _prefix())
    apps.append(app)
    c = Client(app)
    devoted, offers, excluded = c.decide("mac_devoted")
    # $480 in 2024: Devoted, $20 (2,000 cents) from Obsessed
    assert (devoted["tier"], devoted["metric"], devoted["delta_to_next"]) == ("Devoted", 48_000, 2_000)
    assert "early_access_launch" in offers
    assert excluded["reward_ready"] == "POINTS_INSUFFICIENT"
    assert excluded["mac_reward"] == "SEGMENT_NOT_ELIGIBLE"  # only ever issued by redeeming points
    obsessed, _, _ = c.decide("mac_obsessed")
    assert obsessed["tier"] == "Obsessed"
    select, offers, excluded = c.decide("mac_select")
    assert select["tier"] == "Select" and excluded["early_access_launch"] == "TIER_NOT_ELIGIBLE"
    assert offers["birthday_gift"]["text"] == "Happy birthday! Your $5 birthday reward is waiting"

    # mac_obsessed earns 1.25 points a dollar:
    #   $24.00 lipstick: 24 x 1.25 = 30; $39.99 foundation: 39.99 x 1.25 = 49.9875
    #   = 79.9875: balance 79, the 0.9875 kept as the member's fraction
    c.send(tx("o1", "mac_obsessed", "2024-11-14T10:00:00-05:00", 2_400, "lipstick", "ob1"),
           tx("o2", "mac_obsessed", "2024-11-14T10:00:00-05:00", 3_999, "foundation", "ob1"))
    view = c.points("mac_obsessed")
    assert (view["balance"], view["fraction"]) == (79, 0.9875)
    earn = next(e for e in view["entries"] if e["cause"] == "earn:o1")
    assert earn["m"]["tier"] == "Obsessed" and earn["points"] == 30
    assert earn["x"] == epoch("2025-11-14T00:00", "America/New_York")  # 12 months after the day earned
    # half the lipstick comes back: half of its 30 points, 79.9875 - 15 = 64.9875
    c.send(tx("o1-r", "mac_obsessed", "2024-11-15T09:00:00-05:00", 1_200, "lipstick", refund_of="o1"))
    view = c.points("mac_obsessed")
    assert (view["balance"], view["lifetime"]["reversed"]) == (64, 15)

    # mac_devoted: $40 while Devoted earns 40 x 1 = 40, and takes the year to $520: Obsessed,
    # so the next $60 earns 60 x 1.25 = 75; balance 115
    c.send(tx("d1", "mac_devoted", "2024-11-14T10:00:00-05:00", 4_000, "foundation"))
    devoted, _, _ = c.decide("mac_devoted")
    assert (devoted["tier"], devoted["metric"], devoted["since"]) == ("Obsessed", 52_000, "2024-11-14T10:00:00-05:00")
    c.send(tx("d2", "mac_devoted", "2024-11-15T09:00:00-05:00", 6_000, "lipstick"))
    view = c.points("mac_devoted")
    assert view["balance"] == 115
    assert {e["cause"]: (e["m"]["tier"], e["points"]) for e in view["entries"]} == {
        "earn:d1": ("Devoted", 40), "earn:d2": ("Obsessed", 75)}
    devoted, offers, _ = c.decide("mac_devoted")
    ready = offers["reward_ready"]
    assert "POINTS_BALANCE:115" in ready["reasons"]
    assert ready["text"] == "You have 115 points: 100 of them make a $5 reward"
    # 100 points buy the $5 reward: a coupon of mac_reward, 15 points left
    voucher = c.redeem("mac_devoted", "five_dollar_reward", "mac-k1")
    assert voucher["balance"] == 15 and voucher["coupon"]["offer_id"] == "mac_reward"
    assert voucher["entry"]["points"] == -100
    # the coupon is redeemed at the till like any other; the points were burned once, at the redemption
    till = c.http.post(f"/v1/coupons/{voucher['coupon']['code']}/redeem", headers=EVENTS,
                       json={"member_id": "mac_devoted", "offer_id": "mac_reward", "channel": "pos"})
    assert till.status_code == 200 and till.get_json()["status"] == "redeemed", till.get_data(as_text=True)
    devoted, offers, excluded = c.decide("mac_devoted")
    assert devoted["points_balance"] == 15 and excluded["reward_ready"] == "POINTS_INSUFFICIENT"  # 15 < 80
    assert excluded["mac_reward"] == "SEGMENT_NOT_ELIGIBLE"

    # mac_select: $85 at 1 point a dollar = 85 points, 15 short of 100 (within the nudge of 20),
    # and $120 + $85 = $205 this year: Devoted from that purchase on
    c.send(tx("s1", "mac_select", "2024-11-14T16:00:00-05:00", 8_500, "lipstick"))
    select, offers, _ = c.decide("mac_select")
    assert (select["tier"], select["points_balance"]) == ("Devoted", 85)
    assert "POINTS_NUDGE:15" in offers["reward_ready"]["reasons"]
    assert "early_access_launch" in offers


# -- Tesco-Clubcard-like: 1 point per pound (1 per £2 on fuel), 150 points make a £1.50 voucher ----
# Tuesday 5 Mar 2024, 12:00 in London (GMT)
TESCO_CLOCK = "2024-03-05T12:00:00+00:00"


def _tesco_data(path: Path) -> Path:
    purchases = [("tesco_a", "2024-02-10 10:00", "tea", 4_500),      # £45 of tea: a £40 shopper, a tea buyer
                 ("tesco_b", "2024-02-12 10:00", "coffee", 2_000)]   # £20 of coffee
    members = [{"member_id": "tesco_a", "joined_at": "2019-01-01", "birth_month": 7},
               {"member_id": "tesco_b", "joined_at": "2020-06-01", "birth_month": 9}]
    return _data(path, members, {"tea": "TEA", "coffee": "COFFEE", "fuel": "FUEL"}, purchases)


def test_tesco_points_per_pound_fuel_bonus_voucher_and_calendar_expiry(tmp_path: Path, redis_url: str,
                                                                     apps: list[Flask]) -> None:
    app = _app(tmp_path, _tesco_data(tmp_path / "data"), "tesco_clubcard", redis_url, TESCO_CLOCK, _prefix())
    apps.append(app)
    c = Client(app)
    member, offers, excluded = c.decide("tesco_a")
    assert (member["tier"], member["points_balance"]) == ("Clubcard", 0)
    # the bonus-points offer goes to a £40 shopper; the decision issues it at the clock (12:00)
    assert "double_up_vouchers" in offers and "brand_x_tea" in offers
    assert excluded["vouchers_ready"] == "POINTS_INSUFFICIENT"
    assert excluded["clubcard_voucher"] == "SEGMENT_NOT_ELIGIBLE"  # only ever issued by redeeming points
    _, offers, excluded = c.decide("tesco_b")
    assert excluded["double_up_vouchers"] == "MIN_SPEND_NOT_MET" and "brand_switch_coffee" in offers

    # after the issue: £2.34 of tea = 2.34 points, and the offer's 100 bonus points, once per issue
    # NOTE (limitation, see the report): the offer says "on a £40 shop", but a bonus-points offer
    # is fulfilled by any purchase after its issue; this £2.34 basket earns the 100
    c.send(tx("t1", "tesco_a", "2024-03-05T12:30:00+00:00", 234, "tea"))
    # then £30 of fuel at half rate (30 x 0.5 = 15) and £10 of tea (10), no second bonus
    c.send(tx("t2", "tesco_a", "2024-03-05T13:00:00+00:00", 3_000, "fuel"),
           tx("t3", "tesco_a", "2024-03-05T13:30:00+00:00", 1_000, "tea"))
    view = c.points("tesco_a")
    # 2.34 + 100 + 15 + 10 = 127.34
    assert (view["balance"], view["fraction"]) == (127, 0.34)
    units = {e["cause"]: e["units"] for e in view["entries"]}
    bonus = f"bonus:double_up_vouchers:{epoch('2024-03-05T12:00', 'Europe/London')}"
    assert units == {"earn:t1": 23_400, bonus: 1_000_000, "earn:t2": 150_000, "earn:t3": 100_000}
    fuel = next(e for e in view["entries"] if e["cause"] == "earn:t2")
    assert fuel["m"]["rule"] == "base+fuel_half_rate"
    # points earned in 2024 lapse at the end of 2026
    assert fuel["x"] == epoch("2027-01-01T00:00", "Europe/London") and view["expiring_soon"] == []
    _, offers, _ = c.decide("tesco_a")
    ready = offers["vouchers_ready"]  # 150 - 127 = 23 short, within the nudge of 25
    assert "POINTS_NUDGE:23" in ready["reasons"]
    assert ready["text"] == "You have 127 points: 150 make a £1.50 voucher, or £4.50 with a Reward Partner"
    c.send(tx("t4", "tesco_a", "2024-03-05T14:00:00+00:00", 2_500, "tea"))  # + 25 = 152.34
    member, offers, _ = c.decide("tesco_a")
    assert member["points_balance"] == 152 and "POINTS_BALANCE:152" in offers["vouchers_ready"]["reasons"]
    voucher = c.redeem("tesco_a", "voucher_150", "tesco-k1")
    assert voucher["balance"] == 2 and voucher["coupon"]["offer_id"] == "clubcard_voucher"
    refused = c.redeem("tesco_a", "reward_partner_150", "tesco-k2", status=409)
    assert (refused["balance"], refused["needed"]) == (2, 150)

    # calendar expiry for tesco_b, two years after the end of the earning year:
    #   £50 on 31 Dec 2021 expires at the end of 2023: already gone at the clock (earned, then expired)
    #   £20 on 1 Jan 2022 expires at the end of 2024: 20
    #   £8 today expires at the end of 2026: 8                                    balance 28
    c.send(tx("b1", "tesco_b", "2021-12-31T10:00:00+00:00", 5_000, "coffee"),
           tx("b2", "tesco_b", "2022-01-01T10:00:00+00:00", 2_000, "coffee"),
           tx("b3", "tesco_b", "2024-03-05T09:00:00+00:00", 800, "coffee"))
    view = c.points("tesco_b")
    assert view["balance"] == 28
    assert (view["lifetime"]["earned"], view["lifetime"]["expired"]) == (78, 50)
    assert {e["cause"]: e["x"] for e in view["entries"] if e["kind"] == "earn"} == {
        "earn:b1": epoch("2024-01-01T00:00", "Europe/London"), "earn:b2": epoch("2025-01-01T00:00", "Europe/London"),
        "earn:b3": epoch("2027-01-01T00:00", "Europe/London")}


# -- CVS-ExtraCare-like: 2 points per dollar (12 on beauty), $3 birthday, 100 make $1 ExtraBucks ---
# Tuesday 14 May 2024, 12:00 in New York (EDT, UTC-4)
CVS_CLOCK = "2024-05-14T12:00:00-04:00"


def _cvs_data(path: Path) -> Path:
    purchases = [("cvs_bday", "2024-04-20 10:00", "lipstick", 3_500),      # $35 of beauty
                 ("cvs_carepass", "2024-05-02 10:00", "vitamins", 1_200)]  # $12 of vitamins
    members = [{"member_id": "cvs_bday", "joined_at": "2020-01-01", "birth_month": 5, "segment": "regular"},
               {"member_id": "cvs_carepass", "joined_at": "2024-05-01", "birth_month": 9, "segment": "carepass"}]
    return _data(path, members, {"lipstick": "BEAUTY", "vitamins": "HEALTH"}, purchases)


def test_cvs_two_percent_beauty_club_birthday_and_extrabucks(tmp_path: Path, redis_url: str,
                                                             apps: list[Flask]) -> None:
    app = _app(tmp_path, _cvs_data(tmp_path / "data"), "cvs_extracare", redis_url, CVS_CLOCK, _prefix())
    apps.append(app)
    c = Client(app)
    member, offers, excluded = c.decide("cvs_bday")
    assert (member["tier"], member["points_balance"]) == ("ExtraCare", 0)  # the birthday is granted at
    assert excluded["extrabucks_ready"] == "POINTS_INSUFFICIENT"           # the first ledger operation
    assert excluded["carepass_monthly_reward"] == "SEGMENT_NOT_ELIGIBLE"
    assert excluded["welcome_coupon"] == "JOIN_DATE_NOT_ELIGIBLE"
    assert excluded["extrabucks_reward"] == "SEGMENT_NOT_ELIGIBLE"  # only ever issued by redeeming points
    assert "spend_30_get_10" in offers                               # a beauty buyer with $35 spent
    # born in May: the $3 birthday reward, 300 points, once this year
    view = c.points("cvs_bday")
    assert view["balance"] == 300 and [e["cause"] for e in view["entries"]] == ["birthday:2024"]

    #   $25.00 of beauty: 25 x 2 x 6 (Beauty Club) = 300;  $10.50 of vitamins: 10.50 x 2 = 21
    c.send(tx("c1", "cvs_bday", "2024-05-14T09:00:00-04:00", 2_500, "lipstick", "cb1"),
           tx("c2", "cvs_bday", "2024-05-14T09:00:00-04:00", 1_050, "vitamins", "cb1"))
    view = c.points("cvs_bday")
    assert view["balance"] == 300 + 300 + 21
    rules = {e["cause"]: (e["m"].get("rule"), e["points"]) for e in view["entries"]}
    assert rules["earn:c1"] == ("base+beauty_club", 300) and rules["earn:c2"] == ("base", 21)
    # $10 of the lipstick comes back: 10 / 25 of its 300 points = 120; 621 - 120 = 501
    c.send(tx("c1-r", "cvs_bday", "2024-05-14T10:00:00-04:00", 1_000, "lipstick", refund_of="c1"))
    member, offers, _ = c.decide("cvs_bday")
    assert member["points_balance"] == 501
    ready = offers["extrabucks_ready"]
    assert "POINTS_BALANCE:501" in ready["reasons"]
    assert ready["text"] == "You have 501 points: every 100 is $1 ExtraBucks"
    # five $1 ExtraBucks Rewards: 501 - 5 x 100 = 1, five coupons that last 30 days; a sixth is refused
    coupons = []
    for i, left in enumerate([401, 301, 201, 101, 1]):
        reward = c.redeem("cvs_bday", "extrabucks_1", f"cvs-k{i}")
        assert reward["balance"] == left and reward["coupon"]["offer_id"] == "extrabucks_reward"
        assert reward["coupon"]["expires_at"] - reward["coupon"]["issued_at"] == 30 * 86_400
        coupons.append(reward["coupon"]["code"])
    assert len(set(coupons)) == 5
    refused = c.redeem("cvs_bday", "extrabucks_1", "cvs-k5", status=409)
    assert (refused["balance"], refused["needed"]) == (1, 100)
    view = c.points("cvs_bday")
    assert view["balance"] == 1 and view["lifetime"] == {"earned": 621, "burned": 500, "expired": 0,
                                                         "adjusted": 0, "reversed": 120}
    assert view["expiring_soon"] == []  # ExtraCare points never expire

    # cvs_carepass: $4.99 = 9.98 points (balance 9, 0.98 kept); a 1-cent line completes the 10th point
    c.send(tx("p1", "cvs_carepass", "2024-05-14T08:00:00-04:00", 499, "vitamins"))
    assert (c.points("cvs_carepass")["balance"], c.points("cvs_carepass")["fraction"]) == (9, 0.98)
    c.send(tx("p2", "cvs_carepass", "2024-05-14T08:05:00-04:00", 1, "vitamins"))
    view = c.points("cvs_carepass")
    assert (view["balance"], view["fraction"]) == (10, 0)
    assert not any(e["cause"].startswith("birthday") for e in view["entries"])  # born in September
    member, offers, excluded = c.decide("cvs_carepass")
    assert member["points_balance"] == 10
    assert offers["carepass_monthly_reward"]["text"] == "Your monthly $10 CarePass reward is ready"
    assert offers["welcome_coupon"]["text"] == "Welcome to ExtraCare: 20% off your next visit"  # joined 1 May
    assert excluded["extrabucks_ready"] == "POINTS_INSUFFICIENT"  # 10 < 100 - 20
