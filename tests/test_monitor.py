"""Issue 14, part 7: ``offers monitor`` reports drift and data quality from the logs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from models.features import FEATURE_NAMES
from offers_cli.main import cli
from tests.decisions_env import CHANNEL, CLOCK, DecisionEnv, build, close_app, start_app
from tests.service_helpers import DECISIONS_KEY, EVENTS_KEY


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


def _served_log(env: DecisionEnv, tmp_path: Path) -> Path:
    """Decisions for 60 members by the champion, then events with one unknown offer and one
    stamped two hours after the service received it."""
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path))
    now = datetime.fromisoformat(CLOCK)
    app.extensions["offers"].wall_clock = now.timestamp
    members = [str(m) for m in pd.read_parquet(env.data / "members.parquet")["member_id"]][:60]
    try:
        client = app.test_client()
        for member in members:
            resp = client.post("/v1/decisions", json={"member_id": member, "channel": CHANNEL},
                               headers={"X-API-Key": DECISIONS_KEY})
            assert resp.status_code == 200
        events = [{"event_id": "e1", "member_id": members[0], "type": "impression", "offer_id": "no-such-offer",
                   "ts": CLOCK, "channel": CHANNEL},
                  {"event_id": "e2", "member_id": members[1], "type": "transaction", "amount_minor": 900,
                   "ts": (now + timedelta(hours=2)).isoformat()},
                  {"event_id": "e3", "member_id": members[2], "type": "transaction", "amount_minor": 500, "ts": CLOCK}]
        assert client.post("/v1/events", json={"events": events}, headers={"X-API-Key": EVENTS_KEY}).status_code == 200
    finally:
        close_app(app)
    return tmp_path / "events"


def _monitor(env: DecisionEnv, log: Path, tmp_path: Path, *extra: str) -> tuple[str, dict]:
    out, js = tmp_path / "monitor.html", tmp_path / "monitor.json"
    result = CliRunner().invoke(cli, ["monitor", "--log", str(log), "--registry", str(env.registry), "--out", str(out),
                                      "--json", str(js), "--program", str(env.program), *extra])
    assert result.exit_code == 0, result.output
    assert "<h1>Drift and data quality</h1>" in out.read_text()
    return result.output, json.loads(js.read_text())


def test_monitor_reports_drift_per_version_and_event_quality(env: DecisionEnv, tmp_path: Path) -> None:
    log = _served_log(env, tmp_path)
    output, report = _monitor(env, log, tmp_path, "--data", str(env.data))
    entry = report["versions"][env.v1]
    assert entry["reference"] and entry["decisions"] >= 50
    assert 0 <= entry["score_psi"] < 10 and entry["score_level"] in {"stable", "moderate", "major"}
    assert list(entry["days"]) == ["2025-11-12"]
    assert set(entry["feature_psi"]) == set(FEATURE_NAMES)
    events = report["events"]
    assert events["events"] == 3 and events["future_timestamp"] == 1 and events["unknown_offer"] == 1
    assert events["by_type"] == {"transaction": 2, "impression": 1}
    assert f"model {env.v1}:" in output and "future_timestamp 1" in output


def _line(decision_id: str, version: str, scores: list[float], ts: str = "2025-11-12T12:00:00Z") -> str:
    return json.dumps({"v": 1, "decision_id": decision_id, "ts": ts, "member_id": "M1", "channel": CHANNEL,
                       "policy": "personalised", "model_version": version, "candidates": [f"o{i}" for i in
                                                                                          range(len(scores))],
                       "scores": scores, "shown": [], "excluded": {}})


def test_monitor_flags_scores_far_from_the_reference(env: DecisionEnv, tmp_path: Path) -> None:
    """Logged scores all near 1 (a broken input saturating the model) are a major shift;
    a version the registry does not hold is reported without a reference; a torn line is counted."""
    log = tmp_path / "log"
    log.mkdir()
    lines = [_line(f"d{i}", env.v1, [0.99, 0.98, 0.97]) for i in range(50)]
    lines += [_line(f"x{i}", "gone-version", [0.1]) for i in range(3)]
    (log / "decisions-20251112-h-1-0.ndjson").write_text("\n".join(lines) + "\n{\"torn")
    output, report = _monitor(env, log, tmp_path)
    assert report["versions"][env.v1]["score_level"] == "major"
    assert report["versions"]["gone-version"] == {"decisions": 3, "scored": 3, "reference": False}
    assert any("1 decision line(s) could not be read" in note for note in report["notes"])
    assert "(major)" in output
    later = _monitor(env, log, tmp_path, "--since", "2025-11-13")[1]
    assert later["versions"] == {} and any("no scored decision" in n for n in later["notes"])
