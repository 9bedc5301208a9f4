"""The points ledger: earn rules, burns, expiry, refunds, idempotency, concurrency and the rebuild.

The store rule is tested on both stores (Redis' Lua script and its Python twin must agree on a
long random sequence); the service through Flask against a real Redis, on the tiny data
directory with a program whose points are hand-computed below.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from models.points import (
    UNIT,
    EarnContext,
    PointsOffer,
    PurchaseLine,
    earn_postings,
    expiry_at,
    line_factor,
)
from models.program import ProgramConfigError, parse_program
from offers_cli.main import cli
from runtime.decisions.materialize import load_members, materialize
from runtime.points.rebuild import read_log, rebuild, replay
from service.app import create_app
from service.state import ServiceState
from tests.decisions_env import close_app
from tests.service_helpers import (
    ADMIN_KEY,
    ALL_KEYS,
    DECISIONS_KEY,
    EVENTS_KEY,
    make_settings,
    make_store,
)
from tests.test_console_browser import browser, page  # noqa: F401 - the real-browser fixtures

# Friday 2017-03-10; member m1 of the tiny data was born in March and joined 2016-01-05
CLOCK = "2017-03-10T12:00:00+00:00"
NOW = int(datetime(2017, 3, 10, 12, tzinfo=UTC).timestamp())
EVENTS = {"X-API-Key": EVENTS_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
READ = {"X-API-Key": DECISIONS_KEY}

PROGRAM = """
name: Points test
timezone: UTC
currency: {name: points, earn_rate: 1}
tier_policy: {metric: spend, window: {type: lifetime}}
tiers:
  - {name: Base, threshold: 0}
  - {name: Gold, threshold: 10, earn_multiplier: 2}
offers:
  - {id: tea_voucher, kind: amount_off, title: $5 off, value: 5, cost: 5, requires_coupon: true}
points:
  enabled: true
  signup: 100
  birthday: 50
  expiry: {type: rolling, months: 6}
  multipliers:
    - {name: double_friday, factor: 2, days_of_week: [fri]}
    - {name: fruit_x3, factor: 3, categories: [FRUIT]}
  rewards:
    - {id: free_drink, title: Free drink, points: 150}
    - {id: five_off, title: $5 voucher, points: 200, kind: voucher, offer: tea_voucher}
    - {id: trees, title: Plant a tree, points: 10, kind: charity, cause: One Tree Planted}
