"""POST /v1/events end to end, on the in-process store and on a real Redis."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from runtime.coupons.codes import issue_coupon
from runtime.events.log import read_segments
from service.app import create_app
from service.state import ServiceState
from tests.service_helpers import EVENTS_KEY, make_settings

KEY = {"X-API-Key": EVENTS_KEY}
NEW_YORK = ZoneInfo("America/New_York")
#: A mid-month noon two months before the service's present (spend months are kept for the
#: last two years only). Both are fixed: the service runs on OFFERS_CLOCK=NOW, never today.
BASE = datetime(2026, 3, 15, 12, tzinfo=UTC)
NOW = BASE + timedelta(days=62)
TS = BASE.isoformat().replace("+00:00", "Z")
T = int(BASE.timestamp())
MONTH = BASE.strftime("%Y%m")
FIRST = BASE.replace(day=1, hour=2)  # 02:00 UTC on the 1st: still the previous month westwards


def ev(event_id: str, type_: str = "impression", member: str = "m1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"event_id": event_id, "member_id": member, "type": type_, "ts": TS}
    if type_ == "transaction" and "value" not in extra:
        body["amount_minor"] = 1000
    else:
        body["offer_id"] = "o1"
    body.update(extra)
    return body


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    app = create_app(make_settings(tmp_path, redis_url=redis_url, clock=NOW.isoformat(),
                                   api_keys=f"{EVENTS_KEY}:events", max_events_per_request=50))
    yield app
    state: ServiceState = app.extensions["offers"]
    if redis_url is not None:
        client = state.store.client  # type: ignore[attr-defined]
        keys = list(client.scan_iter(match=state.store.keys.pattern()))  # type: ignore[attr-defined]
        if keys:
            client.delete(*keys)
    state.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def state(app: Flask) -> ServiceState:
    return app.extensions["offers"]


def post(client: FlaskClient, body: object, **headers: str) -> Any:
    return client.post("/v1/events", json=body, headers={**KEY, **headers})


def pointers(resp: Any) -> list[str]:
    assert resp.status_code == 422, resp.get_data(as_text=True)
    return [e.get("pointer") for e in resp.get_json()["errors"]]


# -- accepted events --------------------------------------------------------------------
def test_a_single_event_is_accepted(client: FlaskClient) -> None:
    resp = post(client, ev("e1"))
    assert resp.status_code == 200
    assert resp.get_json() == {"accepted": 1, "duplicates": 0,
                               "results": [{"event_id": "e1", "status": "accepted"}]}


@pytest.mark.parametrize("shape", ["object", "list"])
def test_batches_in_both_shapes(client: FlaskClient, shape: str) -> None:
    events = [ev("e1"), ev("e2", "click"), ev("e3", "transaction"), ev("e4", "redeem"),
              ev("e5", "dismiss")]
    resp = post(client, {"events": events} if shape == "object" else events)
    assert resp.status_code == 200
    assert resp.get_json()["accepted"] == 5


def test_duplicates_are_ignored_and_reported(client: FlaskClient, state: ServiceState) -> None:
    resp = post(client, {"events": [ev("t1", "transaction"), ev("t1", "transaction"), ev("i1")]})
    assert [r["status"] for r in resp.get_json()["results"]] == ["accepted", "duplicate", "accepted"]
    resp = post(client, [ev("t1", "transaction"), ev("t2", "transaction")])
    assert resp.get_json()["duplicates"] == 1 and resp.get_json()["accepted"] == 1
    s = state.store.fetch_member("m1").state
    assert s.purchases == 2 and s.spend_minor == 2000
    assert s.counter("impression", "o1").total == 1


def test_an_event_updates_the_state_the_next_read_sees(client: FlaskClient, state: ServiceState) -> None:
    post(client, [ev("t1", "transaction", amount_minor=1999),
                  ev("t2", "transaction", value=12.5, ts=FIRST.astimezone(NEW_YORK).isoformat()),
                  ev("c1", "click", offer_id="o7")])
    s = state.store.fetch_member("m1").state
    assert s.spend_minor == 1999 + 1250 and s.purchases == 2
    assert s.monthly_spend == {MONTH: 1999 + 1250}  # the service's zone is UTC by default
    assert s.counter("click", "o7").recent == (T,)
    assert s.last_seen == T and s.last_purchase == T


def test_months_follow_the_program_time_zone(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, timezone="America/New_York", clock=NOW.isoformat()))
    app.test_client().post("/v1/events", json=ev("t", "transaction", ts=FIRST.isoformat()))
    state: ServiceState = app.extensions["offers"]
    previous = FIRST.astimezone(NEW_YORK).strftime("%Y%m")
    assert previous != MONTH
    assert state.store.fetch_member("m1").state.monthly_spend == {previous: 1000}
    state.close()


def test_an_event_invalidates_cached_scores(client: FlaskClient, state: ServiceState) -> None:
    state.store.put_scores("m1", "v1", [0.2, 0.4])
    state.store.put_scores("m2", "v1", [0.3])
    assert state.store.fetch_member("m1", "v1").cache_hit
    post(client, ev("e1"))
    assert not state.store.fetch_member("m1", "v1").cache_hit
    assert state.store.fetch_member("m2", "v1").cache_hit


def test_accepted_events_are_appended_to_the_durable_log(client: FlaskClient, state: ServiceState) -> None:
    # a redeem event quoting a code redeems it: the code must be m1's for o1 (docs/events.md)
    code = issue_coupon(state.store, "m1", "o1", 1_700_000_000, 4_000_000_000, prefix="SPR").code
    post(client, [ev("t1", "transaction", currency="USD", channel="pos"),
                  ev("r1", "redeem", decision_id="d-1", coupon_code=code.lower())],
         **{"X-Request-ID": "req-42"})
    post(client, [ev("t1", "transaction"), ev("i9")])  # t1 is a duplicate: not logged again
    records = read_segments(state.settings.event_log)
    assert [r["event_id"] for r in records] == ["t1", "r1", "i9"]
    t1, r1 = records[0], records[1]
    assert t1 == {"v": 1, "event_id": "t1", "member_id": "m1", "type": "transaction", "ts": TS,
                  "amount_minor": 1000, "currency": "USD", "channel": "pos",
                  "received_at": t1["received_at"], "request_id": "req-42"}
    assert r1["coupon_code"] == code and r1["decision_id"] == "d-1" and r1["offer_id"] == "o1"
    raw = [line for p in sorted(state.settings.event_log.glob("*.ndjson"))
           for line in p.read_text().splitlines()]
    assert len(raw) == 3  # exactly one line per accepted event
    assert all(json.loads(line)["v"] == 1 for line in raw)


def test_events_count_in_metrics(client: FlaskClient) -> None:
    post(client, [ev("a"), ev("a"), ev("b", "transaction")])
    text = client.get("/metrics").get_data(as_text=True)
    assert 'offers_events_total{status="accepted",type="impression"} 1.0' in text
    assert 'offers_events_total{status="duplicate",type="impression"} 1.0' in text
    assert 'offers_events_total{status="accepted",type="transaction"} 1.0' in text


# -- invalid events are named by pointer -----------------------------------------------------
def test_a_bad_event_in_a_batch_is_named_by_pointer(client: FlaskClient, state: ServiceState) -> None:
    events = [ev("e0"), ev("e1"), ev("e2"), ev("e3", ts="yesterday")]
    assert pointers(post(client, {"events": events})) == ["/events/3/ts"]
    assert pointers(post(client, events)) == ["/3/ts"]
    assert pointers(post(client, ev("e3", ts="2024-06-15T12:00:00"))) == ["/ts"]  # no offset
    # nothing of a rejected batch was applied or logged
    assert not state.store.fetch_member("m1").state.exists
    assert read_segments(state.settings.event_log) == []


@pytest.mark.parametrize("event, pointer", [
    ({"event_id": "e", "member_id": "m", "type": "click", "ts": TS}, "/events/0/offer_id"),
    ({"event_id": "e", "member_id": "m", "type": "transaction", "ts": TS}, "/events/0/amount_minor"),
    ({**ev("e"), "type": "purchase"}, "/events/0/type"),
    ({**ev("e"), "surprise": 1}, "/events/0/surprise"),
    ({**ev("e", "transaction"), "amount_minor": -5}, "/events/0/amount_minor"),
    ({**ev("e", "transaction"), "amount_minor": 12.5}, "/events/0/amount_minor"),
    (ev("e", "transaction", value=1.005), "/events/0/value"),
    (ev("e", "transaction", value=10.0, amount_minor=999), "/events/0/value"),
    (ev("e", currency="usd"), "/events/0/currency"),
    (ev("e", channel="telepathy"), "/events/0/channel"),
    (ev("e", coupon_code="ABCDE-FGHJK"), "/events/0/coupon_code"),
    (ev("e", ts=(NOW + timedelta(days=3)).isoformat()), "/events/0/ts"),
    (ev("e", ts=1718452800), "/events/0/ts"),
    (ev("e", member_id=1029), "/events/0/member_id"),
    ({"member_id": "m", "type": "click", "offer_id": "o", "ts": TS}, "/events/0/event_id"),
])
def test_each_rule_names_its_field(client: FlaskClient, event: dict[str, Any], pointer: str) -> None:
    event = {k: v for k, v in event.items() if v is not None}
    assert pointer in pointers(post(client, {"events": [event]}))


def test_all_bad_fields_are_reported_at_once(client: FlaskClient) -> None:
    got = pointers(post(client, {"events": [ev("a", member="bad id"), ev("b"), ev("c", ts="x")]}))
    assert got == ["/events/0/member_id", "/events/2/ts"]


def test_batch_shape_errors(client: FlaskClient) -> None:
    assert pointers(post(client, {"events": []})) == ["/events"]
    assert pointers(post(client, [])) == [""]
    assert pointers(post(client, {"events": [ev("e")], "extra": True})) == ["/extra"]
    assert pointers(post(client, {"events": "nope"})) == ["/events"]
    assert pointers(post(client, [ev(f"e{i}") for i in range(51)])) == [""]
    assert pointers(post(client, 42)) == [""]


# -- idempotency ---------------------------------------------------------------------------
def test_idempotent_replay_returns_the_first_response(client: FlaskClient, state: ServiceState) -> None:
    first = post(client, [ev("e1"), ev("e2")], **{"Idempotency-Key": "k-1"})
    again = post(client, [ev("e1"), ev("e2")], **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()  # "accepted", not "duplicate": a replay
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert state.store.fetch_member("m1").state.counter("impression", "o1").total == 2


def test_reusing_a_key_with_another_body_is_422(client: FlaskClient) -> None:
    post(client, ev("e1"), **{"Idempotency-Key": "k-2"})
    resp = post(client, ev("e2"), **{"Idempotency-Key": "k-2"})
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["type"] == "/docs#problem-idempotency-key-reused"
    assert body["errors"][0]["header"] == "Idempotency-Key"


def test_a_failed_request_releases_its_key(client: FlaskClient) -> None:
    assert post(client, ev("e1", ts="bad"), **{"Idempotency-Key": "k-3"}).status_code == 422
    assert post(client, ev("e1"), **{"Idempotency-Key": "k-3"}).status_code == 200


def test_a_key_in_flight_is_409(client: FlaskClient, state: ServiceState) -> None:
    body = json.dumps(ev("e1")).encode()
    scoped = hashlib.sha256("\n".join((state.keyring.keys[0].key_id, "POST", "/v1/events",
                                       "k-4")).encode()).hexdigest()
    assert state.store.idempotency_begin(scoped, hashlib.sha256(body).hexdigest(), 60) is None
    resp = client.post("/v1/events", data=body, content_type="application/json",
                       headers={**KEY, "Idempotency-Key": "k-4"})
    assert resp.status_code == 409 and resp.headers["Retry-After"] == "1"


def test_idempotency_keys_are_checked(client: FlaskClient) -> None:
    resp = post(client, ev("e1"), **{"Idempotency-Key": "x" * 256})
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["header"] == "Idempotency-Key"
    assert post(client, ev("e1"), **{"Idempotency-Key": "x" * 255}).status_code == 200


def test_every_idempotency_record_has_a_ttl_within_24_to_72_hours(client: FlaskClient,
                                                                   state: ServiceState) -> None:
    post(client, ev("e1"), **{"Idempotency-Key": "k-5"})
    assert 24 * 3600 <= state.settings.idempotency_ttl_seconds <= 72 * 3600
    assert state.store.ttls.idempotency == state.settings.idempotency_ttl_seconds  # type: ignore[attr-defined]
