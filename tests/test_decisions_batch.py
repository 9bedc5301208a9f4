"""Batch decisions: the NDJSON endpoint, ``offers batch`` and ``offers materialize``."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from flask import Flask

from offers_cli.main import cli
from service.state import ServiceState
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

DECIDE = {"X-API-Key": DECISIONS_KEY}


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture(scope="module")
def members(env: DecisionEnv) -> list[str]:
    return [str(m) for m in pd.read_parquet(env.data / "members.parquet")["member_id"]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def app(request: pytest.FixtureRequest, env: DecisionEnv, tmp_path: Path) -> Iterator[Flask]:
    env.promote(env.v1)
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    app = start_app(env.settings(tmp_path, redis_url=redis_url, redis_timeout_ms=5000))
    yield app
    close_app(app)


def lines(resp: Any) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "application/x-ndjson"
    return [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]


def codes(decisions: list[dict[str, Any]]) -> list[str]:
    return [o["coupon_code"] for d in decisions for o in d["offers"] if "coupon_code" in o]


def held_codes(decisions: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(member, offer) -> the coupon code the decision gave."""
    return {(d["member_id"], o["offer_id"]): o["coupon_code"] for d in decisions for o in d["offers"]
            if "coupon_code" in o}


def test_a_batch_streams_one_line_per_member_and_a_summary(app: Flask, members: list[str]) -> None:
    audience = [*members[:60], "newcomer-1"]
    body = {"member_ids": audience, "channel": CHANNEL, "n": 3, "placement": "newsletter"}
    out = lines(app.test_client().post("/v1/decisions/batch", json=body, headers=DECIDE))
    decisions, summary = out[:-1], out[-1]["summary"]
    assert [d["member_id"] for d in decisions] == audience
    assert summary["members"] == summary["decided"] == len(audience) and summary["replayed"] == 0
    assert summary["coupons"] == len(codes(decisions)) and len(set(codes(decisions))) == len(codes(decisions))
    assert all(len(d["offers"]) <= 3 and d["placement"] == "newsletter" and "excluded" not in d for d in decisions)
    assert decisions[-1]["policy"] in ("cold_start", "holdout") and decisions[-1]["history"] == "none"
    assert len({d["decision_id"] for d in decisions}) == len(decisions)
    # caps and budgets hold across the batch
    assert sum(any(o["offer_id"] == FLASH for o in d["offers"]) for d in decisions) == FLASH_BUDGET
    with_excluded = lines(app.test_client().post("/v1/decisions/batch", json={
        "member_ids": members[:2], "channel": CHANNEL, "include_excluded": True}, headers=DECIDE))
    assert all("excluded" in d for d in with_excluded[:-1])


def test_the_same_idempotency_key_streams_the_same_codes(app: Flask, members: list[str]) -> None:
    client = app.test_client()
    headers = {**DECIDE, "Idempotency-Key": str(uuid.uuid4())}
    body = {"member_ids": members[100:140], "channel": CHANNEL}
    first = lines(client.post("/v1/decisions/batch", json=body, headers=headers))
    again = lines(client.post("/v1/decisions/batch", json=body, headers=headers))
    assert again[:-1] == first[:-1] and codes(first[:-1])
    assert again[-1]["summary"]["replayed"] == 40 and again[-1]["summary"]["decided"] == 0
    # the replay's summary counts what it streamed (it once said 0 offers and 0 coupons)
    for count in ("offers", "coupons"):
        assert again[-1]["summary"][count] == first[-1]["summary"][count] > 0, count
    reused = client.post("/v1/decisions/batch", json={**body, "n": 2}, headers=headers)
    assert reused.status_code == 422 and reused.get_json()["type"] == "/docs#problem-idempotency-key-reused"
    # without the key the members are decided again, and keep the codes they still hold
    fresh = lines(client.post("/v1/decisions/batch", json=body, headers=DECIDE))
    held = held_codes(first[:-1])
    again_held = held_codes(fresh[:-1])
    assert fresh[0]["decision_id"] != first[0]["decision_id"]
    assert all(held[k] == code for k, code in again_held.items() if k in held)
    assert set(again_held) & set(held)


def test_a_cut_off_batch_resumes_with_the_same_key(app: Flask, members: list[str]) -> None:
    client = app.test_client()
    headers = {**DECIDE, "Idempotency-Key": str(uuid.uuid4())}
    body = {"member_ids": members[200:650], "channel": CHANNEL}  # 450 members: three chunks
    partial = client.post("/v1/decisions/batch", json=body, headers=headers, buffered=False)
    stream = partial.response
    head = json.loads(next(iter(stream)))
    partial.close()  # the client went away after the first line
    resumed = lines(client.post("/v1/decisions/batch", json=body, headers=headers))
    assert resumed[0] == head and len(resumed) == 451
    summary = resumed[-1]["summary"]
    assert summary["replayed"] >= 1 and summary["replayed"] + summary["decided"] == 450