"""


def test_program_config_refuses_bad_points_sections() -> None:
    bad = PROGRAM.replace("offer: tea_voucher", "offer: nope").replace("months: 6", "months: 6, day: 3")
    with pytest.raises(ProgramConfigError) as err:
        parse_program(bad.replace("type: rolling, months: 6, day: 3", "type: rolling"))
    text = str(err.value)
    assert "points.rewards[1].offer" in text and "unknown program offer 'nope'" in text
    assert "points.expiry.months" in text and "a rolling expiry needs months" in text
    free_coupon = PROGRAM.replace("requires_coupon: true}", "requires_coupon: true, points_price: 200}")
    with pytest.raises(ProgramConfigError, match=r"offers\[0\]\.requires_coupon.*must not carry a coupon"):
        parse_program(free_coupon)


def test_earn_rules_by_hand() -> None:
    program = parse_program(PROGRAM)
    from zoneinfo import ZoneInfo

    utc = ZoneInfo("UTC")
    friday = NOW
    line = PurchaseLine("e1", "m1", friday, 399, "SOFT DRINKS")
    [p] = earn_postings(program, [], line, EarnContext("Base"), utc)
    assert (p.cause, p.kind, p.units) == ("earn:e1", "earn", 2 * 399 * UNIT // 100)  # Friday doubles
    assert p.expires_at == int(datetime(2017, 9, 10, tzinfo=UTC).timestamp())  # 6 months after the day
    [p] = earn_postings(program, [], PurchaseLine("e2", "m1", friday + 86_400, 399, "FRUIT"),
                        EarnContext("Gold"), utc)
    assert p.units == 2 * 3 * 399 * UNIT // 100  # Gold x2, fruit x3 (max of the rules: Saturday)
    # a points-multiplier offer applies for its valid_days after it reached the member, not after
    double = PointsOffer("dsd", "points_multiplier", 2.0, valid_seconds=86_400)
    reached = EarnContext("Base", {"dsd": [friday + 86_400]})
    saturday, sunday = friday + 86_400 + 3_600, friday + 2 * 86_400 + 3_600
    assert line_factor(program, [double], PurchaseLine("e4", "m1", saturday, 100), reached, utc)[0] == 2
    assert line_factor(program, [double], PurchaseLine("e5", "m1", sunday, 100), reached, utc)[0] == 1
    refund = PurchaseLine("e3", "m1", friday, -100, refund_of="e1")
    [p] = earn_postings(program, [], refund, EarnContext("Base"), utc)
    assert (p.kind, p.of, p.amount_minor) == ("reverse", "earn:e1", 100)
    calendar = parse_program(PROGRAM.replace("type: rolling, months: 6", "type: calendar"))
    assert expiry_at(calendar.points, friday, utc) == int(datetime(2018, 1, 1, tzinfo=UTC).timestamp())


# -- the store rule: Lua and Python twins ------------------------------------------------------------
def _random_postings(rng: random.Random, now: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(["earn", "earn", "burn", "adjust", "reverse", "refund"])
        c = str(rng.randint(0, 200))
        if kind == "earn":
            amount = rng.randint(1, 50_000)
            out.append({"c": "earn:" + c, "k": "earn", "u": amount * 100, "ts": now, "amt": amount,
                        "x": now + rng.choice([0, 30 * 86_400, 200 * 86_400]),
                        "a": rng.choice([0, now + 3 * 86_400]), "m": {"rule": "base"}})
        elif kind == "burn":
            out.append({"c": "redeem:" + c, "k": "burn", "u": -rng.randint(1, 300) * UNIT, "ts": now, "m": {}})
        elif kind == "adjust":
            out.append({"c": "adjust:" + c, "k": "adjust", "u": rng.choice([-1, 1]) * rng.randint(1, 100) * UNIT,
                        "ts": now, "m": {"reason": "r"}})
        elif kind == "reverse":
            out.append({"c": "earn:r" + c, "k": "reverse", "u": -rng.randint(1, 50_000) * 100, "ts": now, "m": {}})
        else:
            out.append({"c": "refund:" + c, "k": "reverse", "u": 0, "of": "earn:" + str(rng.randint(0, 200)),
                        "amt": rng.randint(1, 30_000), "ts": now, "m": {}})
    return out


@pytest.mark.redis
def test_lua_and_python_rules_agree_and_every_key_has_a_ttl(redis_url: str) -> None:
    redis_store, memory = make_store("redis", redis_url), make_store("memory")
    rng = random.Random(7)
    now = NOW
    member = "twin-" + uuid.uuid4().hex[:8]
    for _ in range(300):
        now += rng.randint(0, 20 * 86_400)
        postings = _random_postings(rng, now)
        assert redis_store.post_points(member, postings, now) == memory.post_points(member, postings, now)
    assert redis_store.points_entries(member, 30) == memory.points_entries(member, 30)
    reply = redis_store.post_points(member, [], now)
    totals = reply["totals"]
    lots = sum(p for _, _, p in reply["lots"])
    # the account balances: what came in minus what went out is what the lots hold, less debt
    assert totals["E"] + totals["A"] - totals["B"] - totals["X"] - totals["V"] == lots - reply["debt"]
    for key in redis_store.keys.points(member):
        assert redis_store.client.ttl(key) > 0, key


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_burn_never_overdraws_and_causes_apply_once(kind: str, request: pytest.FixtureRequest) -> None:
    store = make_store(kind, request.getfixturevalue("redis_url") if kind == "redis" else None)
    member = "b-" + uuid.uuid4().hex[:8]
    earn = {"c": "earn:e1", "k": "earn", "u": 150 * UNIT + 5_000, "ts": NOW, "x": 0, "a": 0, "amt": 15_050, "m": {}}
    first = store.post_points(member, [earn], NOW)
    assert first["balance"] == 150 and first["fraction"] == 5_000
    assert store.post_points(member, [earn], NOW)["results"][0]["status"] == "duplicate"
    burn = {"c": "redeem:k1", "k": "burn", "u": -151 * UNIT, "ts": NOW, "m": {}}
    refused = store.post_points(member, [burn], NOW)
    assert refused["results"][0] == {"cause": "redeem:k1", "status": "refused", "balance": 150}
    pending = {"c": "earn:e2", "k": "earn", "u": 40 * UNIT, "ts": NOW, "x": 0, "a": NOW + 86_400, "m": {}}
    reply = store.post_points(member, [pending], NOW)
    assert (reply["balance"], reply["pending"]) == (150, 40)  # pending points cannot be spent yet
    assert store.post_points(member, [], NOW + 86_400)["balance"] == 190


@pytest.mark.redis
def test_100_concurrent_redemptions_against_a_balance_for_10_redeem_exactly_10(redis_url: str) -> None:
    store = make_store("redis", redis_url)
    member = "c-" + uuid.uuid4().hex[:8]
    store.post_points(member, [{"c": "adjust:seed", "k": "adjust", "u": 1_000 * UNIT, "ts": NOW, "m": {}}], NOW)
    statuses: list[str] = []
    lock = threading.Lock()

    def redeem(i: int) -> None:
        burn = {"c": f"redeem:{i}", "k": "burn", "u": -100 * UNIT, "ts": NOW, "m": {}}
        status = store.post_points(member, [burn], NOW)["results"][0]["status"]
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=redeem, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count("applied") == 10 and statuses.count("refused") == 90
    assert store.post_points(member, [], NOW)["balance"] == 0


# -- the service ---------------------------------------------------------------------------------------
@pytest.fixture
def points_app(tmp_path: Path, tiny_dir: Path, redis_url: str) -> Iterator[Flask]:
    program = tmp_path / "program.yaml"
    program.write_text(PROGRAM)
    app = _app(tmp_path, tiny_dir, program, redis_url, CLOCK, "pt" + uuid.uuid4().hex[:8])
    yield app
    close_app(app)


def _app(tmp_path: Path, data: Path, program: Path, redis_url: str, clock: str, prefix: str) -> Flask:
    """A service on the tiny data with the points program, its members materialized into Redis."""
    app = create_app(make_settings(tmp_path, api_keys=ALL_KEYS, clock=clock, redis_url=redis_url, data=data,
                                   program=program, redis_prefix=prefix, redis_timeout_ms=5000,
                                   redis_connect_timeout_ms=5000))
    state: ServiceState = app.extensions["offers"]
    assert state.decisions is not None and state.decisions.wait(60)
    assert state.points is not None and state.decisions.setup is not None, state.decisions.error
    hist, profiles = load_members(state.decisions.setup, data)
    materialize(state.store, state.decisions.setup, hist, profiles)
    return app


def _tx(event_id: str, member: str, amount: int, ts: str = "2017-03-10T09:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "member_id": member, "type": "transaction", "ts": ts, "amount_minor": amount,
            **extra}


def _points(app: Flask, member: str) -> dict[str, Any]:
    resp = app.test_client().get(f"/v1/members/{member}/points?entries=20", headers=READ)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    return body


@pytest.mark.redis
def test_service_earns_burns_refunds_and_rebuilds(points_app: Flask, tmp_path: Path) -> None:
    client = points_app.test_client()
    # m3 is Base (spend $0.99 before), with no join date (no signup bonus)
    events = [_tx("t1", "m3", 1_000, product_id="p4"),  # FRUIT x3 beats Friday x2: 10 x 3 = 30 points
              _tx("t2", "m3", 250, product_id="p1")]    # Friday x2: 2.50 x 2 = 5 points
    resp = client.post("/v1/events", json=events, headers=EVENTS)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    m3 = _points(points_app, "m3")
    assert m3["balance"] == 35
    assert {e["cause"] for e in m3["entries"]} == {"earn:t1", "earn:t2"}
    # a replayed event never earns twice, even once the event de-duplication forgot it
    state: ServiceState = points_app.extensions["offers"]
    client.post("/v1/events", json=events, headers=EVENTS)
    for ev in events:
        state.store.client.delete(state.store.keys.event(ev["event_id"]))  # type: ignore[attr-defined]
    client.post("/v1/events", json=events, headers=EVENTS)
    assert _points(points_app, "m3")["balance"] == 35
    # a refund of half the fruit takes back half its 30 points
    refund = _tx("t3", "m3", 500, product_id="p4", refund_of="t1")
    assert client.post("/v1/events", json=refund, headers=EVENTS).status_code == 200
    assert _points(points_app, "m3")["balance"] == 20

    # m1 is Base (spend $6.48 before): $100 on a Friday earns 200; born in March, joined in 2016
    client.post("/v1/events", json=_tx("t4", "m1", 10_000, product_id="p2"), headers=EVENTS)
    m1 = _points(points_app, "m1")
    earn = next(e for e in m1["entries"] if e["cause"] == "earn:t4")
    assert earn["m"]["tier"] == "Base" and earn["points"] == 200
    causes = {e["cause"] for e in m1["entries"]}
    assert {"signup", "birthday:2017"} <= causes  # joined 2016, born in March: both once
    # signup points are earned at the join (2016-01-05), so under a 6-month expiry they are already gone
    signup = next(e for e in m1["entries"] if e["cause"] == "signup")
    assert signup["ts"] == int(datetime(2016, 1, 5, tzinfo=UTC).timestamp())
    assert any(e["kind"] == "expire" and e["points"] == -100 for e in m1["entries"])
    assert m1["balance"] == 50 + 200 and m1["lifetime"]["expired"] == 100

    # redeeming: the key is required, unknown rewards and overdraws are refused, nothing half-done
    no_key = client.post("/v1/members/m3/points/redeem", json={"reward_id": "free_drink"}, headers=EVENTS)
    assert no_key.status_code == 422 and no_key.get_json()["errors"][0]["header"] == "Idempotency-Key"
    unknown = client.post("/v1/members/m3/points/redeem", json={"reward_id": "nope"},
                          headers={**EVENTS, "Idempotency-Key": "k0"})
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["pointer"] == "/reward_id"
    over = client.post("/v1/members/m3/points/redeem", json={"reward_id": "free_drink"},
                       headers={**EVENTS, "Idempotency-Key": "k1"})
    assert over.status_code == 409 and over.mimetype == "application/problem+json"
    assert over.get_json()["type"].endswith("points-insufficient") and over.get_json()["needed"] == 150
    assert _points(points_app, "m3")["balance"] == 20
    voucher = client.post("/v1/members/m1/points/redeem", json={"reward_id": "five_off", "channel": "app"},
                          headers={**EVENTS, "Idempotency-Key": "k2"})
    assert voucher.status_code == 200, voucher.get_data(as_text=True)
    body = voucher.get_json()
    assert body["status"] == "redeemed" and body["coupon"]["offer_id"] == "tea_voucher"
    assert body["balance"] == m1["balance"] - 200
    again = client.post("/v1/members/m1/points/redeem", json={"reward_id": "five_off", "channel": "app"},
                        headers={**EVENTS, "Idempotency-Key": "k2"})
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_json() == body
    # a donation is a burn, reported per cause
    gift = client.post("/v1/members/m1/points/redeem", json={"reward_id": "trees"},
                       headers={**EVENTS, "Idempotency-Key": "k3"})
    assert gift.status_code == 200 and gift.get_json()["reward"]["cause"] == "One Tree Planted"
    # an admin adjustment needs a reason, and records who made it
    no_reason = client.post("/v1/admin/members/m3/points/adjust", json={"points": 5},
                            headers={**ADMIN, "Idempotency-Key": "a1"})
    assert no_reason.status_code == 422
    adjusted = client.post("/v1/admin/members/m3/points/adjust", json={"points": -5, "reason": "goodwill fix"},
                           headers={**ADMIN, "Idempotency-Key": "a1"})
    assert adjusted.status_code == 200 and adjusted.get_json()["balance"] == 15
    assert adjusted.get_json()["entry"]["m"]["reason"] == "goodwill fix"

    # the rebuild from the durable log matches every live balance
    log_dir = state.settings.event_log
    lines = read_log(log_dir)
    assert {line["rec"] for line in lines} == {"posting", "entry", "refused"}
    result = rebuild(log_dir, state.store, NOW)
    assert result.members == 2 and result.mismatches == {}
    # and a lost entry would show: replaying without one posting changes that member's balance
    dropped = [line for line in lines if not (line["rec"] == "posting" and line["posting"]["c"] == "earn:t2")]
    assert replay(dropped, NOW)["m3"]["balance"] == 15 - 5

    # the same audit as a command: every balance matches; a live balance changed behind the
    # ledger's back is found and the command exits 1
    env = {"REDIS_URL": state.settings.redis_url, "OFFERS_REDIS_PREFIX": state.settings.redis_prefix}
    args = ["points", "rebuild", "--log", str(log_dir), "--at", CLOCK]
    ok = CliRunner().invoke(cli, args, env=env)
    assert ok.exit_code == 0 and "rebuilt 2 members" in ok.output and "every balance matches" in ok.output
    account = state.store.keys.points("m3")[0]  # type: ignore[attr-defined]
    lot = next(k for k in state.store.client.hkeys(account) if k.startswith(b"l"))  # type: ignore[attr-defined]
    state.store.client.hincrby(account, lot, 7)  # type: ignore[attr-defined]
    bad = CliRunner().invoke(cli, [*args, "--json"], env=env)
    assert bad.exit_code == 1, bad.output
    assert json.loads(bad.output)["differing"] == {"m3": {"rebuilt": 15, "live": 22}}
    report = CliRunner().invoke(cli, ["points", "report", "--log", str(log_dir), "--json"])
    assert report.exit_code == 0, report.output
    assert json.loads(report.output) == [
        {"reward_id": "five_off", "kind": "voucher", "cause": None, "redemptions": 1, "points": 200, "members": 1},
        {"reward_id": "trees", "kind": "charity", "cause": "One Tree Planted", "redemptions": 1, "points": 10,
         "members": 1}]
    text = CliRunner().invoke(cli, ["points", "report", "--log", str(log_dir)]).output
    assert "trees (charity) for One Tree Planted: 1 redemptions, 10 points, 1 members" in text
    _every_key_has_a_ttl(points_app)
    no_redis = CliRunner().invoke(cli, args, env={"REDIS_URL": "", "OFFERS_REDIS_URL": ""})
    assert no_redis.exit_code == 1 and "set REDIS_URL" in no_redis.output


@pytest.mark.redis
def test_points_expire_lazily_and_exactly(tmp_path: Path, tiny_dir: Path, redis_url: str) -> None:
    program = tmp_path / "program.yaml"
    program.write_text(PROGRAM.replace("signup: 100", "signup: 0").replace("birthday: 50", "birthday: 0"))
    prefix = "pt" + uuid.uuid4().hex[:8]
    app = _app(tmp_path, tiny_dir, program, redis_url, CLOCK, prefix)
    try:  # m2 is Gold (spend $13.99 before): $10 on a Friday earns 10 x 2 x 2
        app.test_client().post("/v1/events", json=_tx("x1", "m2", 1_000, product_id="p3"), headers=EVENTS)
        earned = _points(app, "m2")["balance"]
        assert earned == 40 and _points(app, "m2")["expiring_soon"] == []
    finally:
        app.extensions["offers"].close()  # keep its Redis keys for the next app
    # six months later (the same Redis): the points are gone, and the expiry is an entry
    later = _app(tmp_path / "later", tiny_dir, program, redis_url, "2017-09-10T00:00:00+00:00", prefix)
    try:
        m2 = _points(later, "m2")
        assert m2["balance"] == 0 and m2["lifetime"]["expired"] == earned
        assert m2["entries"][0]["kind"] == "expire" and m2["entries"][0]["points"] == -earned
    finally:
        close_app(later)


REWARD_OFFERS = """
  - {id: free_drink_offer, kind: free_item, title: A free drink, value: 4, points_price: 150, points_nudge: 50,
     text: "You're {points_needed} points from a free drink ({points_balance} now)"}
  - {id: use_them, kind: free_item, title: Use your points, value: 1, points_expiring_within_days: 30,
     text: "{points_expiring} points expire on {expiry_date}"}
