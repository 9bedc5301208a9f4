"""The points ledger's rules: the config, the earn rules and challenge goals by hand, and the store's
atomic posting on both stores (Redis' Lua script and its Python twin agree; no overdraw under 100
concurrent redemptions)."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

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
from tests.points_env import (
    NOW,
    PROGRAM,
)
from tests.service_helpers import (
    make_store,
)


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


def _lines(*rows: tuple[int, float, str | None, int]) -> Any:

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
def test_lua_and_python_rules_agree_andevery_key_has_a_ttl(redis_url: str) -> None:
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
    # the script's three keys share a Redis Cluster hash slot (the member id is their hash tag)
    from redis.crc import key_slot

    assert len({key_slot(k.encode()) for k in redis_store.keys.points(member)}) == 1


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


def test_the_replay_follows_the_stores_order_not_the_segments() -> None:
    """Two workers log an adjustment and then a burn at the same second in separate segments,
    read back in the other order: the entry numbers the store gave them order the replay."""
    from runtime.points.rebuild import replay

    adjust = {"c": "adjust:k1", "k": "adjust", "u": 400 * UNIT, "ts": NOW, "x": 0, "a": 0, "m": {}}
    burn = {"c": "redeem:k2", "k": "burn", "u": -300 * UNIT, "ts": NOW, "m": {}}
    lines = [  # the burn's segment sorts first
        {"rec": "posting", "member_id": "m", "at": NOW, "call": "b", "posting": burn},
        {"rec": "entry", "member_id": "m", "seq": 2, "kind": "burn", "cause": "redeem:k2", "points": -300},
        {"rec": "posting", "member_id": "m", "at": NOW, "call": "a", "posting": adjust},
        {"rec": "entry", "member_id": "m", "seq": 1, "kind": "adjust", "cause": "adjust:k1", "points": 400}]
    assert replay(lines, NOW)["m"]["balance"] == 100
    # without the outcome lines (never fsynced, lost), the log's order is all there is
    assert replay([lines[0], lines[2]], NOW)["m"]["balance"] == 400


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
