"""The live catalog's admin API through the Flask app: validation, audit, pause, retire, create.

The decision environment's program has ``flash_bonus`` (a bonus that tops every greedy slate,
lever 50): pausing it must take it out of every decision (real-time and batch) with the reason
``OFFER_PAUSED``, on the in-process store and on real Redis. Member histories and cached score
vectors must stay valid across a change: same fingerprint, ``history: ok``, the cache still hit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient

from runtime.apikeys import digest
from tests.decisions_env import CHANNEL, FLASH, DecisionEnv, build, close_app, start_app
from tests.service_helpers import ADMIN_KEY, DECISIONS_KEY

DECIDE = {"X-API-Key": DECISIONS_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
WHO = f"key:{digest(ADMIN_KEY).hex()[:8]}"
NEW_OFFER = {"kind": "bonus_points", "title": "Weekend triple", "value": 300, "cost": 1, "lever": 80,
             "channels": ["email"]}


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


@pytest.fixture
def memory_app(env: DecisionEnv, tmp_path: Path) -> Iterator[Flask]:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path))
    yield app
    close_app(app)


def email_members(env: DecisionEnv) -> list[str]:
    """Members reachable by e-mail, in the data's order."""
    members = pd.read_parquet(env.data / "members.parquet")
    return [str(m) for m in members.loc[members["channels"].fillna("").str.contains("email"), "member_id"]]


def decide(client: FlaskClient, member: str, **extra: Any) -> dict[str, Any]:
    resp = client.post("/v1/decisions", json={"member_id": member, "channel": CHANNEL, "n": 5, **extra},
                       headers=DECIDE)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    return body


def greedy(client: FlaskClient, members: list[str]) -> dict[str, Any]:
    """The first decision that did not explore (10% do), so its top offer is the greedy one.

    Each member is decided once: an exploring decision commits its offers, and with a capped
    offer (one issue per member) a second decision for the same member would no longer show it.
    """
    for member in members:
        body = decide(client, member)
        if body["offers"] and not body["explored"]:
            return body
    raise AssertionError(f"{len(members)} decisions in a row explored")


def shown(body: dict[str, Any]) -> list[str]:
    return [o["offer_id"] for o in body["offers"]]


def reasons(body: dict[str, Any]) -> dict[str, str]:
    return {e["offer_id"]: e["reason"] for e in body["excluded"]}


def problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body: dict[str, Any] = resp.get_json(force=True)
    return body


def test_a_paused_offer_is_never_issued_until_it_is_resumed(app: Flask, env: DecisionEnv) -> None:
    client = app.test_client()
    members = email_members(env)
    assert greedy(client, members[60:90])["offers"][0]["offer_id"] == FLASH

    resp = client.patch(f"/v1/admin/offers/{FLASH}", json={"status": "paused"}, headers=ADMIN)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["status"] == "paused" and body["version"] == 1 and resp.headers["ETag"] == '"1"'
    assert body["change"]["op"] == "pause" and body["change"]["who"] == WHO
    for member in members[1:6]:
        decision = decide(client, member)
        assert FLASH not in shown(decision) and reasons(decision)[FLASH] == "OFFER_PAUSED"
    batch = client.post("/v1/decisions/batch", json={"member_ids": members[6:30], "channel": CHANNEL, "n": 5},
                        headers=DECIDE)
    assert batch.status_code == 200, batch.get_data(as_text=True)
    lines = [json.loads(line) for line in batch.get_data(as_text=True).splitlines()]
    decided = [line for line in lines if "member_id" in line]
    assert len(decided) == 24 and all(FLASH not in shown(d) for d in decided)
    listed = {o["offer_id"]: o for o in client.get("/v1/admin/offers", headers=ADMIN).get_json()["offers"]}
    assert listed[FLASH]["status"] == "paused" and listed[FLASH]["updated_by"] == WHO

    resumed = client.patch(f"/v1/admin/offers/{FLASH}", json={"status": "active"}, headers=ADMIN)
    assert resumed.get_json()["change"]["op"] == "resume"
    assert greedy(client, members[90:120])["offers"][0]["offer_id"] == FLASH