"""


@pytest.mark.redis
def test_decisions_offer_rewards_the_balance_covers_and_nudge_the_rest(tmp_path: Path, tiny_dir: Path,
                                                                       redis_url: str) -> None:
    program = tmp_path / "program.yaml"
    program.write_text(PROGRAM.replace("offers:\n", "offers:\n" + REWARD_OFFERS.strip("\n") + "\n", 1)
                       .replace("signup: 100", "signup: 0").replace("birthday: 50", "birthday: 0"))
    app = _app(tmp_path, tiny_dir, program, redis_url, CLOCK, "pt" + uuid.uuid4().hex[:8])
    client = app.test_client()
    decisions = {"X-API-Key": DECISIONS_KEY}

    def decide() -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
        resp = client.post("/v1/decisions", json={"member_id": "m3", "channel": "app", "n": 5}, headers=decisions)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        return ({o["offer_id"]: o for o in body["offers"]}, {e["offer_id"]: e["reason"] for e in body["excluded"]},
                body["member"])

    def adjust(points: int, key: str) -> None:
        resp = client.post("/v1/admin/members/m3/points/adjust", json={"points": points, "reason": "test"},
                           headers={**ADMIN, "Idempotency-Key": key})
        assert resp.status_code == 200, resp.get_data(as_text=True)

    try:
        offers, excluded, member = decide()
        assert member["points_balance"] == 0
        assert excluded["free_drink_offer"] == "POINTS_INSUFFICIENT"
        assert excluded["use_them"] == "NO_POINTS_EXPIRING"
        adjust(120, "a1")  # 30 short of the drink, within the nudge of 50
        offers, excluded, member = decide()
        nudge = offers["free_drink_offer"]
        assert nudge["text"] == "You're 30 points from a free drink (120 now)" and "POINTS_NUDGE:30" in nudge["reasons"]
        assert excluded["use_them"] == "NO_POINTS_EXPIRING"  # adjusted points expire in 6 months
        adjust(40, "a2")
        offers, _, member = decide()
        assert member["points_balance"] == 160 and "POINTS_BALANCE:160" in offers["free_drink_offer"]["reasons"]
        # a purchase of 2016-09-20 earned points that expire on 2017-03-20: within the 30-day window
        old = _tx("old-1", "m3", 1_000, ts="2016-09-20T10:00:00Z", product_id="p3")
        assert client.post("/v1/events", json=old, headers=EVENTS).status_code == 200
        offers, _, member = decide()
        assert member["points_balance"] == 170
        assert offers["use_them"]["text"] == "10 points expire on 20 Mar"
    finally:
        close_app(app)


def _lines(*rows: tuple[int, float, str | None, int]) -> Any:
    import numpy as np

    from models.challenges import Purchases

    t, a, c, b = zip(*rows, strict=True) if rows else ((), (), (), ())
    return Purchases(np.array(t, dtype=np.int64), np.array(a, dtype=float), np.array(c, dtype=object),
                     np.array(b, dtype=np.int64))


def test_challenge_goals_by_hand() -> None:
    from models.challenges import progress
    from models.points_config import Challenge

    day = 86_400
    start = 100 * day
    lines = _lines((start - day, 500, "DAIRY", 1),                    # before the run: DAIRY is not new
                   (start + 10, 300, "DAIRY", 2), (start + 20, 200, "FRUIT", 2),   # one visit, two lines
                   (start + day + 5, 1_000, "FRUIT", 3), (start + 3 * day, 250, "TEA", 4),
                   (start + 9 * day, 9_999, "WINE", 5))                            # after the 7-day window

    def run(**kw: Any) -> float:
        ch = Challenge(id="c", title="c", offer="o", reward_points=10, **kw)
        return progress(ch, lines, start).progress

    assert run(goal="purchases", target=3) == 3                  # baskets 2, 3, 4
    assert run(goal="new_category", target=2) == 2               # FRUIT and TEA (not DAIRY, not WINE)
    assert run(goal="streak", target=2) == 2                     # days 0 and 1, then a gap to day 3
    assert run(goal="streak", target=1, period="week") == 1
    assert run(goal="category_spend", target=10, category="FRUIT") == 12.0   # $2 + $10


CHALLENGE = """
  challenges:
    - {id: three_visits, title: Visit 3 times this week, goal: purchases, target: 3, window_days: 7,
       offer: three_visits_offer, reward_points: 50}