@pytest.mark.redis
def test_batch_and_real_time_traffic_share_caps_and_budgets(env: DecisionEnv, tmp_path: Path, redis_url: str,
                                                            members: list[str]) -> None:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path, redis_url=redis_url, redis_timeout_ms=5000, redis_max_connections=64))
    flashes: list[int] = []
    lock = threading.Lock()

    def real_time(member: str) -> None:
        body = app.test_client().post("/v1/decisions", json={"member_id": member, "channel": CHANNEL},
                                      headers=DECIDE).get_json()
        with lock:
            flashes.append(sum(o["offer_id"] == FLASH for o in body["offers"]))

    def batch() -> None:
        out = lines(app.test_client().post("/v1/decisions/batch", json={
            "member_ids": members[:400], "channel": CHANNEL}, headers=DECIDE))
        with lock:
            flashes.extend(sum(o["offer_id"] == FLASH for o in d["offers"]) for d in out[:-1])

    threads = [threading.Thread(target=batch)] + [threading.Thread(target=real_time, args=(m,))
                                                  for m in members[500:540]]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(flashes) == 440 and sum(flashes) == FLASH_BUDGET
        state: ServiceState = app.extensions["offers"]
        assert state.store.budget_usage([(FLASH, "total")])[(FLASH, "total")].count == FLASH_BUDGET
    finally:
        close_app(app)


# -- offers batch ---------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_offers_batch_writes_an_audiences_decisions(env: DecisionEnv, tmp_path: Path, members: list[str],
                                                    suffix: str) -> None:
    env.promote(env.v1)
    audience = tmp_path / "audience.csv"
    pd.DataFrame({"member_id": [*members[:30], "stranger"]}).to_csv(audience, index=False)
    out = tmp_path / f"decisions.{suffix}"
    result = CliRunner().invoke(cli, ["batch", "--registry", str(env.registry), "--data", str(env.data),
                                      "--members", str(audience), "--out", str(out), "--program", str(env.program),
                                      "--as-of", CLOCK, "--channel", CHANNEL, "--n", "3"])
    assert result.exit_code == 0, result.output
    assert "31 members (1 not in the data: cold starts)" in result.output
    frame = pd.read_parquet(out) if suffix == "parquet" else pd.read_csv(out)
    assert set(frame["member_id"].astype(str)) <= {*members[:30], "stranger"}
    assert frame.groupby("member_id")["rank"].max().max() <= 3
    assert set(frame["model_version"]) == {env.v1} and set(frame["as_of"]) == {"2025-11-12T12:00:00Z"}
    assert (frame[frame["member_id"] == "stranger"]["policy"].isin(["cold_start", "holdout"])).all()
    assert (frame["offer_id"] == FLASH).sum() == FLASH_BUDGET  # the budget holds across the audience
    assert not list(tmp_path.glob(".decisions*"))  # no temporary file left


def test_offers_batch_reports_bad_input_without_a_traceback(env: DecisionEnv, tmp_path: Path) -> None:
    audience = tmp_path / "audience.csv"
    pd.DataFrame({"who": ["x"]}).to_csv(audience, index=False)
    result = CliRunner().invoke(cli, ["batch", "--registry", str(env.registry), "--data", str(env.data),
                                      "--members", str(audience), "--out", str(tmp_path / "o.parquet")])
    assert result.exit_code == 1 and "no member_id column" in result.output and "Traceback" not in result.output
    bad_out = CliRunner().invoke(cli, ["batch", "--registry", str(env.registry), "--data", str(env.data),
                                       "--members", str(audience), "--out", str(tmp_path / "o.json")])
    assert bad_out.exit_code == 1


# -- offers materialize ------------------------------------------------------------------------------
@pytest.mark.redis
def test_materialize_then_decisions_use_the_history_and_the_warm_cache(
        env: DecisionEnv, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, members: list[str]) -> None:
    env.promote(env.v1)
    prefix = "t" + uuid.uuid4().hex[:8]
    for name in ("OFFERS_API_KEYS", "OFFERS_REDIS_URL", "OFFERS_DATA", "OFFERS_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OFFERS_REDIS_PREFIX", prefix)
    result = CliRunner().invoke(cli, ["materialize", "--data", str(env.data), "--registry", str(env.registry),
                                      "--program", str(env.program), "--clock", CLOCK, "--channel", CHANNEL])
    assert result.exit_code == 0, result.output
    assert "wrote 1,000 members" in result.output and "score vectors for model " + env.v1 in result.output
    app = start_app(env.settings(tmp_path, redis_url=redis_url, redis_prefix=prefix), materialize_redis=False)
    try:
        client = app.test_client()
        body = client.post("/v1/decisions", json={"member_id": members[1], "channel": CHANNEL},
                           headers=DECIDE).get_json()
        assert body["history"] == "ok" and body["scores"] == "cache" and body["member"]["known"]
        state: ServiceState = app.extensions["offers"]
        ttls = [state.store.client.ttl(k) for k in state.store.client.scan_iter(match=f"{prefix}:*")]
        assert ttls and min(ttls) > 0
    finally:
        close_app(app)


def test_materialize_needs_redis(env: DecisionEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("OFFERS_REDIS_URL", raising=False)
    result = CliRunner().invoke(cli, ["materialize", "--data", str(env.data)])
    assert result.exit_code == 1 and "set REDIS_URL" in result.output