def test_invalid_bodies_name_the_field_and_write_nothing(memory_app: Flask) -> None:
    client = memory_app.test_client()
    cases = [
        ({**NEW_OFFER, "caps": {"issues": 0}}, "/caps/issues", "greater than 0"),
        ({**NEW_OFFER, "kind": "mystery"}, "/kind", "Input should be"),
        ({**NEW_OFFER, "tiers": ["Platinum"]}, "/tiers/0", "unknown tier 'Platinum'"),
        ({**NEW_OFFER, "channels": ["fax"]}, "/channels/0", "unknown channel 'fax'"),
        ({**NEW_OFFER, "colour": "red"}, "/colour", "unknown key"),
        ({**NEW_OFFER, "id": "other"}, "/id", "must be the path's offer id"),
        ({**NEW_OFFER, "status": "retired"}, "/status", "DELETE retires"),
        ({k: v for k, v in NEW_OFFER.items() if k != "title"}, "/title", "required key is missing"),
        ({**NEW_OFFER, "budget": {"money": 100}, "cost": None}, "/budget/money", "needs the offer's cost"),
    ]
    for body, pointer, message in cases:
        found = problem(client.put("/v1/admin/offers/weekend", json=body, headers=ADMIN), 422)
        assert {e["pointer"] for e in found["errors"]} == {pointer}, (body, found)
        assert message in found["errors"][0]["message"], found
    problem(client.put("/v1/admin/offers/weekend", json=[NEW_OFFER], headers=ADMIN), 422)
    problem(client.put("/v1/admin/offers/weekend", data="{", content_type="application/json", headers=ADMIN), 400)
    problem(client.put("/v1/admin/offers/bad%20id", json=NEW_OFFER, headers=ADMIN), 422)
    problem(client.patch(f"/v1/admin/offers/{FLASH}", json={}, headers=ADMIN), 422)
    data_offer = next(o["offer_id"] for o in client.get("/v1/admin/offers", headers=ADMIN).get_json()["offers"]
                      if o["source"] == "contract")
    found = problem(client.patch(f"/v1/admin/offers/{data_offer}", json={"value": 5}, headers=ADMIN), 422)
    assert found["errors"][0]["pointer"] == "/value" and "PATCH only its status" in found["errors"][0]["message"]
    problem(client.patch("/v1/admin/offers/no-such-offer", json={"status": "paused"}, headers=ADMIN), 404)
    problem(client.delete("/v1/admin/offers/no-such-offer", headers=ADMIN), 404)
    listed = client.get("/v1/admin/offers", headers=ADMIN).get_json()
    assert listed["version"] == 0 and "weekend" not in {o["offer_id"] for o in listed["offers"]}


def test_only_admin_keys_change_the_catalog(memory_app: Flask) -> None:
    client = memory_app.test_client()
    for call in (lambda h: client.get("/v1/admin/offers", headers=h),
                 lambda h: client.patch(f"/v1/admin/offers/{FLASH}", json={"status": "paused"}, headers=h),
                 lambda h: client.put("/v1/admin/offers/weekend", json=NEW_OFFER, headers=h),
                 lambda h: client.delete(f"/v1/admin/offers/{FLASH}", headers=h)):
        problem(call({}), 401)
        problem(call(DECIDE), 403)
    assert client.get("/v1/admin/offers", headers=ADMIN).get_json()["version"] == 0