"""
CHALLENGE_OFFER = """
  - {id: three_visits_offer, kind: bonus_points, title: Three visits, value: 50, caps: {issues: 1},
     text: "Visit 3 times this week: {progress}/{target}"}
"""


@pytest.mark.redis
def test_a_challenge_is_offered_tracked_and_rewarded_exactly_once(tmp_path: Path, tiny_dir: Path,
                                                                   redis_url: str) -> None:
    text = (PROGRAM.replace("offers:\n", "offers:\n" + CHALLENGE_OFFER.strip("\n") + "\n", 1)
            .replace("signup: 100", "signup: 0").replace("birthday: 50", "birthday: 0")
            .replace("points:\n", "points:\n" + CHALLENGE.strip("\n") + "\n", 1))
    program = tmp_path / "program.yaml"
    program.write_text(text)
    app = _app(tmp_path, tiny_dir, program, redis_url, CLOCK, "pt" + uuid.uuid4().hex[:8])
    client = app.test_client()
    try:
        resp = client.post("/v1/decisions", json={"member_id": "m3", "channel": "app", "n": 5},
                           headers={"X-API-Key": DECISIONS_KEY})
        offer = next(o for o in resp.get_json()["offers"] if o["offer_id"] == "three_visits_offer")
        assert offer["text"] == "Visit 3 times this week: 0/3"
        visits = [_tx(f"v{i}", "m3", 100, ts=f"2017-03-10T1{3 + i}:00:00Z", product_id="p3", basket_id=f"b{i}")
                  for i in range(4)]
        for ev in visits[:2]:
            assert client.post("/v1/events", json=ev, headers=EVENTS).status_code == 200
        [run] = _points(app, "m3")["challenges"]
        assert (run["challenge_id"], run["progress"], run["target"], run["completed"]) == ("three_visits", 2, 3, False)
        assert client.post("/v1/events", json=visits[2:], headers=EVENTS).status_code == 200  # the 3rd and a 4th
        view = _points(app, "m3")
        assert view["challenges"][0]["completed"] is True
        rewards = [e for e in view["entries"] if e["m"].get("rule") == "challenge"]
        assert len(rewards) == 1 and rewards[0]["points"] == 50
        assert rewards[0]["cause"] == f"challenge:three_visits:{_local_seconds(run['started_at'])}"
        # the presenting bonus_points offer pays by the challenge only, not per purchase
        assert not any(e["cause"].startswith("bonus:") for e in view["entries"])
        before = view["balance"]
        state: ServiceState = app.extensions["offers"]
        for ev in visits:  # replayed once the event de-duplication forgot them: nothing earns twice
            state.store.client.delete(state.store.keys.event(ev["event_id"]))  # type: ignore[attr-defined]
        client.post("/v1/events", json=visits, headers=EVENTS)
        assert _points(app, "m3")["balance"] == before
    finally:
        close_app(app)


def _every_key_has_a_ttl(app: Flask) -> None:
    """Every key the app wrote (its prefix is unique to the test) expires."""
    store = app.extensions["offers"].store
    keys = list(store.client.scan_iter(match=store.keys.pattern(), count=1000))
    assert keys and all(store.client.ttl(k) > 0 for k in keys), [k for k in keys if store.client.ttl(k) <= 0]


def _local_seconds(epoch: int) -> int:
    """Epoch seconds as the local program seconds challenge causes use (the test program is in UTC)."""
    return epoch


REFERRALS = """
  referrals: {referee_points: 100, referrer_points: 200, min_purchase: 5, window_days: 90, max_per_member: 2}
