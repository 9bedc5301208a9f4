"""The durable event log, written by the real service, becomes training data that validates."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from offers_cli.main import cli
from service.app import create_app
from tests.service_helpers import make_settings


def post_events(tmp_path: Path, events: list[dict]) -> Path:
    """Send ``events`` through POST /v1/events of a real app; return its event-log directory."""
    settings = make_settings(tmp_path)
    app = create_app(settings)
    with app.test_client() as client:
        answer = client.post("/v1/events", json={"events": events})
        assert answer.status_code == 200, answer.get_json()
        # a retry is a duplicate the service itself ignores (not logged twice)
        again = client.post("/v1/events", json=events[0])
        assert again.get_json()["duplicates"] == 1
    log = Path(settings.event_log)
    # the log is at-least-once (a store failure between logging and applying makes the client
    # retry): simulate such a repeated line; the reader must drop it
    segment = sorted(log.glob("events-*.ndjson"))[0]
    first = segment.read_text().splitlines()[0]
    with open(segment, "a") as fh:
        fh.write(first + "\n")
    return log


def test_event_log_merges_into_valid_training_data(tmp_path: Path, tiny_dir: Path) -> None:
    log = post_events(tmp_path, [
        {"event_id": "t-1", "member_id": "m1", "type": "transaction", "ts": "2017-03-01T10:00:00Z",
         "amount_minor": 250, "product_id": "p2", "basket_id": "b-live-1"},
        {"event_id": "i-1", "member_id": "m9", "type": "impression", "offer_id": "c1-o1",
         "ts": "2017-02-05T09:00:00Z", "channel": "app", "decision_id": "d-1"},
        {"event_id": "r-1", "member_id": "m9", "type": "redeem", "offer_id": "c1-o1", "ts": "2017-02-06T18:00:00Z"},
        {"event_id": "c-1", "member_id": "m9", "type": "click", "offer_id": "c1-o1", "ts": "2017-02-05T09:01:00Z"},
    ])
    out = tmp_path / "merged"
    result = CliRunner().invoke(cli, ["data", "events", "--log", str(log), "--data", str(tiny_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "read 4 events (1 duplicates dropped)" in result.output
    assert "OK: the directory satisfies the data contract" in result.output
    members = pd.read_parquet(out / "members.parquet")
    assert "m9" in set(members["member_id"])
    tx = pd.read_parquet(out / "transactions.parquet")
    live = tx[tx["basket_id"] == "b-live-1"].iloc[0]
    assert (live["member_id"], live["product_id"], live["amount_minor"]) == ("m1", "p2", 250)
    assert live["purchased_at"] == pd.Timestamp("2017-03-01 10:00:00")
    exposures = pd.read_parquet(out / "exposures.parquet")
    assert exposures.set_index("exposure_id").loc["i-1", "decision_id"] == "d-1"
    assert "r-1" in set(pd.read_parquet(out / "redemptions.parquet")["redemption_id"])


def test_a_redemption_never_exposed_fails_validation(tmp_path: Path, tiny_dir: Path) -> None:
    log = post_events(tmp_path, [
        {"event_id": "r-2", "member_id": "m1", "type": "redeem", "offer_id": "c1-o2", "ts": "2017-02-07T12:00:00Z"},
    ])
    result = CliRunner().invoke(cli, ["data", "events", "--log", str(log), "--data", str(tiny_dir),
                                      "--out", str(tmp_path / "merged")])
    assert result.exit_code == 1
    assert "redemption of an offer never exposed to that member" in result.output
