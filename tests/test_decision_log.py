"""The decision log: every committed decision is logged with its candidates, and merges
into training data as exposures with arm and probability.

Real-time decisions, the batch endpoint and ``offers batch`` all log; a decision preview
does not; a campaign sent through the batch endpoint without impressions merges into a
valid data directory; torn lines are reported with segment and line; an unwritable log
never fails a committed decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from flask import Flask

from offerdata.events import merge_events
from offerdata.validate import validate
from offers_cli.main import cli
from runtime.decisions.outcome import DecisionRequest
from tests.decisions_env import CHANNEL, CLOCK, FLASH, DecisionEnv, build, close_app, start_app
from tests.service_helpers import DECISIONS_KEY, EVENTS_KEY

DECIDE = {"X-API-Key": DECISIONS_KEY}


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture(scope="module")
def members(env: DecisionEnv) -> list[str]:
    return [str(m) for m in pd.read_parquet(env.data / "members.parquet")["member_id"]]


@pytest.fixture
def app(env: DecisionEnv, tmp_path: Path) -> Iterator[Flask]:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path))
    yield app
    close_app(app)


def logged(directory: Path) -> list[dict[str, Any]]:
    """Every decision line in ``directory``'s decision segments."""
    out = []
    for path in sorted(directory.glob("decisions-*.ndjson")):
        out.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return out


def test_every_real_time_and_batch_decision_is_logged_with_its_candidates(
        app: Flask, members: list[str], tmp_path: Path) -> None:
    client = app.test_client()
    answers = [client.post("/v1/decisions", json={"member_id": m, "channel": CHANNEL}, headers=DECIDE).get_json()
               for m in members[:5]]
    batch = client.post("/v1/decisions/batch", json={"member_ids": members[5:25], "channel": CHANNEL, "n": 3},
                        headers=DECIDE)
    batch_lines = [json.loads(line) for line in batch.get_data(as_text=True).splitlines()][:-1]
    lines = logged(tmp_path / "events")  # the event log's directory by default
    assert len(lines) == 25
    by_id = {line["decision_id"]: line for line in lines}
    for answer, source in [*((a, "realtime") for a in answers), *((b, "batch") for b in batch_lines)]:
        line = by_id[answer["decision_id"]]
        assert line["source"] == source
        assert line["member_id"] == answer.get("member_id", answer.get("member", {}).get("member_id"))
        assert line["channel"] == CHANNEL and line["model_version"] == answer["model_version"]
        assert line["policy"] == answer["policy"] and line["holdout"] == answer["holdout"]
        shown = {c["offer_id"]: c for c in line["shown"]}
        assert set(shown) == {o["offer_id"] for o in answer["offers"]}
        for offer in answer["offers"]:
            cand = shown[offer["offer_id"]]
            assert line["candidates"][cand["i"]] == offer["offer_id"]
            assert cand["rank"] == offer["rank"] and cand["probability"] == pytest.approx(offer["probability"])
            assert cand.get("coupon_code") == offer.get("coupon_code")
        # every candidate is accounted for once: shown, excluded with a reason, or eligible and not picked
        excluded = [j for js in line["excluded"].values() for j in js]
        assert len(excluded) == len(set(excluded)) and not set(excluded) & {c["i"] for c in shown.values()}
        assert len(line["scores"]) == len(line["candidates"]) == len(set(line["candidates"]))
        assert all(s is None or 0.0 <= s <= 1.0 for s in line["scores"])
        if source == "realtime":
            # the real-time answer lists its exclusions: the log has the same ones
            reasons = {(e["offer_id"], e["reason"]) for e in answer.get("excluded", [])}
            logged_reasons = {(line["candidates"][j], r) for r, js in line["excluded"].items() for j in js}
            assert reasons <= logged_reasons
    assert any(s is not None for line in lines for s in line["scores"])


def test_a_preview_is_not_logged(app: Flask, members: list[str], tmp_path: Path) -> None:
    decider = app.extensions["offers"].decisions.require()
    decider.decide_without_commit(DecisionRequest(member_id=members[0], channel=CHANNEL), "preview-1")
    assert logged(tmp_path / "events") == []


