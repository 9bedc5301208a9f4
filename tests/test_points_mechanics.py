"""Challenges, referrals and paid plans end to end through the service, against a real Redis."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from service.state import ServiceState
from tests.decisions_env import close_app
from tests.points_env import (
    CLOCK,
    EVENTS,
    NOW,
    PROGRAM,
    READ,
    every_key_has_a_ttl,
    points_of,
    start_points_app,
    tx,
)
from tests.service_helpers import (
    DECISIONS_KEY,
)

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
    app = start_points_app(tmp_path, tiny_dir, program, redis_url, CLOCK, "pt" + uuid.uuid4().hex[:8])
    client = app.test_client()
    try:
        resp = client.post("/v1/decisions", json={"member_id": "m3", "channel": "app", "n": 5},
                           headers={"X-API-Key": DECISIONS_KEY})
        offer = next(o for o in resp.get_json()["offers"] if o["offer_id"] == "three_visits_offer")
        assert offer["text"] == "Visit 3 times this week: 0/3"
        visits = [tx(f"v{i}", "m3", 100, ts=f"2017-03-10T1{3 + i}:00:00Z", product_id="p3", basket_id=f"b{i}")
                  for i in range(4)]
        for ev in visits[:2]:
            assert client.post("/v1/events", json=ev, headers=EVENTS).status_code == 200
        [run] = points_of(app, "m3")["challenges"]
        assert (run["challenge_id"], run["progress"], run["target"], run["completed"]) == ("three_visits", 2, 3, False)
        assert client.post("/v1/events", json=visits[2:], headers=EVENTS).status_code == 200  # the 3rd and a 4th
        view = points_of(app, "m3")
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
        assert points_of(app, "m3")["balance"] == before
    finally:
        close_app(app)


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
    app = start_points_app(tmp_path, tiny_dir, program, redis_url, CLOCK, "pt" + uuid.uuid4().hex[:8])
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
        client.post("/v1/events", json=tx("n1-a", "n1", 300, ts=after), headers=EVENTS)
        assert points_of(app, "m1")["balance"] == 0
        client.post("/v1/events", json=[tx("n1-b", "n1", 1_000, ts=after), tx("n1-c", "n1", 2_000, ts=after)],
                    headers=EVENTS)
        n1 = points_of(app, "n1")
        assert n1["balance"] == 6 + 20 + 40 + 100  # Friday x2 on $3, $10 and $20, plus the referee reward
        assert [e["cause"] for e in n1["entries"]].count("referral:referee") == 1
        m1 = points_of(app, "m1")
        assert m1["balance"] == 200 and m1["entries"][0]["cause"] == "referral:n1"
        every_key_has_a_ttl(app)
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
    app = start_points_app(tmp_path, tiny_dir, program, redis_url, CLOCK, prefix)
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
        client.post("/v1/events", json=tx("plan-1", "m3", 1_000, ts="2017-03-10T13:00:00Z"), headers=EVENTS)
        view = points_of(app, "m3")
        assert view["balance"] == 10 * 2 * 2  # $10, Friday x2, the plan's x2
        assert view["plans"] == [{"plan": "plus", "title": "Plus membership", "expires_at": NOW + 60 * 86_400,
                                  "active": True}]
    finally:
        app.extensions["offers"].close()  # keep the Redis keys for the later app
    later = start_points_app(tmp_path / "later", tiny_dir, program, redis_url, "2017-05-10T12:00:00+00:00", prefix)
    try:  # 61 days on, the plan has lapsed: no perk, base earn only (a Wednesday: $10 earns 10)
        assert decide(later.test_client())[1]["plus_perk"] == "PLAN_REQUIRED"
        later.test_client().post("/v1/events", json=tx("plan-2", "m3", 1_000, ts="2017-05-10T11:00:00Z"),
                                 headers=EVENTS)
        view = points_of(later, "m3")
        assert view["balance"] == 40 + 10 and view["plans"][0]["active"] is False
    finally:
        close_app(later)


PROMOTION = """
  - {id: reach_gold, kind: tier_challenge, title: Reach Gold, value: 25, text: "Spend {amount} to reach {next_tier}"}
