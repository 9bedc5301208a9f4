"""Redis going away and coming back: problems instead of 500s, and recovery without a restart."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from runtime.stores import CapRequest, StoreUnavailable
from service.app import create_app
from service.state import ServiceState
from tests.conftest import RedisServer
from tests.service_helpers import ADMIN_KEY, EVENTS_KEY, make_settings

pytestmark = pytest.mark.redis

#: The service runs on OFFERS_CLOCK=TS (a fixed moment), so no test depends on today's date.
TS = datetime(2026, 5, 15, 12, tzinfo=UTC).isoformat()


def event(event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "member_id": "m1", "type": "click", "offer_id": "o1", "ts": TS}


@pytest.fixture
def app(private_redis: RedisServer, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(make_settings(tmp_path, redis_url=private_redis.url, clock=TS,
                                   api_keys=f"{EVENTS_KEY}:events;{ADMIN_KEY}:admin"))
    yield app
    app.extensions["offers"].close()


def metric(app: Flask, name: str) -> float:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{"))


def test_redis_down_gives_503_problems_then_recovers(app: Flask, private_redis: RedisServer) -> None:
    client = app.test_client()
    state: ServiceState = app.extensions["offers"]
    ev_headers, admin = {"X-API-Key": EVENTS_KEY}, {"X-API-Key": ADMIN_KEY}
    assert client.post("/v1/events", json=event("before"), headers=ev_headers).status_code == 200
    assert client.get("/readyz").status_code == 200

    private_redis.stop()
    resp = client.post("/v1/events", json=event("during"), headers=ev_headers)
    assert resp.status_code == 503 and resp.mimetype == "application/problem+json"
    assert resp.headers["Retry-After"] == "1"
    assert client.get("/v1/admin/members/m1/state", headers=admin).status_code == 503
    resp = client.post("/v1/events", json=event("idem"), headers={**ev_headers, "Idempotency-Key": "k"})
    assert resp.status_code == 503
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["stores"]["ok"] is False
    assert client.get("/healthz").status_code == 200  # alive, just not ready
    # a caller (the decision endpoint) catches one error type and computes without the cache
    with pytest.raises(StoreUnavailable):
        state.store.fetch_member("m1", "v1")
    with pytest.raises(StoreUnavailable):
        state.store.reserve("m1", [CapRequest("o1")], now=0)
    assert metric(app, "offers_redis_errors_total") >= 5

    private_redis.start()  # same port, empty data, no scripts loaded
    assert client.get("/readyz").status_code == 200
    resp = client.post("/v1/events", json=event("after"), headers=ev_headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["accepted"] == 1
    assert state.store.fetch_member("m1").state.counter("click", "o1").total == 1
    assert state.store.reserve("m1", [CapRequest("o1", member_limit=1)], now=1)[0].granted


def test_a_frozen_redis_times_out_quickly_and_thaws(app: Flask, private_redis: RedisServer) -> None:
    client = app.test_client()
    headers = {"X-API-Key": EVENTS_KEY}
    assert client.post("/v1/events", json=event("a"), headers=headers).status_code == 200
    assert private_redis.proc is not None
    os.kill(private_redis.proc.pid, signal.SIGSTOP)  # accepts connections, never answers
    try:
        assert client.post("/v1/events", json=event("b"), headers=headers).status_code == 503
        assert client.get("/readyz").status_code == 503
    finally:
        os.kill(private_redis.proc.pid, signal.SIGCONT)
    # no half-read reply is left on a pooled connection: the next answers are the right ones
    resp = client.post("/v1/events", json=[event("b"), event("a")], headers=headers)
    assert resp.status_code == 200
    statuses = [r["status"] for r in resp.get_json()["results"]]
    # "b" may or may not have been applied before the timeout; "a" certainly was
    assert statuses[1] == "duplicate"
    state: ServiceState = app.extensions["offers"]
    assert state.store.fetch_member("m1").state.counter("click", "o1").total == 2