def test_a_campaign_without_impressions_merges_into_valid_training_data(
        app: Flask, env: DecisionEnv, members: list[str], tmp_path: Path) -> None:
    client = app.test_client()
    out = client.post("/v1/decisions/batch", json={"member_ids": members[:40], "channel": CHANNEL, "n": 2},
                      headers=DECIDE)
    decisions = [json.loads(line) for line in out.get_data(as_text=True).splitlines()][:-1]
    catalog = set(pd.read_parquet(env.data / "offers.parquet")["offer_id"])
    first, offer = next((d, o) for d in decisions for o in d["offers"] if o["offer_id"] in catalog)
    # the app confirms one of them with an impression carrying the decision id: not a second exposure
    ev = {"event_id": "imp-1", "member_id": first["member_id"], "type": "impression", "offer_id": offer["offer_id"],
          "decision_id": first["decision_id"], "ts": CLOCK, "channel": CHANNEL}
    assert client.post("/v1/events", json={"events": [ev]}, headers={"X-API-Key": EVENTS_KEY}).status_code == 200
    app.extensions["offers"].event_log.close()
    merged = tmp_path / "merged"
    summary = merge_events(env.data, tmp_path / "events", merged, "UTC")
    assert validate(merged).ok
    exposures = pd.read_parquet(merged / "exposures.parquet")
    from_log = exposures[exposures["decision_id"].isin({d["decision_id"] for d in decisions})]
    shown = [(d["decision_id"], o["offer_id"], o["probability"]) for d in decisions for o in d["offers"]
             if o["offer_id"] in catalog]
    assert len(from_log) == len(shown) and summary.decisions == 40
    assert set(from_log["arm"]) == {"treatment"}
    got = dict(zip(from_log["exposure_id"], from_log["arm_probability"], strict=True))
    for decision_id, offer_id, probability in shown:
        assert got[f"{decision_id}:{offer_id}"] == pytest.approx(probability)
    assert "imp-1" not in set(exposures["exposure_id"])
    assert summary.skipped["impression of a logged decision"] == 1
    assert (from_log["channel"] == CHANNEL).all()


