"""The points tests' shared world: a program whose points are hand-computed, and a service on
the tiny data directory with that program, its members materialized into a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask

from runtime.decisions.materialize import load_members, materialize
from service.app import create_app
from service.state import ServiceState
from tests.service_helpers import (
    ADMIN_KEY,
    ALL_KEYS,
    DECISIONS_KEY,
    EVENTS_KEY,
    make_settings,
)

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


def start_points_app(tmp_path: Path, data: Path, program: Path, redis_url: str, clock: str, prefix: str) -> Flask:
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


def tx(event_id: str, member: str, amount: int, ts: str = "2017-03-10T09:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "member_id": member, "type": "transaction", "ts": ts, "amount_minor": amount,
            **extra}


def points_of(app: Flask, member: str) -> dict[str, Any]:
    resp = app.test_client().get(f"/v1/members/{member}/points?entries=20", headers=READ)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    return body


def every_key_has_a_ttl(app: Flask) -> None:
    """Every key the app wrote (its prefix is unique to the test) expires."""
    store = app.extensions["offers"].store
    keys = list(store.client.scan_iter(match=store.keys.pattern(), count=1000))
    assert keys and all(store.client.ttl(k) > 0 for k in keys), [k for k in keys if store.client.ttl(k) <= 0]
