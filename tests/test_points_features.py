"""Point-balance features: what training replays from the exported points log equals what a
decision reads from the live account in the real Redis, at several moments (before a
redemption, at the service's now, after a rolling expiry); the export is a CLI step whose
output validates; data without a points ledger leaves the features missing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from flask import Flask

from models.features import FEATURE_NAMES, compute_features
from models.features.online import history_from_records
from models.features.points_features import POINTS_FEATURES, PostingsBook
from models.program import load_program
from offerdata.loader import load_catalog, load_history
from offerdata.points_export import merged_points
from offers_cli.main import cli
from runtime.decisions.scoring import stack, with_accounts
from service.state import ServiceState
from tests.decisions_env import close_app
from tests.points_env import ADMIN, CLOCK, EVENTS, NOW, PROGRAM, points_of, start_points_app, tx

COLUMNS = [FEATURE_NAMES.index(name) for name in POINTS_FEATURES]
DAY = 86_400


@pytest.fixture
def points_app(tmp_path: Path, tiny_dir: Path, redis_url: str) -> Iterator[Flask]:
    program = tmp_path / "program.yaml"
    program.write_text(PROGRAM)
    app = start_points_app(tmp_path, tiny_dir, program, redis_url, CLOCK, "pf" + uuid.uuid4().hex[:8])
    yield app
    close_app(app)


def local_seconds(epoch: int) -> int:
    """The program (UTC) local time features use, for an epoch moment."""
    return epoch


def offline(data: Path, members: list[str], at: int) -> np.ndarray:
    """Points features training computes for ``members`` at ``at`` from a data directory."""
    catalog = load_catalog(data)
    hist, _, _ = load_history(data, catalog)
    m = hist.member_index(members)
    program = load_program(PROGRAM)
    X = compute_features(hist, catalog, m, np.zeros(len(m), dtype=np.int64), np.full(len(m), local_seconds(at)),
                         np.zeros(len(m), dtype=np.int32), program)
    return X[:, COLUMNS].astype(np.float64)


def online(app: Flask, members: list[str], at: int) -> np.ndarray:
    """Points features a decision computes at ``at`` from the accounts fetched with the members' state."""
    state: ServiceState = app.extensions["offers"]
    assert state.decisions is not None and state.decisions.setup is not None
    setup = state.decisions.setup
    bundles = state.store.fetch_members(members, points=True)
    hist = stack([history_from_records(mid, b.history if b is not None else None) for mid, b in
                  zip(members, bundles, strict=True)])
    hist = with_accounts(hist, [b.points if b is not None else None for b in bundles], at)
    n = len(members)
    X = compute_features(hist, setup.features, np.arange(n), np.zeros(n, dtype=np.int64),
                         np.full(n, local_seconds(at)), np.zeros(n, dtype=np.int32), load_program(PROGRAM))
    return X[:, COLUMNS].astype(np.float64)


@pytest.mark.redis
def test_training_replays_the_exported_ledger_to_the_balances_decisions_read(points_app: Flask, tiny_dir: Path,
                                                                           tmp_path: Path) -> None:
    client = points_app.test_client()
    events = [tx("t1", "m3", 1_000, product_id="p4"), tx("t2", "m3", 250, product_id="p1"),
              tx("t4", "m1", 10_000, product_id="p2")]
    assert client.post("/v1/events", json=events, headers=EVENTS).status_code == 200
    before = {m: points_of(points_app, m)["balance"] for m in ("m1", "m3")}
    voucher = client.post("/v1/members/m1/points/redeem", json={"reward_id": "five_off", "channel": "app"},
                          headers={**EVENTS, "Idempotency-Key": "k1"})
    assert voucher.status_code == 200, voucher.get_data(as_text=True)
    adjusted = client.post("/v1/admin/members/m3/points/adjust", json={"points": 7, "reason": "goodwill"},
                           headers={**ADMIN, "Idempotency-Key": "a1"})
    assert adjusted.status_code == 200
    over = client.post("/v1/members/m3/points/redeem", json={"reward_id": "free_drink"},
                       headers={**EVENTS, "Idempotency-Key": "k2"})
    assert over.status_code == 409  # refused: the table must not replay it

    state: ServiceState = points_app.extensions["offers"]
    merged = tmp_path / "merged"
    result = CliRunner().invoke(cli, ["data", "events", "--log", str(state.settings.event_log), "--data",
                                      str(tiny_dir), "--out", str(merged)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(merged / "points.parquet")
    assert set(table["member_id"]) == {"m1", "m3"}
    assert not any("free_drink" in p for p in table["postings"])
    validated = CliRunner().invoke(cli, ["data", "validate", str(merged)])
    assert validated.exit_code == 0, validated.output

    members = ["m1", "m3", "m2"]  # m2 has no points at all
    now = online(points_app, members, NOW)
    assert now[0, 0] == points_of(points_app, "m1")["balance"] and now[1, 0] == points_of(points_app, "m3")["balance"]
    np.testing.assert_array_equal(offline(merged, members, NOW), now)
    # a year on, the rolling six-month expiry has taken every lot: both sides expire them lazily, the same way
    later = NOW + 365 * DAY
    assert online(points_app, members, later)[:2, 0].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(offline(merged, members, later), online(points_app, members, later))
    # training rows dated before the ledger's first call see no points
    first = int(table["applied_at"].min())
    redeemed = json.loads(voucher.get_data(as_text=True))
    assert redeemed["balance"] == before["m1"] - 200
    assert offline(merged, members, first - 1)[:2, 0].tolist() == [0.0, 0.0]

    # merging the same log again keeps each call once
    again = tmp_path / "again"
    rerun = CliRunner().invoke(cli, ["data", "events", "--log", str(state.settings.event_log), "--data",
                                     str(merged), "--out", str(again)])
    assert rerun.exit_code == 0, rerun.output
    pd.testing.assert_frame_equal(pd.read_parquet(again / "points.parquet"), table)


def test_history_without_a_points_ledger_leaves_the_features_missing(tiny_dir: Path) -> None:
    assert np.isnan(offline(tiny_dir, ["m1"], NOW)).all()


def test_a_member_without_calls_has_zero_points_and_calls_replay_in_order() -> None:
    at = int(datetime(2017, 3, 10, tzinfo=UTC).timestamp())
    earn = {"c": "earn:e1", "k": "earn", "u": 120_000, "ts": at, "x": at + 30 * DAY, "a": 0}
    burn = {"c": "redeem:k", "k": "burn", "u": -50_000, "ts": at + 10, "x": 0, "a": 0}
    frame = merged_points(None, pd.DataFrame({"member_id": ["a", "a"], "call": [0, 1], "applied_at": [at, at + 10],
                                              "postings": [json.dumps([earn]), json.dumps([burn])]}))
    book = PostingsBook.from_frame(frame, ["a", "b"])
    values = book.features(np.array([0, 0, 0, 1]), np.array([at, at + 5, at + 11, at + 11]), ZoneInfo("UTC"))
    balance, expiring, days = (values[:, POINTS_FEATURES.index(n)] for n in
                               ("points_balance", "points_expiring_30d", "points_days_to_expiry"))
    assert balance.tolist() == [12, 12, 7, 0]  # calls at or before the moment; b has none
    assert expiring.tolist() == [12, 12, 7, 0]
    assert days[1] == pytest.approx(30 - 5 / DAY) and np.isnan(days[3])