def test_torn_and_bad_lines_are_reported_with_segment_and_line(env: DecisionEnv, tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    good = {"v": 1, "decision_id": "d1", "ts": "2025-11-12T12:00:00Z", "member_id": "M00000001",
            "channel": CHANNEL, "candidates": ["nope"], "shown": [{"i": 0, "offer_id": "nope", "probability": 1.0}]}
    (log / "decisions-20251112-h-1-0001.ndjson").write_text(
        json.dumps(good) + "\n" + json.dumps({**good, "decision_id": "d2", "ts": "3000-01-01T00:00:00Z"})
        + "\n" + json.dumps(good) + "\n" + '{"v": 1, "decision_id": "d3", "ts"')
    result = CliRunner().invoke(cli, ["data", "events", "--log", str(log), "--data", str(env.data),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "decisions-20251112-h-1-0001.ndjson line 2: ts '3000-01-01T00:00:00Z' is outside" in result.output
    assert "decisions-20251112-h-1-0001.ndjson line 4: not JSON" in result.output
    assert "1 decisions (1 duplicates dropped)" in result.output
    assert "shown offer not in the data's offers 1" in result.output


def test_offers_batch_logs_its_decisions_when_asked(env: DecisionEnv, members: list[str], tmp_path: Path) -> None:
    env.promote(env.v1)
    audience = tmp_path / "audience.txt"
    audience.write_text("\n".join(members[:30]))
    result = CliRunner().invoke(cli, ["batch", "--registry", str(env.registry), "--data", str(env.data),
                                      "--members", str(audience), "--out", str(tmp_path / "o.parquet"),
                                      "--program", str(env.program), "--as-of", CLOCK, "--channel", CHANNEL,
                                      "--decision-log", str(tmp_path / "dlog")])
    assert result.exit_code == 0, result.output
    lines = logged(tmp_path / "dlog")
    rows = pd.read_parquet(tmp_path / "o.parquet")
    assert [line["member_id"] for line in lines] == members[:30]
    assert {line["source"] for line in lines} == {"offers_batch"}
    assert sum(len(line["shown"]) for line in lines) == len(rows)


def test_a_log_that_cannot_be_written_is_counted_not_raised(env: DecisionEnv, members: list[str],
                                                           tmp_path: Path) -> None:
    env.promote(env.v1)
    target = tmp_path / "dlog"
    app = start_app(env.settings(tmp_path, decision_log=target))
    try:
        target.rmdir()  # proven writable at start-up, then replaced by a file: no segment can be made
        target.write_text("not a directory")
        resp = app.test_client().post("/v1/decisions", json={"member_id": members[0], "channel": CHANNEL},
                                      headers=DECIDE)
        assert resp.status_code == 200 and resp.get_json()["decision_id"]
        metrics = app.test_client().get("/metrics").get_data(as_text=True)
        assert "offers_decision_log_failures_total 1.0" in metrics
    finally:
        close_app(app)


def _controlled_program(env: DecisionEnv, path: Path) -> Path:
    """The test program with percent_off offers given a 30% control group, and a holdout of
    30% that gets nothing."""
    import yaml

    config = yaml.safe_load(env.program.read_text())
    config["offer_defaults"]["percent_off"]["control_share"] = 0.3
    config["decisions"]["holdout"] = {"share": 0.3, "salt": "lift-test", "treatment": "nothing"}
    path.write_text(yaml.safe_dump(config))
    return path


def test_offer_control_groups_and_an_empty_holdout_are_logged_and_merge_as_control_exposures(
        env: DecisionEnv, members: list[str], tmp_path: Path) -> None:
    env.promote(env.v1)
    program = _controlled_program(env, tmp_path / "program.yaml")
    app = start_app(env.settings(tmp_path, program=program))
    try:
        client = app.test_client()
        body = {"member_ids": members[:300], "channel": CHANNEL, "n": 3, "include_excluded": True}
        out = client.post("/v1/decisions/batch", json=body, headers=DECIDE)
        decisions = [json.loads(line) for line in out.get_data(as_text=True).splitlines()][:-1]
        again = client.post("/v1/decisions/batch", json=body, headers=DECIDE)
        repeat = [json.loads(line) for line in again.get_data(as_text=True).splitlines()][:-1]
    finally:
        close_app(app)
    held = [d for d in decisions if d["policy"] == "holdout"]
    assert 60 <= len(held) <= 120  # 30% of 300
    assert all(not d["offers"] for d in held)  # the holdout gets nothing
    # what a held-back member was eligible for is excluded as HOLDOUT (members reachable by e-mail at all)
    assert all(e["reason"] != "HOLDOUT" for d in decisions if d["policy"] != "holdout" for e in d["excluded"])
    assert sum("HOLDOUT" in {e["reason"] for e in d["excluded"]} for d in held) >= len(held) / 2

    def controls(ds: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(d["member_id"], e["offer_id"]) for d in ds for e in d.get("excluded", [])
                if e["reason"] == "OFFER_CONTROL"}

    assert controls(decisions) and controls(decisions) == controls(repeat)  # stable assignment
    kinds = pd.read_parquet(env.data / "offers.parquet").set_index("offer_id")["kind"]
    assert {kinds.get(o) for _, o in controls(decisions)} == {"percent_off"}
    treated = [d for d in decisions if d["policy"] != "holdout"]
    eligible = sum(1 for d in treated for e in d.get("excluded", []) if e["reason"] == "OFFER_CONTROL") + sum(
        1 for d in treated for o in d["offers"] if kinds.get(o["offer_id"]) == "percent_off")
    assert eligible > 0
    merged = tmp_path / "merged"
    merge_events(env.data, tmp_path / "events", merged, "UTC")
    assert validate(merged).ok
    exposures = pd.read_parquet(merged / "exposures.parquet")
    logged = exposures[exposures["decision_id"].isin({d["decision_id"] for d in decisions})]
    control = logged[logged["arm"] == "control"]
    assert set(zip(control["member_id"], control["offer_id"], strict=True)) == controls(decisions)
    assert control["arm_probability"].tolist() == pytest.approx([0.3] * len(control))
    shown_percent = logged[(logged["arm"] == "treatment") & logged["offer_id"].map(kinds).eq("percent_off")]
    assert (shown_percent["arm_probability"] <= 0.7 + 1e-9).all()


def test_incoming_events_feed_data_quality_counters(app: Flask, members: list[str]) -> None:
    """Issue 14, part 7: rejected fields by code; accepted events naming unknown offers or products."""
    client = app.test_client()
    headers = {"X-API-Key": EVENTS_KEY}
    good = [{"event_id": "q1", "member_id": members[0], "type": "impression", "offer_id": "no-such-offer",
             "ts": CLOCK, "channel": CHANNEL},
            {"event_id": "q2", "member_id": members[0], "type": "transaction", "product_id": "no-such-product",
             "amount_minor": 250, "ts": CLOCK},
            {"event_id": "q3", "member_id": members[0], "type": "impression", "offer_id": FLASH, "ts": CLOCK,
             "channel": CHANNEL}]  # a program offer: known to the catalog, not to the features
    assert client.post("/v1/events", json={"events": good}, headers=headers).status_code == 200
    bad = {"event_id": "q4", "member_id": members[0], "type": "transaction", "amount_minor": -5, "ts": CLOCK}
    refused = client.post("/v1/events", json={"events": [bad]}, headers=headers)
    assert refused.status_code == 422
    code = refused.get_json()["errors"][0]["code"]
    text = client.get("/metrics").get_data(as_text=True)
    assert 'offers_event_quality_total{problem="unknown_offer"} 1.0' in text
    assert 'offers_event_quality_total{problem="unknown_product"} 1.0' in text
    assert f'offers_event_quality_total{{problem="rejected:{code}"}} 1.0' in text
