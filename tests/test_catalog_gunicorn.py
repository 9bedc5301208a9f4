"""The live catalog under a real gunicorn with two workers, real Redis and real HTTP.

A change reaches one worker; both must apply it without a restart: every worker reports the
new catalog version, and decisions from fresh connections (so both workers answer) reflect it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.decisions_env import CHANNEL, FLASH, DecisionEnv, build
from tests.service_helpers import ADMIN_KEY, DECISIONS_KEY
from tests.test_decisions_gunicorn import serve

pytestmark = [pytest.mark.slow, pytest.mark.redis]
DECIDE = {"X-API-Key": DECISIONS_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
DEADLINE = 120.0  # generous: the behaviour is asserted, not how fast it comes


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


def both_workers_apply(base: str, version: int) -> set[int]:
    """Poll the catalog list (a fresh connection each time) until two worker pids report ``version``."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        listed = requests.get(base + "/v1/admin/offers", headers=ADMIN, timeout=30).json()
        seen[listed["worker"]] = listed["version"]
        done = {pid for pid, v in seen.items() if v == version}
        if len(done) == 2:
            return done
    raise AssertionError(f"the workers never both applied catalog version {version}: {seen}")


def decide(base: str, member: str) -> dict[str, Any]:
    resp = requests.post(base + "/v1/decisions", json={"member_id": member, "channel": CHANNEL, "n": 5},
                         headers=DECIDE, timeout=30)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_both_workers_follow_a_pause_and_a_new_offer_without_a_restart(env: DecisionEnv, tmp_path: Path,
                                                                      redis_url: str) -> None:
    env.promote(env.v1)
    members = [f"M{i:08d}" for i in range(1, 61)]
    with serve(env, tmp_path, redis_url, workers=2) as (base, _):
        paused = requests.patch(f"{base}/v1/admin/offers/{FLASH}", json={"status": "paused"}, headers=ADMIN,
                                timeout=30)
        assert paused.status_code == 200, paused.text
        both_workers_apply(base, 1)
        for member in members[:30]:  # fresh connections: both workers answer
            body = decide(base, member)
            assert FLASH not in [o["offer_id"] for o in body["offers"]]
            assert {"offer_id": FLASH, "reason": "OFFER_PAUSED"} in body["excluded"]

        created = requests.put(f"{base}/v1/admin/offers/weekend", headers=ADMIN, timeout=30, json={
            "kind": "bonus_points", "title": "Weekend triple", "value": 300, "cost": 1, "lever": 80})
        assert created.status_code == 201, created.text
        both_workers_apply(base, 2)
        tops = [decide(base, m) for m in members[30:]]
        greedy = [b["offers"][0]["offer_id"] for b in tops
                  if b["offers"] and not b["explored"] and b["policy"] == "personalised"]
        assert greedy and set(greedy) == {"weekend"}  # lever 80 tops every greedy slate, in both workers
        history = requests.get(f"{base}/v1/admin/offers/weekend/history", headers=ADMIN, timeout=30).json()
        assert [c["op"] for c in history["changes"]] == ["create"]