"""


@pytest.mark.redis
def test_referrals_link_once_refuse_self_loops_and_limits_and_pay_both_once(tmp_path: Path, tiny_dir: Path,
                                                                            redis_url: str) -> None:
    program = tmp_path / "program.yaml"
    program.write_text(PROGRAM.replace("signup: 100", "signup: 0").replace("birthday: 50", "birthday: 0")
                       .replace("points:\n", "points:\n" + REFERRALS.strip("\n") + "\n", 1))
    app = _app(tmp_path, tiny_dir, program, redis_url, CLOCK, "pt" + uuid.uuid4().hex[:8])
    client = app.test_client()

    def code(member: str) -> str:
        resp = client.post(f"/v1/members/{member}/referral-code", headers=EVENTS)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        value: str = resp.get_json()["code"]
        return value

    def refer(member: str, with_code: str) -> Any:
        return client.post("/v1/referrals", json={"member_id": member, "code": with_code}, headers=EVENTS)

    def refused(resp: Any) -> str:
        assert resp.status_code == 409 and resp.mimetype == "application/problem+json", resp.get_data(as_text=True)
        reason: str = resp.get_json()["reason"]
        return reason

    try:
        c1 = code("m1")
        assert code("m1") == c1  # one code per member
        assert refer("n1", c1.lower()).get_json() == {"status": "linked", "member_id": "n1"}  # as typed
        assert refused(refer("n1", c1)) == "already_referred"
        own = refer("m1", c1)
        assert own.status_code == 422 and own.get_json()["errors"][0]["code"] == "self_referral"
        assert refused(refer("m2", c1)) == "not_new"  # m2 has bought before
        unknown = refer("n9", "R0000000000")
        assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["pointer"] == "/code"
        assert refer("n2", c1).status_code == 200           # m1 -> n2: m1's second and last referral
        assert refer("n3", code("n2")).status_code == 200   # n2 -> n3
        assert refused(refer("n2", code("n3"))) == "loop"   # n3 was referred by n2's own referral
        assert refused(refer("n4", c1)) == "limit"
        info = client.post("/v1/members/m1/referral-code", headers=EVENTS).get_json()
        assert info["referrals_made"] == 2 and info["referred_by"] is None

        # n1's first purchase of $3 does not qualify; the $10 one pays both, once
        after = "2017-03-10T13:00:00Z"  # after the link (the service clock: noon)
        client.post("/v1/events", json=_tx("n1-a", "n1", 300, ts=after), headers=EVENTS)
        assert _points(app, "m1")["balance"] == 0
        client.post("/v1/events", json=[_tx("n1-b", "n1", 1_000, ts=after), _tx("n1-c", "n1", 2_000, ts=after)],
                    headers=EVENTS)
        n1 = _points(app, "n1")
        assert n1["balance"] == 6 + 20 + 40 + 100  # Friday x2 on $3, $10 and $20, plus the referee reward
        assert [e["cause"] for e in n1["entries"]].count("referral:referee") == 1
        m1 = _points(app, "m1")
        assert m1["balance"] == 200 and m1["entries"][0]["cause"] == "referral:n1"
        _every_key_has_a_ttl(app)
    finally:
        close_app(app)


PLANS = """
  plans:
    - {id: plus, title: Plus membership, fee: 4.99, term_days: 30, earn_multiplier: 2}
