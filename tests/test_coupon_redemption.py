"""Redeeming coupons: the checkout endpoint and redeem events, through Flask, on both stores."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from runtime.coupons.codes import Coupon, generate
from runtime.coupons.issuance import CouponSpec, commit
from runtime.events.log import read_segments
from runtime.stores import CapRequest
from service.app import create_app
from service.state import ServiceState
from tests.decisions_env import close_app
from tests.service_helpers import ADMIN_KEY, ALL_KEYS, EVENTS_KEY, make_settings

CLOCK = "2024-06-15T12:00:00+00:00"
NOW = int(datetime(2024, 6, 15, 12, tzinfo=UTC).timestamp())
EVENTS = {"X-API-Key": EVENTS_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
BEFORE = "2024-06-15T11:00:00Z"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    app = create_app(make_settings(tmp_path, api_keys=ALL_KEYS, clock=CLOCK, redis_url=url,
                                   redis_timeout_ms=5000, redis_connect_timeout_ms=5000))
    yield app
    close_app(app)


def state_of(app: Flask) -> ServiceState:
    state: ServiceState = app.extensions["offers"]
    return state


def issue(app: Flask, member: str = "m1", offer: str = "o1", at: int = NOW - 60, ttl: int = 3600) -> Coupon:
    """A coupon issued the way a decision issues one (the commit script)."""
    issued, _ = commit(state_of(app).store, member, [(CapRequest(offer), CouponSpec(ttl_seconds=ttl))], at, "d-1")
    assert issued[0].coupon is not None
    return issued[0].coupon


def checkout(app: Flask, code: str, member: str = "m1", offer: str = "o1", **extra: Any) -> Any:
    headers = {**EVENTS, **extra.pop("headers", {})}
    return app.test_client().post(f"/v1/coupons/{code}/redeem", json={"member_id": member, "offer_id": offer,
                                                                      **extra}, headers=headers)


def redemptions(app: Flask, member: str = "m1", offer: str = "o1") -> int:
    return state_of(app).store.fetch_member(member).state.counter("redeem", offer).total


def problem(resp: Any, status: int, slug: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body: dict[str, Any] = resp.get_json(force=True)
    assert body["type"] == f"/docs#problem-{slug}"
    return body


# -- the checkout endpoint ---------------------------------------------------------------------------
def test_checkout_redeems_a_coupon_once_and_records_the_redeem_event(app: Flask, tmp_path: Path) -> None:
    coupon = issue(app)
    resp = checkout(app, coupon.display.lower(), channel="pos")  # as typed
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["status"] == "redeemed" and body["redeemed_at"] == "2024-06-15T12:00:00Z"
    assert body["coupon"]["code"] == coupon.code and body["coupon"]["redeemed_event_id"] == body["event_id"]
    # recorded as POST /v1/events would: the member's redemption counter and the durable log
    assert redemptions(app) == 1
    [line] = [r for r in read_segments(tmp_path / "events") if r["type"] == "redeem"]
    assert line["coupon_code"] == coupon.code and line["member_id"] == "m1" and line["channel"] == "pos"
    looked_up = app.test_client().get(f"/v1/admin/coupons/{coupon.code}", headers=ADMIN).get_json()
    assert looked_up["redeemed_at"] == NOW
    # a second redemption: 409 with the first one's time, nothing recorded
    again = problem(checkout(app, coupon.code), 409, "coupon-already-redeemed")
    assert again["redeemed_at"] == "2024-06-15T12:00:00Z"
    assert again["errors"][0]["parameter"] == "code"
    assert redemptions(app) == 1


def test_checkout_checks_the_member_the_offer_the_expiry_and_the_code(app: Flask) -> None:
    coupon = issue(app)
    other = problem(checkout(app, coupon.code, member="m2"), 422, "validation-failed")
    assert other["errors"][0]["pointer"] == "/member_id"
    wrong = problem(checkout(app, coupon.code, offer="o2"), 422, "validation-failed")
    assert wrong["errors"][0]["pointer"] == "/offer_id"
    expired = issue(app, offer="o3", at=NOW - 7200, ttl=3600)  # expired an hour before the clock
    problem(checkout(app, expired.code, offer="o3"), 409, "coupon-expired")
    problem(checkout(app, generate()), 404, "not-found")
    bad = problem(checkout(app, "ABCD-EFGH-JKMN"), 422, "validation-failed")
    assert bad["errors"][0]["parameter"] == "code"
    missing = problem(checkout(app, coupon.code, member=None), 422, "validation-failed")
    assert missing["errors"][0]["pointer"] == "/member_id"
    assert redemptions(app) == redemptions(app, "m2") == redemptions(app, offer="o3") == 0
    # none of that used the coupon up
    assert checkout(app, coupon.code).status_code == 200


def test_checkout_retries_answer_the_first_redemption(app: Flask) -> None:
    coupon = issue(app)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = checkout(app, coupon.code, headers=key)
    replay = checkout(app, coupon.code, headers=key)
    assert first.status_code == replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_json() == first.get_json()
    # retrying with the event id that redeemed it is the same redemption, not a second one
    again = checkout(app, coupon.code, event_id=first.get_json()["event_id"])
    assert again.status_code == 200 and again.get_json()["redeemed_at"] == first.get_json()["redeemed_at"]
    assert redemptions(app) == 1
    # an event id another event already used is not taken for a redemption
    other = issue(app, offer="o2")
    assert checkout(app, other.code, offer="o2", event_id=first.get_json()["event_id"]).status_code == 409
    assert not Coupon.from_bytes(state_of(app).store.get_coupon(other.code) or b"").redeemed


def race_checkouts(app: Flask, code: str) -> list[int]:
    """Two threads redeem one code at once through the endpoint; their statuses."""
    start = threading.Barrier(2)
    statuses: list[int] = []

    def redeem() -> None:
        start.wait()
        statuses.append(checkout(app, code).status_code)

    threads = [threading.Thread(target=redeem) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


@pytest.mark.redis
def test_two_concurrent_checkouts_of_one_code_give_one_success(tmp_path: Path, redis_url: str) -> None:
    app = create_app(make_settings(tmp_path, api_keys=ALL_KEYS, clock=CLOCK, redis_url=redis_url,
                                   redis_timeout_ms=5000, redis_connect_timeout_ms=5000))
    try:
        for _ in range(10):
            assert sorted(race_checkouts(app, issue(app).code)) == [200, 409]
        assert redemptions(app) == 10
    finally:
        close_app(app)


# -- redeem events quoting a coupon ---------------------------------------------------------------------
def redeem_event(code: str, member: str = "m1", offer: str = "o1", event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or "r-" + uuid.uuid4().hex, "member_id": member, "type": "redeem",
            "offer_id": offer, "ts": BEFORE, "coupon_code": code}


def test_a_redeem_event_quoting_another_members_coupon_is_refused(app: Flask) -> None:
    coupon = issue(app)
    client = app.test_client()
    resp = client.post("/v1/events", json={"events": [
        {"event_id": "ok-1", "member_id": "m2", "type": "click", "offer_id": "o2", "ts": BEFORE},
        redeem_event(coupon.code, member="m2", offer="o2")]}, headers=EVENTS)
    body = problem(resp, 422, "validation-failed")
    assert body["errors"][0]["pointer"] == "/events/1/member_id"
    assert state_of(app).store.fetch_member("m2").state.counter("click", "o2").total == 0  # all or nothing
    assert not Coupon.from_bytes(state_of(app).store.get_coupon(coupon.code) or b"").redeemed
    unknown = problem(client.post("/v1/events", json=[redeem_event(generate())], headers=EVENTS),
                      422, "validation-failed")
    assert unknown["errors"][0]["pointer"] == "/0/coupon_code"


def test_a_redeem_event_redeems_its_coupon_once(app: Flask) -> None:
    coupon = issue(app)
    client = app.test_client()
    event = redeem_event(coupon.display)
    assert client.post("/v1/events", json=event, headers=EVENTS).get_json()["accepted"] == 1
    assert Coupon.from_bytes(state_of(app).store.get_coupon(coupon.code) or b"").redeemed_event_id == \
        event["event_id"]
    # the same event again is a duplicate, not a second redemption
    assert client.post("/v1/events", json=event, headers=EVENTS).get_json()["duplicates"] == 1
    second = problem(client.post("/v1/events", json=redeem_event(coupon.code), headers=EVENTS),
                     409, "coupon-already-redeemed")
    assert second["redeemed_at"] == BEFORE and second["errors"][0]["pointer"] == "/coupon_code"
    # the checkout endpoint sees the same redemption
    assert problem(checkout(app, coupon.code), 409, "coupon-already-redeemed")["redeemed_at"] == BEFORE
    assert redemptions(app) == 1
