"""A Redis that lost its data is detected, not silently served (issue 12, item 3).

Against private redis-servers the tests own: one restarted empty (no persistence, like a
failover to an empty replica), one restarted with AOF (data intact, must not be flagged).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from offers_cli.main import cli
from service.state import ServiceState
from tests.conftest import RedisServer
from tests.decisions_env import (
    CHANNEL,
    CLOCK,
    FLASH,
    FLASH_BUDGET,
    DecisionEnv,
    build,
    close_app,
    start_app,
)
from tests.service_helpers import DECISIONS_KEY

pytestmark = pytest.mark.redis

DECIDE = {"X-API-Key": DECISIONS_KEY}
MEMBERS = [f"M0000{i:04d}" for i in range(1, 61)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


def decide(app: Flask, member: str) -> dict[str, Any]:
    resp = app.test_client().post("/v1/decisions", json={"member_id": member, "channel": CHANNEL}, headers=DECIDE)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    return body


def flash_issued(bodies: list[dict[str, Any]]) -> int:
    return sum(1 for b in bodies for o in b["offers"] if o["offer_id"] == FLASH)


def limited(env: DecisionEnv, app: Flask) -> set[str]:
    """Offers with a member cap or a budget in the app's catalog."""

    setup = app.extensions["offers"].decisions.setup
    assert setup is not None
    return {o.offer_id for o in setup.catalog.offers
            if o.budget_key is not None or o.caps.issues or o.caps.impressions or o.caps.redemptions}


@pytest.fixture
def wiped_app(env: DecisionEnv, tmp_path: Path, private_redis: RedisServer) -> Iterator[Flask]:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path, redis_url=private_redis.url))
    yield app
    close_app(app)


def test_a_wiped_redis_withholds_capped_offers_until_offers_materialize(
        wiped_app: Flask, env: DecisionEnv, private_redis: RedisServer, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = wiped_app, wiped_app.test_client()
    state: ServiceState = app.extensions["offers"]
    assert client.get("/readyz").status_code == 200
    before = [decide(app, m) for m in MEMBERS[:20]]
    assert flash_issued(before) == FLASH_BUDGET  # the budget of 10 is spent
    assert all(b["degraded"] is None and b["history"] == "ok" for b in before)

    private_redis.stop()
    private_redis.start()  # same port, empty: every history, cap and budget counter is gone

    with caplog.at_level(logging.ERROR):
        after = [decide(app, m) for m in MEMBERS]
    # figure for the issue: decisions that issued the capped, budgeted offer past its cap
    assert flash_issued(after) == 0
    assert {b["degraded"] for b in after} == {"store_data_lost"}
    capped = limited(env, app)
    assert not [o["offer_id"] for b in after for o in b["offers"] if o["offer_id"] in capped]
    reasons = {e["reason"] for b in after for e in b["excluded"] if e["offer_id"] == FLASH}
    # the emptied store knows nobody: coupon offers leave as UNKNOWN_MEMBER (coupons.unknown_members
    # is off), and whatever reaches the caps is refused there
    assert reasons <= {"BUDGET_EXHAUSTED", "MEMBER_CAP_REACHED", "UNKNOWN_MEMBER"} and reasons
    assert state.store.budget_usage([(FLASH, "total")])[(FLASH, "total")].count == 0
    # the log line says what to run, once, not once per decision
    lines = [r.getMessage() for r in caplog.records if "generation marker" in r.getMessage()]
    assert len(lines) == 1 and "offers materialize" in lines[0]
    ready = client.get("/readyz")
    assert ready.status_code == 503
    check = ready.get_json()["checks"]["store_data"]
    assert check["ok"] is False and "offers materialize" in check["detail"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'offers_decisions_degraded_total{reason="store_data_lost"} 60.0' in metrics

    # the batch endpoint withholds them too
    resp = client.post("/v1/decisions/batch", json={"member_ids": MEMBERS[:5], "channel": CHANNEL},
                       headers=DECIDE)
    lines_out = [line for line in resp.get_data(as_text=True).splitlines() if line]
    decided = [b for b in map(json.loads, lines_out) if "member_id" in b]
    assert len(decided) == 5 and {b["degraded"] for b in decided} == {"store_data_lost"}
    assert flash_issued(decided) == 0

    # recovery is one command
    monkeypatch.setenv("REDIS_URL", private_redis.url)
    monkeypatch.setenv("OFFERS_REDIS_PREFIX", state.settings.redis_prefix)
    monkeypatch.delenv("OFFERS_REDIS_URL", raising=False)
    result = CliRunner().invoke(cli, ["materialize", "--data", str(env.data), "--program", str(env.program),
                                      "--clock", CLOCK])
    assert result.exit_code == 0, result.output
    assert "generation" in result.output
    assert client.get("/readyz").status_code == 200
    recovered = [decide(app, m) for m in MEMBERS[:5]]
    assert {b["degraded"] for b in recovered} == {None}
    assert {b["history"] for b in recovered} == {"ok"}
    assert flash_issued(recovered) >= 1  # budgets are counted again, from zero (docs/redis.md)


def test_a_restart_with_aof_is_not_flagged(env: DecisionEnv, tmp_path: Path, persistent_redis: RedisServer) -> None:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path, redis_url=persistent_redis.url))
    try:
        client = app.test_client()
        before = [decide(app, m) for m in MEMBERS[:20]]  # enough members to spend the budget
        assert flash_issued(before) == FLASH_BUDGET
        persistent_redis.stop()  # SIGTERM: Redis flushes the AOF and exits
        persistent_redis.start()
        assert client.get("/readyz").status_code == 200
        after = [decide(app, m) for m in MEMBERS[:30]]
        assert {b["degraded"] for b in after} == {None}
        assert {b["history"] for b in after} == {"ok"}
        assert flash_issued(after) == 0  # the budget counter survived: nothing past the cap
        state: ServiceState = app.extensions["offers"]
        assert state.store.budget_usage([(FLASH, "total")])[(FLASH, "total")].count == FLASH_BUDGET
    finally:
        close_app(app)


def test_docker_compose_runs_redis_with_aof_every_second() -> None:
    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parents[1] / "docker-compose.yml").read_text())
    command = compose["services"]["redis"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=False))
    assert options["--appendonly"] == "yes" and options["--appendfsync"] == "everysec"
    assert options["--maxmemory-policy"] == "noeviction"
    assert any(v.endswith(":/data") for v in compose["services"]["redis"]["volumes"])  # the AOF outlives the container