"""
PLAN_OFFER = """
  - {id: plus_perk, kind: free_shipping, title: Free delivery for Plus members, value: 3, plans: [plus]}
"""


@pytest.mark.redis
def test_a_paid_plan_feeds_eligibility_and_earning_renews_and_lapses(tmp_path: Path, tiny_dir: Path,
                                                                     redis_url: str) -> None:
    program = tmp_path / "program.yaml"
    program.write_text(PROGRAM.replace("signup: 100", "signup: 0").replace("birthday: 50", "birthday: 0")
                       .replace("offers:\n", "offers:\n" + PLAN_OFFER.strip("\n") + "\n", 1)
                       .replace("points:\n", "points:\n" + PLANS.strip("\n") + "\n", 1))
    prefix = "pt" + uuid.uuid4().hex[:8]
    app = _app(tmp_path, tiny_dir, program, redis_url, CLOCK, prefix)
    client = app.test_client()

    def decide(c: Any) -> tuple[set[str], dict[str, str]]:
        body = c.post("/v1/decisions", json={"member_id": "m3", "channel": "app", "n": 10},
                      headers={"X-API-Key": DECISIONS_KEY}).get_json()
        return {o["offer_id"] for o in body["offers"]}, {e["offer_id"]: e["reason"] for e in body["excluded"]}

    def buy(key: str) -> Any:
        return client.post("/v1/members/m3/plans/plus", headers={**EVENTS, "Idempotency-Key": key})

    try:
        assert decide(client)[1]["plus_perk"] == "PLAN_REQUIRED"
        first = buy("p1")
        assert first.status_code == 200, first.get_data(as_text=True)
        assert first.get_json() == {"member_id": "m3", "plan": "plus", "title": "Plus membership",
                                  "status": "started", "expires_at": NOW + 30 * 86_400, "fee_minor": 499}
        assert buy("p1").headers.get("Idempotent-Replayed") == "true"
        assert buy("p2").get_json()["expires_at"] == NOW + 60 * 86_400  # renewed from its end
        unknown = client.post("/v1/members/m3/plans/gold", headers={**EVENTS, "Idempotency-Key": "p3"})
        assert unknown.status_code == 404
        assert "plus_perk" in decide(client)[0]
        client.post("/v1/events", json=_tx("plan-1", "m3", 1_000, ts="2017-03-10T13:00:00Z"), headers=EVENTS)
        view = _points(app, "m3")
        assert view["balance"] == 10 * 2 * 2  # $10, Friday x2, the plan's x2
        assert view["plans"] == [{"plan": "plus", "title": "Plus membership", "expires_at": NOW + 60 * 86_400,
                                  "active": True}]
    finally:
        app.extensions["offers"].close()  # keep the Redis keys for the later app
    later = _app(tmp_path / "later", tiny_dir, program, redis_url, "2017-05-10T12:00:00+00:00", prefix)
    try:  # 61 days on, the plan has lapsed: no perk, base earn only (a Wednesday: $10 earns 10)
        assert decide(later.test_client())[1]["plus_perk"] == "PLAN_REQUIRED"
        later.test_client().post("/v1/events", json=_tx("plan-2", "m3", 1_000, ts="2017-05-10T11:00:00Z"),
                                 headers=EVENTS)
        view = _points(later, "m3")
        assert view["balance"] == 40 + 10 and view["plans"][0]["active"] is False
    finally:
        close_app(later)


@pytest.mark.slow
@pytest.mark.redis
def test_the_console_member_page_shows_points_read_only_in_a_real_browser(
        points_app: Flask, page: Any, tmp_path: Path) -> None:  # noqa: F811 - the imported fixture
    """Debian's chromium (tests/test_console_browser.py's fixtures): the member page's Points section
    shows the balance and the entries, and looking a member up writes nothing to the ledger."""
    from werkzeug.serving import make_server

    from tests.test_console_browser import sign_in as browser_sign_in

    client = points_app.test_client()
    client.post("/v1/events", json=_tx("w1", "m3", 1_000, product_id="p4"), headers=EVENTS)  # 10 x 3 = 30
    client.post("/v1/admin/members/m3/points/adjust", json={"points": 12, "reason": "browser check"},
                headers={**ADMIN, "Idempotency-Key": "b1"})
    state: ServiceState = points_app.extensions["offers"]
    before = state.store.points_entries("m3", 20)
    httpd = make_server("127.0.0.1", 0, points_app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_port}"
    try:
        browser_sign_in(page, base, ADMIN_KEY)
        page.goto(f"{base}/console/members?q=m3&channel=app")
        section = page.get_by_role("region", name="Points")
        assert section.is_visible()
        assert page.locator("#points-balance").inner_text() == "42"
        rows = page.locator("#points-entries tbody tr").all_inner_texts()
        assert len(rows) == 2 and "adjust" in rows[0] and "reason=browser check" in rows[0] and "earn:w1" in rows[1]
        page.screenshot(path=str(tmp_path / "member-points.png"), full_page=True)
        assert page.errors == []
    finally:
        httpd.shutdown()
        thread.join()
    assert state.store.points_entries("m3", 20) == before  # the preview wrote nothing
