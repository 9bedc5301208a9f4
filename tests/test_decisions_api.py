"""The decision endpoints through Flask's test client, on the in-process store and real Redis."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from models.features.online import RECORD
from service.app import create_app
from service.state import ServiceState
from tests.decisions_env import (
    CHANNEL,
    FLASH,
    FLASH_BUDGET,
    DecisionEnv,
    build,
    close_app,
    offer_products,
    start_app,
)
from tests.service_helpers import ADMIN_KEY, DECISIONS_KEY, EVENTS_KEY, make_settings

DECIDE = {"X-API-Key": DECISIONS_KEY}
EVENTS = {"X-API-Key": EVENTS_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
#: Events are stamped before the service clock (2025-11-12 12:00 UTC): features see them.
BEFORE = "2025-11-11T09:00:00Z"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "request_id"}


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def app(request: pytest.FixtureRequest, env: DecisionEnv, tmp_path: Path) -> Iterator[Flask]:
    env.promote(env.v1)
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    app = start_app(env.settings(tmp_path, redis_url=redis_url))
    yield app
    close_app(app)
    env.promote(env.v1)


@pytest.fixture
def memory_app(env: DecisionEnv, tmp_path: Path) -> Iterator[Flask]:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path))
    yield app
    close_app(app)
    env.promote(env.v1)


@pytest.fixture
def redis_app(env: DecisionEnv, tmp_path: Path, redis_url: str) -> Iterator[Flask]:
    env.promote(env.v1)
    # a pool and timeouts for 100 concurrent requests in one process
    app = start_app(env.settings(tmp_path, redis_url=redis_url, redis_max_connections=128,
                                 redis_timeout_ms=5000, redis_connect_timeout_ms=5000))
    yield app
    close_app(app)


def decide(client: FlaskClient, member: str, **extra: Any) -> dict[str, Any]:
    resp = client.post("/v1/decisions", json={"member_id": member, "channel": CHANNEL, **extra}, headers=DECIDE)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    return body


def greedy_decision(client: FlaskClient, member: str, tries: int = 30, **extra: Any) -> dict[str, Any]:
    """A decision that did not explore (each explores with the program's small share, drawn per
    decision id), so its slate is the model's greedy choice."""
    for _ in range(tries):
        body = decide(client, member, **extra)
        if body["offers"] and not any(o["explored"] for o in body["offers"]):
            return body
    raise AssertionError(f"{tries} decisions in a row explored")


def personalised_member(client: FlaskClient, env: DecisionEnv, skip: int = 0) -> str:
    """A member with history who gets a personalised decision (not in the holdout group)."""
    import pandas as pd

    members = pd.read_parquet(env.data / "members.parquet")
    found = 0
    for member in members.loc[members["channels"].fillna("").str.contains("email"), "member_id"]:
        body = client.get(f"/v1/members/{member}/offers?channel={CHANNEL}&n=1&exclude_offer_ids={FLASH}",
                          headers=DECIDE).get_json()
        if body["policy"] == "personalised" and body["offers"]:
            if found == skip:
                return str(member)
            found += 1
    raise AssertionError("no personalised member found")