"""


@pytest.mark.redis
def test_an_upgrade_challenge_pays_its_bonus_points_when_the_member_reaches_the_tier(
        tmp_path: Path, tiny_dir: Path, redis_url: str) -> None:
    program = tmp_path / "program.yaml"
    program.write_text(PROGRAM.replace("signup: 100", "signup: 0").replace("birthday: 50", "birthday: 0")
                       .replace("offers:\n", "offers:\n" + PROMOTION.strip("\n") + "\n", 1))
    app = start_points_app(tmp_path, tiny_dir, program, redis_url, CLOCK, "pt" + uuid.uuid4().hex[:8])
    client = app.test_client()
    try:
        # m1 has spent $6.48 (Base); Gold is at $10: the challenge asks for $4 (rounded up)
        body = client.post("/v1/decisions", json={"member_id": "m1", "channel": "app", "n": 5}, headers=READ).get_json()
        challenge = next(o for o in body["offers"] if o["offer_id"] == "reach_gold")
        assert challenge["text"] == "Spend $4 to reach Gold"
        after = "2017-03-10T13:00:00Z"
        client.post("/v1/events", json=tx("u1", "m1", 200, ts=after), headers=EVENTS)   # $8.48: not yet
        assert not [e for e in points_of(app, "m1")["entries"] if e["m"].get("rule") == "tier_challenge"]
        client.post("/v1/events", json=tx("u2", "m1", 200, ts=after), headers=EVENTS)   # $10.48: Gold
        bonus = [e for e in points_of(app, "m1")["entries"] if e["m"].get("rule") == "tier_challenge"]
        assert len(bonus) == 1 and bonus[0]["points"] == 25
        assert (bonus[0]["m"]["from_tier"], bonus[0]["m"]["to_tier"]) == ("Base", "Gold")
        client.post("/v1/events", json=tx("u3", "m1", 5_000, ts=after), headers=EVENTS)  # already Gold: no more
        assert len([e for e in points_of(app, "m1")["entries"] if e["m"].get("rule") == "tier_challenge"]) == 1
    finally:
        close_app(app)


@pytest.mark.redis
def test_a_bonus_offer_with_a_minimum_basket_earns_only_on_a_basket_that_big(tmp_path: Path, tiny_dir: Path,
                                                                              redis_url: str) -> None:
    """"100 bonus points on a basket of $20 or more": the lines of one basket that arrive together
    count as one basket; a smaller basket earns only its base points."""
    offer = ("  - {id: big_basket, kind: bonus_points, title: 100 points on $20+, value: 100, min_spend: 20, "
             "caps: {issues: 2}}\n")
    text = (PROGRAM.replace("offers:\n", "offers:\n" + offer, 1)
            .replace("signup: 100", "signup: 0").replace("birthday: 50", "birthday: 0"))
    program = tmp_path / "program.yaml"
    program.write_text(text)
    app = start_points_app(tmp_path, tiny_dir, program, redis_url, CLOCK, "pt" + uuid.uuid4().hex[:8])
    client = app.test_client()
    try:
        resp = client.post("/v1/decisions", json={"member_id": "m3", "channel": "app", "n": 5},
                           headers={"X-API-Key": DECISIONS_KEY})
        assert "big_basket" in [o["offer_id"] for o in resp.get_json()["offers"]], resp.get_json()
        small = [tx("s1", "m3", 900, ts="2017-03-10T13:00:00Z", product_id="p1", basket_id="small"),
                 tx("s2", "m3", 900, ts="2017-03-10T13:00:00Z", product_id="p3", basket_id="small")]
        assert client.post("/v1/events", json=small, headers=EVENTS).status_code == 200
        assert not any(e["cause"].startswith("bonus:") for e in points_of(app, "m3")["entries"])
        big = [tx("b1", "m3", 1_200, ts="2017-03-10T14:00:00Z", product_id="p1", basket_id="big"),
               tx("b2", "m3", 900, ts="2017-03-10T14:00:00Z", product_id="p3", basket_id="big")]
        assert client.post("/v1/events", json=big, headers=EVENTS).status_code == 200
        bonus = [e for e in points_of(app, "m3")["entries"] if e["cause"].startswith("bonus:big_basket:")]
        assert len(bonus) == 1 and bonus[0]["points"] == 100  # once for the basket, not per line
    finally:
        close_app(app)