def test_every_change_is_versioned_and_audited(memory_app: Flask, env: DecisionEnv) -> None:
    client = memory_app.test_client()
    created = client.put("/v1/admin/offers/weekend", json=NEW_OFFER, headers=ADMIN)
    assert created.status_code == 201 and created.headers["ETag"] == '"1"'
    assert created.get_json()["source"] == "live" and created.get_json()["definition"]["lever"] == 80
    assert greedy(client, email_members(env)[40:70])["offers"][0]["offer_id"] == "weekend"  # lever 80 beats flash's 50

    stale = problem(client.patch("/v1/admin/offers/weekend", json={"title": "Weekend x3"},
                                 headers={**ADMIN, "If-Match": '"0"'}), 412)
    assert stale["errors"][0]["header"] == "If-Match"
    updated = client.patch("/v1/admin/offers/weekend", json={"title": "Weekend x3", "caps": {"issues": 2}},
                           headers={**ADMIN, "If-Match": '"1"'})
    assert updated.status_code == 200 and updated.get_json()["definition"]["title"] == "Weekend x3"
    assert updated.get_json()["definition"]["lever"] == 80  # a merge patch keeps the other keys
    retired = client.delete("/v1/admin/offers/weekend", headers={**ADMIN, "If-Match": '"2"'})
    assert retired.status_code == 200 and retired.get_json()["status"] == "retired"
    problem(client.delete("/v1/admin/offers/weekend", headers=ADMIN), 409)
    problem(client.patch("/v1/admin/offers/weekend", json={"status": "active"}, headers=ADMIN), 409)
    decision = decide(client, email_members(env)[41])
    assert "weekend" not in shown(decision) and reasons(decision)["weekend"] == "OFFER_RETIRED"

    trail = client.get("/v1/admin/offers/weekend/history", headers=ADMIN).get_json()["changes"]
    assert [(c["version"], c["op"], c["status"], c["who"]) for c in trail] == [
        (1, "create", "active", WHO), (2, "update", "active", WHO), (3, "retire", "retired", WHO)]
    assert trail[1]["change"] == {"title": "Weekend x3", "caps": {"issues": 2}}
    assert trail[1]["offer"]["caps"] == {"issues": 2} and all(c["at"].endswith("Z") for c in trail)
    back = client.put("/v1/admin/offers/weekend", json={**NEW_OFFER, "status": "paused"}, headers=ADMIN)
    assert back.status_code == 200 and back.get_json()["status"] == "paused"
    assert back.get_json()["change"]["op"] == "replace"


def test_live_changes_keep_histories_and_cached_scores_valid(redis_url: str, env: DecisionEnv,
                                                             tmp_path: Path) -> None:
    """A change never alters the catalog fingerprint histories are written under, so a member
    materialized before it is read as before (no translation, no upgrade), and a cached score
    vector is still hit while the candidates are the same (a pause keeps them)."""
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path, redis_url=redis_url))
    second = None
    try:
        client = app.test_client()
        component = app.extensions["offers"].decisions
        fingerprint = component.setup.fingerprint
        member = next(m for m in email_members(env)[50:] if decide(client, m)["policy"] == "personalised")
        assert decide(client, member)["scores"] == "cache"
        scored = next(o["offer_id"] for o in decide(client, member)["offers"] if o["offer_id"] != FLASH
                      and o.get("propensity") is not None)
        assert client.patch(f"/v1/admin/offers/{scored}", json={"status": "paused"},
                            headers=ADMIN).status_code == 200
        after = decide(client, member)
        assert after["scores"] == "cache" and after["history"] == "ok"
        assert reasons(after)[scored] == "OFFER_PAUSED" and scored not in shown(after)
        assert client.put("/v1/admin/offers/weekend", json=NEW_OFFER, headers=ADMIN).status_code == 201
        added = decide(client, member)
        assert added["history"] == "ok" and added["scores"] == "computed"  # new candidates: a new cache slot
        assert component.setup.fingerprint == fingerprint and component.decider.upgrader.upgraded == 0
        profile = app.extensions["offers"].store.fetch_member(member).profile
        assert profile is not None and profile.fingerprint == fingerprint
        # another worker (same Redis, same change log) starts with the changes and reads the member alike
        settings = app.extensions["offers"].settings
        second = start_app(env.settings(tmp_path, redis_url=redis_url, redis_prefix=settings.redis_prefix),
                           materialize_redis=False)
        other = second.test_client()
        seen = decide(other, member)
        assert seen["history"] == "ok" and reasons(seen)[scored] == "OFFER_PAUSED"
        assert second.extensions["offers"].decisions.setup.catalog_version == 2
    finally:
        if second is not None:
            second.extensions["offers"].close()
        close_app(app)