def assert_problem(resp: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body: dict[str, Any] = resp.get_json(force=True)
    assert set(body) >= PROBLEM_FIELDS and body["status"] == status
    if slug is not None:
        assert body["type"] == f"/docs#problem-{slug}"
    return body


# -- the decision ------------------------------------------------------------------------------
def test_a_decision_returns_ranked_offers_with_coupons_and_the_tier(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    member = personalised_member(client, env)
    assert client.delete(f"/v1/admin/members/{member}/cache", headers=ADMIN).status_code == 204
    body = decide(client, member, n=3, placement="home_banner")
    assert set(body) >= {"decision_id", "model_version", "member", "offers", "excluded", "holdout", "took_ms"}
    assert body["model_version"] == env.v1 and body["as_of"] == "2025-11-12T12:00:00Z"
    assert body["placement"] == "home_banner" and body["policy"] == "personalised" and not body["holdout"]
    assert body["history"] == "ok" and body["scores"] == "computed" and body["degraded"] is None
    assert body["member"]["member_id"] == member and body["member"]["tier"] in ("Bronze", "Silver", "Gold")
    assert 0 <= body["member"]["progress"] <= 1
    offers = body["offers"]
    assert 1 <= len(offers) <= 3 and [o["rank"] for o in offers] == list(range(1, len(offers) + 1))
    if not body["explored"]:  # 10% of decisions explore (synthetic.yaml): then any order goes
        assert offers[0]["offer_id"] == FLASH  # the budgeted bonus tops every greedy slate (lever 50)
    for o in offers:
        assert set(o) >= {"offer_id", "kind", "title", "value", "propensity", "priority", "explored",
                          "probability", "tier_promo", "reasons"}
        assert o["requires_coupon"] == ("coupon_code" in o) and ("expires_at" in o) == o["requires_coupon"]
        # a value always says its unit (money in minor units, percent, multiplier or points)
        assert o["value_unit"] in ("currency_minor", "percent", "multiplier", "points")
        assert (o["value_display"] is None) == (not o["value"])
    assert all(e["reason"] for e in body["excluded"])
    again = decide(client, member, n=3)
    assert again["scores"] == "cache" and again["decision_id"] != body["decision_id"]
    if any(o["offer_id"] == FLASH for o in offers):
        assert {"offer_id": FLASH, "reason": "MEMBER_CAP_REACHED"} in again["excluded"]


def test_apps_get_the_same_decision_by_get(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    member = personalised_member(client, env)
    resp = client.get(f"/v1/members/{member}/offers?channel={CHANNEL}&n=2&explain=true&placement=app_home",
                      headers=DECIDE)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert len(body["offers"]) == 2 and body["placement"] == "app_home"
    post = decide(client, member, n=2, exclude_offer_ids=[FLASH])
    assert FLASH not in [o["offer_id"] for o in post["offers"]]


def test_explain_adds_the_models_top_features(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    member = personalised_member(client, env)
    body = decide(client, member, explain=True, exclude_offer_ids=[FLASH])
    reasons = [r for o in body["offers"] for r in o["reasons"] if r.startswith("FEATURE:")]
    assert reasons and body["scores"] == "computed"


def test_an_unknown_member_gets_a_cold_start_decision(app: Flask) -> None:
    body = decide(app.test_client(), "nobody-" + uuid.uuid4().hex[:8])
    assert body["policy"] in ("cold_start", "holdout") and body["history"] == "none"
    assert body["member"]["known"] is False and body["offers"]
    assert all(any("FALLBACK" in r for r in o["reasons"]) for o in body["offers"])


def test_a_replayed_decision_keeps_its_coupon_codes(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    member = personalised_member(client, env)
    headers = {**DECIDE, "Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/v1/decisions", json={"member_id": member, "channel": CHANNEL}, headers=headers)
    again = client.post("/v1/decisions", json={"member_id": member, "channel": CHANNEL}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert [o.get("coupon_code") for o in first.get_json()["offers"]] == \
        [o.get("coupon_code") for o in again.get_json()["offers"]]
    other = client.post("/v1/decisions", json={"member_id": member, "channel": "app"}, headers=headers)
    assert_problem(other, 422, "idempotency-key-reused")
    # the coupon is findable by its code
    code = next(o["coupon_code"] for o in first.get_json()["offers"] if "coupon_code" in o)
    coupon = client.get(f"/v1/admin/coupons/{code}", headers=ADMIN).get_json()
    assert coupon["member_id"] == member and coupon["decision_id"] == first.get_json()["decision_id"]


# -- feedback is visible to the very next decision ------------------------------------------------
def test_a_redemption_caps_the_offer_in_the_next_decision(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    member = personalised_member(client, env)
    before = decide(client, member, n=10, exclude_offer_ids=[FLASH])
    capped = next(o["offer_id"] for o in before["offers"] if o["kind"] in ("amount_off", "percent_off"))
    resp = client.post("/v1/events", json={"event_id": "r-" + uuid.uuid4().hex, "member_id": member,
                                           "type": "redeem", "offer_id": capped, "ts": BEFORE,
                                           "decision_id": before["decision_id"]}, headers=EVENTS)
    assert resp.status_code == 200 and resp.get_json()["accepted"] == 1
    after = decide(client, member, exclude_offer_ids=[FLASH])
    assert capped not in [o["offer_id"] for o in after["offers"]]
    assert {"offer_id": capped, "reason": "MEMBER_CAP_REACHED"} in after["excluded"]
    assert after["scores"] == "computed"  # the event dropped the cached scores


def test_a_transaction_changes_the_features_and_scores(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    member = personalised_member(client, env)
    first = greedy_decision(client, member, n=10, exclude_offer_ids=[FLASH])
    assert decide(client, member, n=10, exclude_offer_ids=[FLASH])["scores"] == "cache"
    # the best-scored offer of a greedy slate (an exploring one is drawn at random per request)
    target = max(first["offers"], key=lambda o: o["propensity"])
    product = offer_products(env)[target["offer_id"]][0]
    event = {"event_id": "t-" + uuid.uuid4().hex, "member_id": member, "type": "transaction", "ts": BEFORE,
             "amount_minor": 25_000, "product_id": product, "basket_id": "bk-1", "discount_minor": 500}
    assert client.post("/v1/events", json=event, headers=EVENTS).get_json()["accepted"] == 1
    assert decide(client, member, n=10, exclude_offer_ids=[FLASH])["scores"] == "computed"
    after = greedy_decision(client, member, n=10, exclude_offer_ids=[FLASH])
    before_p = {o["offer_id"]: o["propensity"] for o in first["offers"]}
    after_p = {o["offer_id"]: o["propensity"] for o in after["offers"]}
    assert after_p != before_p
    # spend on an offer's own product never lowers its propensity (a monotone constraint in training),
    # so the greedy slate keeps it (1e-5: either side may come through the score cache's 3-byte codes)
    assert after_p[target["offer_id"]] >= before_p[target["offer_id"]] * (1 - 1e-5)


def test_duplicate_events_are_applied_once(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    state: ServiceState = app.extensions["offers"]
    member = personalised_member(client, env)
    length = state.store.fetch_member(member).history_length
    event = {"event_id": "dup-" + uuid.uuid4().hex, "member_id": member, "type": "transaction", "ts": BEFORE,
             "amount_minor": 999}
    assert client.post("/v1/events", json=event, headers=EVENTS).get_json()["accepted"] == 1
    assert client.post("/v1/events", json=[event, event], headers=EVENTS).get_json()["duplicates"] == 2
    assert state.store.fetch_member(member).history_length == length + RECORD.itemsize


# -- caps and budgets under concurrency ---------------------------------------------------------------
@pytest.mark.redis
def test_100_concurrent_decisions_never_over_issue_a_capped_offer(redis_app: Flask, env: DecisionEnv) -> None:
    import pandas as pd

    members = [str(m) for m in pd.read_parquet(env.data / "members.parquet")["member_id"]][:100]
    start = threading.Barrier(100)
    got: list[dict[str, Any]] = []
    lock = threading.Lock()

    def worker(member: str) -> None:
        client = redis_app.test_client()
        start.wait()
        resp = client.post("/v1/decisions", json={"member_id": member, "channel": "email"}, headers=DECIDE)
        with lock:
            got.append(resp.get_json() | {"status": resp.status_code})

    threads = [threading.Thread(target=worker, args=(m,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [g["status"] for g in got] == [200] * 100
    assert [g["degraded"] for g in got] == [None] * 100
    granted = [g for g in got if any(o["offer_id"] == FLASH for o in g["offers"])]
    refused = [g for g in got if {"offer_id": FLASH, "reason": "BUDGET_EXHAUSTED"} in g["excluded"]]
    assert len(granted) == FLASH_BUDGET
    assert all("coupon_code" in next(o for o in g["offers"] if o["offer_id"] == FLASH) for g in granted)
    state: ServiceState = redis_app.extensions["offers"]
    assert state.store.budget_usage([(FLASH, "total")])[(FLASH, "total")].count == FLASH_BUDGET
    assert refused  # the others were refused the exhausted budget, or not eligible (no email...)


@pytest.mark.redis
def test_one_member_hammered_concurrently_gets_the_capped_offer_once(redis_app: Flask) -> None:
    start = threading.Barrier(40)
    flashes: list[int] = []

    def worker() -> None:
        client = redis_app.test_client()
        start.wait()
        body = client.post("/v1/decisions", json={"member_id": "M00000002", "channel": "email"},
                           headers=DECIDE).get_json()
        flashes.append(sum(o["offer_id"] == FLASH for o in body["offers"]))

    threads = [threading.Thread(target=worker) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(flashes) == 40 and sum(flashes) == 1


# -- every error is a problem ------------------------------------------------------------------------
BAD_BODIES = [
    ({"channel": "email"}, "/member_id"),
    ({"member_id": "m 1", "channel": "email"}, "/member_id"),
    ({"member_id": "m1", "channel": "fax"}, "/channel"),
    ({"member_id": "m1", "channel": "email", "n": 0}, "/n"),
    ({"member_id": "m1", "channel": "email", "n": 10_000}, "/n"),
    ({"member_id": "m1", "channel": "email", "surprise": 1}, "/surprise"),
    ({"member_id": "m1", "channel": "email", "exclude_offer_ids": ["a:b"]}, "/exclude_offer_ids/0"),
    ({"member_id": "m1", "channel": "email", "context": {"as_of": "yesterday"}}, "/context/as_of"),
    ({"member_id": "m1", "channel": "email", "context": {"as_of": "2025-11-01"}}, "/context/as_of"),
    ({"member_id": "m1", "channel": "email", "explain": "very"}, "/explain"),
]


@pytest.mark.parametrize("body, pointer", BAD_BODIES)
def test_invalid_requests_are_422_naming_the_field(memory_app: Flask, body: dict[str, Any], pointer: str) -> None:
    problem = assert_problem(memory_app.test_client().post("/v1/decisions", json=body, headers=DECIDE), 422,
                             "validation-failed")
    assert pointer in [e.get("pointer") for e in problem["errors"]]


def test_every_other_error_path_is_a_problem(memory_app: Flask, env: DecisionEnv, tmp_path: Path) -> None:
    client = memory_app.test_client()
    assert_problem(client.post("/v1/decisions", data="{", content_type="application/json", headers=DECIDE),
                   400, "malformed-json")
    assert_problem(client.post("/v1/decisions", data="x", content_type="text/plain", headers=DECIDE), 415)
    assert_problem(client.post("/v1/decisions", json=[1], headers=DECIDE), 422)
    assert_problem(client.post("/v1/decisions", json={"member_id": "m1", "channel": "email"}), 401, "unauthorized")
    assert_problem(client.post("/v1/decisions", json={"member_id": "m1", "channel": "email"}, headers=EVENTS),
                   403, "forbidden")
    assert_problem(client.get("/v1/decisions", headers=DECIDE), 405)
    bad_query = assert_problem(client.get("/v1/members/m1/offers?channel=fax&colour=red", headers=DECIDE), 422)
    assert {e["parameter"] for e in bad_query["errors"]} == {"channel", "colour"}
    assert_problem(client.get("/v1/members/m%201/offers", headers=DECIDE), 422)
    assert_problem(client.get("/v1/members/m1/offers?n=zero", headers=DECIDE), 422)
    assert_problem(client.post("/v1/models/reload", headers=DECIDE), 403)
    assert_problem(client.post("/v1/decisions", json={"member_id": "m1", "channel": "email"},
                               headers={**DECIDE, "Idempotency-Key": "x" * 300}), 422)
    dupes = assert_problem(client.post("/v1/decisions/batch", json={"member_ids": ["a", "b", "a"],
                                                                    "channel": "email"}, headers=DECIDE), 422)
    assert dupes["errors"][0]["pointer"] == "/member_ids/2"
    too_many = {"member_ids": [f"m{i}" for i in range(10_001)], "channel": "email"}
    long = assert_problem(client.post("/v1/decisions/batch", json=too_many, headers=DECIDE), 422)
    assert long["errors"][0]["pointer"] == "/member_ids"
    # a service without data: decisions are not configured
    bare = create_app(make_settings(tmp_path / "bare", api_keys=f"{DECISIONS_KEY}:decisions;{ADMIN_KEY}:admin"))
    try:
        problem = assert_problem(bare.test_client().post("/v1/decisions", json={"member_id": "m1", "channel": "app"},
                                                         headers=DECIDE), 503, "service-unavailable")
        assert "OFFERS_DATA" in problem["detail"]
        assert_problem(bare.test_client().get("/v1/models", headers=DECIDE), 503)
    finally:
        bare.extensions["offers"].close()


def test_a_registry_without_a_usable_champion_is_not_ready(env: DecisionEnv, tmp_path: Path) -> None:
    """No champion was ever good (an earlier good one would serve: tests/test_model_safety.py)."""
    from models.registry import Registry

    registry = tmp_path / "registry"
    for version in (env.bad, env.v1):
        shutil.copytree(env.registry / "versions" / version, registry / "versions" / version)
    Registry(registry).promote(env.bad, check=False)
    app = start_app(env.settings(tmp_path, registry=registry))
    try:
        client = app.test_client()
        ready = client.get("/readyz").get_json()
        assert ready["checks"]["model"]["ok"] is False and "checksum" in ready["checks"]["model"]["detail"]
        assert ready["checks"]["decisions"]["ok"] is True
        problem = assert_problem(client.post("/v1/decisions", json={"member_id": "m1", "channel": "email"},
                                             headers=DECIDE), 503)
        assert "not loaded" in problem["detail"]
        # the champion is fine again: the next request's check loads it in the background
        Registry(registry).promote(env.v1)
        service = app.extensions["offers"].decisions
        service.holder.check_interval = 0.0
        client.post("/v1/decisions", json={"member_id": "m1", "channel": "email"}, headers=DECIDE)
        assert service.holder.wait_idle()
        assert decide(client, "m1")["model_version"] == env.v1
        assert client.get("/readyz").status_code == 200
    finally:
        close_app(app)


MEMBERS = [f"M{i:08d}" for i in range(2, 12)]


def test_the_same_decisions_come_from_compiled_trees_and_from_lightgbm(env: DecisionEnv, tmp_path: Path) -> None:
    """OFFERS_COMPILE_MODEL=false serves Booster.predict; every propensity is the same either way.

    (Which offers are returned may differ: the exploration policy draws at random per request.)
    """
    env.promote(env.v1)
    outcomes: dict[bool, dict[tuple[str, str], float]] = {}
    for compiled in (True, False):
        app = start_app(env.settings(tmp_path / str(compiled), compile_model=compiled))
        try:
            client = app.test_client()
            assert client.get("/v1/models", headers=DECIDE).get_json()["serving"]["predictor"] == (
                "lleaves" if compiled else "lightgbm")
            outcomes[compiled] = {(m, o["offer_id"]): o["propensity"] for m in MEMBERS
                                  for _ in range(3) for o in decide(client, m)["offers"]}
        finally:
            close_app(app)
    common = outcomes[True].keys() & outcomes[False].keys()
    assert len(common) >= 10
    assert {k: outcomes[True][k] for k in common} == {k: outcomes[False][k] for k in common}


# -- models: list, reload, refuse a bad one, swap under load -----------------------------------------
def test_models_are_listed_and_reloaded_and_a_bad_one_is_refused(memory_app: Flask, env: DecisionEnv) -> None:
    client = memory_app.test_client()
    listed = client.get("/v1/models", headers=DECIDE).get_json()
    assert listed["serving"]["version"] == env.v1 and listed["aliases"]["champion"] == env.v1
    assert listed["serving"]["predictor"] == "lleaves"  # compiled trees, verified against LightGBM
    assert {v["version"] for v in listed["versions"]} >= {env.v1, env.v2, env.bad}
    assert client.post("/v1/models/reload", headers=ADMIN).get_json()["changed"] is False
    env.promote(env.v2)
    reloaded = client.post("/v1/models/reload", headers=ADMIN).get_json()
    assert reloaded["changed"] is True and reloaded["serving"]["version"] == env.v2
    assert reloaded["previous"] == env.v1
    assert decide(client, "M00000002")["model_version"] == env.v2
    env.promote(env.bad)
    problem = assert_problem(client.post("/v1/models/reload", headers=ADMIN), 409, "model-rejected")
    assert "checksum" in problem["detail"] and env.v2 in problem["detail"]
    assert decide(client, "M00000002")["model_version"] == env.v2
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'offers_model_reloads_total{result="rejected"}' in metrics
    assert 'offers_decisions_total{holdout="false",model_version="' + env.v2 in metrics


def test_a_reload_under_load_drops_no_request(memory_app: Flask, env: DecisionEnv) -> None:
    stop = threading.Event()
    seen: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def traffic(i: int) -> None:
        client = memory_app.test_client()
        n = 0
        while not stop.is_set():
            resp = client.post("/v1/decisions", json={"member_id": f"M0000{i:04d}", "channel": "email"},
                               headers=DECIDE)
            with lock:
                seen.append((resp.status_code, (resp.get_json() or {}).get("model_version")))
            n += 1

    threads = [threading.Thread(target=traffic, args=(i + 10,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        while sum(1 for _ in seen) < 20:
            stop.wait(0.01)
        env.promote(env.v2)
        client = memory_app.test_client()
        assert client.post("/v1/models/reload", headers=ADMIN).get_json()["serving"]["version"] == env.v2
        mark = len(seen)
        while len(seen) < mark + 20:
            stop.wait(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert {status for status, _ in seen} == {200}
    versions = [v for _, v in seen]
    assert versions[0] == env.v1 and versions[-1] == env.v2


# -- Redis going away mid-traffic -----------------------------------------------------------------------
@pytest.mark.redis
def test_redis_stopping_and_restarting_mid_traffic_fails_no_decision(env: DecisionEnv, tmp_path: Path,
                                                                    private_redis: Any) -> None:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path, redis_url=private_redis.url))
    stop = threading.Event()
    seen: list[tuple[int, str | None, bool]] = []
    lock = threading.Lock()

    def traffic(i: int) -> None:
        client = app.test_client()
        k = 0
        while not stop.is_set():
            resp = client.post("/v1/decisions", json={"member_id": f"M0000{(i * 50 + k) % 900 + 1:04d}",
                                                      "channel": "email"}, headers=DECIDE)
            body = resp.get_json() or {}
            has_coupon = any("coupon_code" in o for o in body.get("offers", []))
            with lock:
                seen.append((resp.status_code, body.get("degraded"), has_coupon))
            k += 1

    def wait_for(predicate: Any) -> None:
        while not predicate():
            stop.wait(0.01)

    threads = [threading.Thread(target=traffic, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(seen) >= 10)
        private_redis.stop()
        mark = len(seen)
        wait_for(lambda: sum(1 for s in seen[mark:] if s[1] == "store_unavailable") >= 10)
        private_redis.start()  # empty: flagged as lost (capped offers withheld) until re-materialized
        mark = len(seen)
        wait_for(lambda: sum(1 for s in seen[mark:] if s[1] == "store_data_lost") >= 10)
        # the emptied store knows nobody: no codes (coupons.unknown_members is off, caps untrusted)
        assert not any(s[2] for s in seen[mark:] if s[1] == "store_data_lost")
        materialize_into(app, env)  # what an operator runs after a wipe: normal decisions and codes
        mark = len(seen)
        wait_for(lambda: sum(1 for s in seen[mark:] if s[1] is None and s[2]) >= 10)
    finally:
        stop.set()
        for t in threads:
            t.join()
        close_app(app)
    assert {s[0] for s in seen} == {200}
    assert not any(s[2] for s in seen if s[1] == "store_unavailable")  # no coupons while degraded
    metrics_seen = [s for s in seen if s[1] == "store_unavailable"]
    assert metrics_seen


def materialize_into(app: Flask, env: DecisionEnv) -> None:
    """``offers materialize`` into the app's store (the members' history and profiles)."""
    from runtime.decisions.materialize import load_members, materialize

    setup = app.extensions["offers"].decisions.setup
    assert setup is not None
    materialize(app.extensions["offers"].store, setup, *load_members(setup, env.data))


def test_transaction_line_fields_are_validated_and_logged(memory_app: Flask) -> None:
    from runtime.events.log import read_segments

    client = memory_app.test_client()
    bad = client.post("/v1/events", json=[
        {"event_id": "x1", "member_id": "m1", "type": "click", "offer_id": "o1", "ts": BEFORE, "product_id": "p1"},
        {"event_id": "x2", "member_id": "m1", "type": "transaction", "ts": BEFORE, "amount_minor": 100,
         "discount_minor": 5, "coupon_discount_minor": 9}], headers=EVENTS)
    problem = assert_problem(bad, 422, "validation-failed")
    assert {e["pointer"] for e in problem["errors"]} == {"/0/product_id", "/1/coupon_discount_minor"}
    line = {"event_id": "x3", "member_id": "m1", "type": "transaction", "ts": BEFORE, "amount_minor": 100,
            "product_id": "P000001", "basket_id": "b9", "discount_minor": 9, "coupon_discount_minor": 5}
    assert client.post("/v1/events", json=line, headers=EVENTS).get_json()["accepted"] == 1
    state: ServiceState = memory_app.extensions["offers"]
    logged = [r for r in read_segments(state.settings.event_log) if r["event_id"] == "x3"]
    assert logged and {k: logged[0][k] for k in ("product_id", "basket_id", "discount_minor",
                                                 "coupon_discount_minor")} == {
        "product_id": "P000001", "basket_id": "b9", "discount_minor": 9, "coupon_discount_minor": 5}
    assert state.store.fetch_member("m1").history_length == RECORD.itemsize


# -- coupons: the same code while it is held, none for unknown members ------------------------------------
def coupon_codes(body: dict[str, Any]) -> dict[str, str]:
    return {o["offer_id"]: o["coupon_code"] for o in body["offers"] if "coupon_code" in o}


def test_asking_again_returns_the_code_the_member_still_holds(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    member = personalised_member(client, env)
    first = coupon_codes(decide(client, member, n=10, exclude_offer_ids=[FLASH]))
    assert first
    seen: dict[str, set[str]] = {o: {c} for o, c in first.items()}
    for _ in range(5):
        for offer, code in coupon_codes(decide(client, member, n=10, exclude_offer_ids=[FLASH])).items():
            seen.setdefault(offer, set()).add(code)
    assert all(len(codes) == 1 for codes in seen.values()), seen
    # once redeemed, the code is used up: redeeming it again is refused
    offer, code = next(iter(first.items()))
    resp = client.post(f"/v1/coupons/{code}/redeem", json={"member_id": member, "offer_id": offer}, headers=EVENTS)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert client.post(f"/v1/coupons/{code}/redeem", json={"member_id": member, "offer_id": offer},
                       headers=EVENTS).status_code == 409


def test_unknown_members_get_no_codes_unless_the_program_allows(app: Flask, env: DecisionEnv,
                                                                tmp_path: Path) -> None:
    unknown = "typo-" + uuid.uuid4().hex[:8]
    body = decide(app.test_client(), unknown, n=10)
    assert body["member"]["known"] is False and body["offers"]
    assert not coupon_codes(body) and not any(o["requires_coupon"] for o in body["offers"])
    assert any(e["reason"] == "UNKNOWN_MEMBER" for e in body["excluded"])
    assert "UNKNOWN_MEMBER" not in {e["reason"] for e in decide(app.test_client(), personalised_member(
        app.test_client(), env), n=10)["excluded"]}
    # the program setting turns codes for unknown members on
    program = tmp_path / "program.yaml"
    program.write_text(env.program.read_text() + "\ncoupons:\n  unknown_members: true\n")
    allowed = start_app(env.settings(tmp_path / "allowed", program=program))
    try:
        assert coupon_codes(decide(allowed.test_client(), unknown, n=10))
    finally:
        close_app(allowed)
