"""Issue 14, part 7: drift of live features and scores against the model's training reference."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask

from models.drift import build_reference, drift, histogram_reference, level, psi
from models.features import FEATURE_NAMES
from models.registry import Registry
from runtime.drift import DriftMonitor, _BinnedRing
from tests.decisions_env import CHANNEL, CLOCK, DecisionEnv, build, close_app, start_app
from tests.service_helpers import DECISIONS_KEY, EVENTS_KEY


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture
def app(env: DecisionEnv, tmp_path: Path) -> Iterator[Flask]:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path))
    yield app
    close_app(app)


def test_psi_matches_a_hand_computed_value() -> None:
    """Reference 0..9 in two bins (edge 4.5, shares 0.5/0.5, nothing missing); the sample
    0, 1, 2, 8 has shares 0.75/0.25, so PSI = 0.25 ln 1.5 + (-0.25) ln 0.5."""
    reference = histogram_reference(np.arange(10.0), bins=2)
    assert reference["edges"] == [4.5]
    assert reference["shares"] == [0.5, 0.5] and reference["missing"] == 0.0
    expected = 0.25 * math.log(1.5) - 0.25 * math.log(0.5)
    assert psi(reference, np.array([0.0, 1.0, 2.0, 8.0])) == pytest.approx(expected, abs=1e-12)
    assert psi(reference, np.array([0.0, 9.0])) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(psi(reference, np.array([])))


def test_missing_values_are_a_bin_of_their_own() -> None:
    """Half the sample missing where the reference had none: that bin weighs (0.5 - 1e-4) ln(0.5 / 1e-4)."""
    reference = histogram_reference(np.arange(10.0), bins=2)
    sample = np.array([1.0, 8.0, np.nan, np.nan])
    expected = 2 * (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert psi(reference, sample) == pytest.approx(expected, rel=1e-12)
    assert histogram_reference(np.array([np.nan, 1.0]), bins=2)["missing"] == 0.5


def test_same_population_is_stable_and_a_shift_is_major() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20_000, 2))
    reference = build_reference(X, rng.uniform(size=20_000), ["a", "b"])
    fresh = rng.normal(size=(5_000, 2))
    shifted = fresh + np.array([0.0, 1.0])
    assert level(psi(reference["features"]["a"], fresh[:, 0])) == "stable"
    assert psi(reference["features"]["b"], fresh[:, 1]) < 0.02
    assert level(psi(reference["features"]["b"], shifted[:, 1])) == "major"
    assert level(float("nan")) == "unknown" and level(0.15) == "moderate"
    with pytest.raises(ValueError, match="3 names"):
        build_reference(X, np.zeros(20_000), ["a", "b", "c"])


class Sink:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def record_drift(self, model_version: str, result: dict[str, Any]) -> None:
        self.published.append((model_version, result))


def test_the_monitor_keeps_a_bounded_sample_and_publishes_every_nth_observation() -> None:
    rng = np.random.default_rng(0)
    reference = build_reference(rng.normal(size=(5_000, 2)), rng.uniform(size=5_000), ["a", "b"])
    sink = Sink()
    monitor = DriftMonitor(sink, capacity=1_000, rows_per_call=40, publish_every=5, min_rows=300)
    for _ in range(5):  # 200 rows: published only from 300 rows on
        monitor.observe("v1", reference, ["a", "b"], rng.normal(size=(50, 2)) + 3.0, rng.uniform(size=50))
    assert sink.published == [] and monitor.snapshot("v1") is not None
    for _ in range(4):
        monitor.observe("v1", reference, ["a", "b"], rng.normal(size=(50, 2)) + 3.0, rng.uniform(size=50))
    assert sink.published == []
    monitor.observe("v1", reference, ["a", "b"], rng.normal(size=(50, 2)) + 3.0, rng.uniform(size=50))
    (version, result), = sink.published
    assert version == "v1" and result["rows"] == 400
    assert result["features"]["a"] > 0.25 and result["score"] < 0.1
    for _ in range(30):  # 40 rows a call, capacity 1,000: the ring wraps
        monitor.observe("v1", reference, ["a", "b"], rng.normal(size=(50, 2)), rng.uniform(size=50))
    snapshot = monitor.snapshot("v1")
    assert snapshot is not None and snapshot["rows"] == 1_000
    assert snapshot["features"]["a"] < 0.1  # the shifted rows have rotated out
    monitor.observe("old", None, ["a", "b"], rng.normal(size=(10, 2)), rng.uniform(size=10))
    assert monitor.snapshot("old") is None  # a model without a reference is not sampled


@pytest.mark.parametrize("seed", range(6))
def test_the_rings_running_counts_give_the_psi_of_the_rows_it_keeps(seed: int) -> None:
    """The monitor bins rows once, on entry, and keeps running counts; its PSI must be what
    :func:`models.drift.drift` computes from the raw rows it holds, through wrap-around, with
    missing values, repeated values, a column the reference never saw present and a feature
    the reference does not know."""
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c", "d", "unreferenced"]
    base = np.column_stack([rng.normal(size=3_000), rng.integers(0, 3, size=3_000).astype(float),
                            np.where(rng.uniform(size=3_000) < 0.3, np.nan, rng.exponential(size=3_000)),
                            np.full(3_000, np.nan), rng.normal(size=3_000)])
    reference = build_reference(base[:, :4], rng.uniform(size=3_000), names[:4])
    assert reference["features"]["d"]["edges"] == []
    capacity = int(rng.integers(50, 400))
    ring = _BinnedRing(capacity, reference, names)
    assert ring.drift()["rows"] == 0 and math.isnan(ring.drift()["score"])
    kept_X, kept_s = np.empty((0, 5)), np.empty(0)
    for _ in range(int(rng.integers(5, 60))):
        n = int(rng.integers(1, 40))
        X = np.column_stack([rng.normal(size=n) + rng.uniform(-1, 1), rng.integers(0, 4, size=n).astype(float),
                             np.where(rng.uniform(size=n) < 0.5, np.nan, rng.exponential(size=n)),
                             np.where(rng.uniform(size=n) < 0.5, np.nan, 1.0), rng.normal(size=n)])
        X[rng.uniform(size=X.shape) < 0.05] = np.nan
        scores = rng.uniform(size=n)
        ring.add(X, scores)
        kept_X, kept_s = np.vstack([kept_X, X])[-capacity:], np.append(kept_s, scores)[-capacity:]
        got, want = ring.drift(), drift(reference, kept_X, kept_s, names)
        assert got["rows"] == want["rows"] == len(kept_s)
        assert set(got["features"]) == set(want["features"]) == set(names[:4])
        for name in names[:4]:
            assert got["features"][name] == pytest.approx(want["features"][name], rel=1e-12, abs=1e-12)
        assert got["score"] == pytest.approx(want["score"], rel=1e-12, abs=1e-12)


def test_a_trained_model_keeps_the_reference_of_its_serving_population(env: DecisionEnv) -> None:
    metadata = json.loads((Registry(env.registry).path(env.v1) / "metadata.json").read_text())
    reference = metadata["reference"]
    assert set(reference["features"]) == set(FEATURE_NAMES)
    assert reference["population"].startswith("members x offers valid at")
    assert reference["rows"] > 1_000
    for column in [reference["score"], *reference["features"].values()]:
        assert sum(column["shares"]) + column["missing"] == pytest.approx(1.0)
        assert column["edges"] == sorted(column["edges"])


def test_the_service_exports_drift_of_live_traffic(app: Flask, env: DecisionEnv) -> None:
    decider = app.extensions["offers"].decisions.decider
    decider.drift.publish_every, decider.drift.min_rows = 10, 50
    members = [str(m) for m in pd.read_parquet(env.data / "members.parquet")["member_id"]][:40]
    client = app.test_client()
    for member in members:
        resp = client.post("/v1/decisions", json={"member_id": member, "channel": CHANNEL},
                           headers={"X-API-Key": DECISIONS_KEY})
        assert resp.status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert f'offers_score_psi{{model_version="{env.v1}"}}' in text
    assert f'offers_feature_psi{{feature="{FEATURE_NAMES[0]}",model_version="{env.v1}"}}' in text
    models = client.get("/v1/models", headers={"X-API-Key": DECISIONS_KEY}).get_json()
    drift = models["drift"][env.v1]
    assert 0 < drift["rows"] <= 40 * 16
    assert drift["score"] is not None and drift["score"] >= 0
    assert set(drift["features"]) == set(FEATURE_NAMES)


def test_events_stamped_in_the_future_are_counted(app: Flask, env: DecisionEnv) -> None:
    now = datetime.fromisoformat(CLOCK)
    app.extensions["offers"].wall_clock = now.timestamp
    member = str(pd.read_parquet(env.data / "members.parquet")["member_id"][0])
    events = [{"event_id": f"f{i}", "member_id": member, "type": "transaction", "amount_minor": 500,
               "ts": ts.isoformat()}
              for i, ts in enumerate([now, now + timedelta(minutes=4), now + timedelta(hours=2)])]
    client = app.test_client()
    assert client.post("/v1/events", json={"events": events}, headers={"X-API-Key": EVENTS_KEY}).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert 'offers_event_quality_total{problem="future_timestamp"} 1.0' in text
