"""``offers lift``: the estimator recovers a known lift at about its nominal rate, the
sample-ratio check catches a broken assignment, and the command reports a real service's
decision log against its outcomes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from flask import Flask

from models.policy import in_holdout
from offers_cli.main import cli
from tests.decisions_env import CHANNEL, CLOCK, DecisionEnv, build, close_app, start_app
from tests.service_helpers import ADMIN_KEY, DECISIONS_KEY, EVENTS_KEY
from training.lift import lift_row, measure, sample_ratio

TRUE_LIFT = 40.0  # minor units of spend per treated member


def simulated_outcomes(seed: int, n: int = 3000, share: float = 0.2, lift: float = TRUE_LIFT) -> pd.DataFrame:
    """Members assigned by the holdout hash, spending a skewed amount; treated ones ``lift`` more on average."""
    rng = np.random.default_rng(seed)
    ids = [f"S{seed}-{i}" for i in range(n)]
    control = np.array([in_holdout(m, f"salt-{seed}", share) for m in ids])
    spend = rng.gamma(0.8, 250.0, n) + np.where(control, 0.0, rng.exponential(lift, n))
    return pd.DataFrame({"member_id": ids, "arm": np.where(control, "control", "treatment"),
                         "model_version": "v1", "channel": "app", "spend_minor": spend,
                         "visits": rng.poisson(3, n).astype(float), "redemptions": rng.poisson(0.3, n).astype(float)})


def test_the_interval_covers_a_known_lift_at_about_its_nominal_rate() -> None:
    rows = [lift_row("all", "spend_minor", simulated_outcomes(seed), 0.90, seed) for seed in range(60)]
    assert all(r is not None for r in rows)
    covered = sum(r.low <= TRUE_LIFT <= r.high for r in rows if r is not None)
    assert 48 <= covered <= 60  # nominal 90% of 60 = 54
    estimates = np.array([r.lift for r in rows if r is not None])
    assert abs(estimates.mean() - TRUE_LIFT) < 5  # unbiased: the mean of 60 estimates is near the truth


def test_no_effect_gives_intervals_around_zero() -> None:
    rows = [lift_row("all", "spend_minor", simulated_outcomes(seed, lift=0.0), 0.90, seed) for seed in range(40)]
    covered = sum(r.low <= 0.0 <= r.high for r in rows if r is not None)
    assert 32 <= covered <= 40


def test_the_sample_ratio_check_catches_a_lost_share_of_the_control_group() -> None:
    frame = simulated_outcomes(1, n=20_000)
    assert sample_ratio(frame, 0.2).ok
    control = frame.index[frame["arm"] == "control"]
    broken = frame.drop(control[: len(control) // 3])  # a third of the control decisions were not logged
    check = sample_ratio(broken, 0.2)
    assert not check.ok and check.p_value is not None and check.p_value < 1e-3


def test_rows_cover_every_group_and_metric() -> None:
    frame = simulated_outcomes(2)
    frame.loc[frame.index[::2], "model_version"] = "v2"
    rows, srm = measure(frame, 0.2, 0.9, 0)
    groups = {(r.group, r.metric) for r in rows}
    for group in ("all", "model_version=v1", "model_version=v2", "channel=app"):
        for metric in ("spend_minor", "visits", "redemptions"):
            assert (group, metric) in groups
    total = next(r for r in rows if r.group == "all" and r.metric == "spend_minor")
    assert total.incremental_total == pytest.approx(total.lift * total.treated)
    assert srm.ok


# -- the command against a real service's logs ---------------------------------------------------
@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> DecisionEnv:
    return build(tmp_path_factory.mktemp("decisions"))


@pytest.fixture
def app(env: DecisionEnv, tmp_path: Path) -> Iterator[Flask]:
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path))
    yield app
    close_app(app)


def test_offers_lift_reports_a_services_decisions_against_its_outcomes(app: Flask, env: DecisionEnv,
                                                                        tmp_path: Path) -> None:
    members = [str(m) for m in pd.read_parquet(env.data / "members.parquet")["member_id"]]
    client = app.test_client()
    out = client.post("/v1/decisions/batch", json={"member_ids": members, "channel": CHANNEL, "n": 2},
                      headers={"X-API-Key": DECISIONS_KEY})
    decisions = [json.loads(line) for line in out.get_data(as_text=True).splitlines()][:-1]
    holdout = {d["member_id"] for d in decisions if d["policy"] == "holdout"}
    assert holdout and len(holdout) < len(members)
    # after the campaign, every treated member buys once for 5.00, every control member for 2.00
    events = [{"event_id": f"tx-{m}", "member_id": m, "type": "transaction", "ts": "2025-11-12T13:00:00Z",
               "amount_minor": 200 if m in holdout else 500, "basket_id": f"b-{m}"} for m in members]
    for lo in range(0, len(events), 500):
        resp = client.post("/v1/events", json={"events": events[lo:lo + 500]}, headers={"X-API-Key": EVENTS_KEY})
        assert resp.status_code == 200, resp.get_data(as_text=True)
    app.extensions["offers"].event_log.close()
    report, figures = tmp_path / "lift.html", tmp_path / "lift.json"
    result = CliRunner().invoke(cli, ["lift", "--log", str(tmp_path / "events"), "--data", str(env.data),
                                      "--program", str(env.program), "--since", CLOCK[:10],
                                      "--until", "2025-11-13", "--out", str(report), "--json", str(figures)])
    assert result.exit_code == 0, result.output
    data = json.loads(figures.read_text())
    spend = next(r for r in data["rows"] if r["group"] == "all" and r["metric"] == "spend_minor")
    # the data's own purchases after 12:00 are few; the planted 3.00 difference dominates
    assert spend["control"] == len(holdout) and spend["treated"] == len(members) - len(holdout)
    assert spend["low"] <= spend["lift"] <= spend["high"] and spend["lift"] > 250
    assert data["sample_ratio"]["expected_share"] == 0.05 and data["sample_ratio"]["ok"]
    page = report.read_text()
    assert "What the offers earned" in page and "data:image/png;base64," in page
    assert "spend_minor" in result.output and "incremental total" in result.output
    # the funnel: every offer the logged decisions returned, counted once per decision, with the
    # window's redemptions (the data's own) and their rate
    issued: dict[str, int] = {}
    for d in decisions:
        for o in d["offers"]:
            issued[o["offer_id"]] = issued.get(o["offer_id"], 0) + 1
    assert {f["offer_id"]: f["issued"] for f in data["funnel"]} == issued
    assert all(f["rate"] == f["redeemed"] / f["issued"] for f in data["funnel"] if f["issued"])
    # and the console's offers page shows them from the report
    from tests.test_console import sign_in

    (tmp_path / "events" / "lift.json").write_text(figures.read_text())
    sign_in(client, ADMIN_KEY)
    offers_page = client.get("/console/offers").text
    top = data["funnel"][0]
    assert 'id="funnel"' in offers_page and f'<td>{top["offer_id"]}</td><td>{top["issued"]:,}</td>' in offers_page
    (tmp_path / "events" / "lift.json").write_text(json.dumps({**data, "funnel": [{"offer_id": 1}]}))
    broken = client.get("/console/offers")
    assert broken.status_code == 200 and "no readable issued and redeemed counts" in broken.text


def test_offers_lift_without_decisions_says_what_to_do(env: DecisionEnv, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["lift", "--log", str(tmp_path / "empty"), "--data", str(env.data),
                                      "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "no logged decisions" in result.output and "Traceback" not in result.output


def test_offers_with_a_control_group_get_their_own_lift(env: DecisionEnv, tmp_path: Path) -> None:
    """percent_off offers hold back 30% of eligible members: members shown the busiest such
    offer spend 5.00, those held back from it 2.00; its own row recovers the 3.00."""
    import yaml

    from training.lift import read_offer_arms

    config = yaml.safe_load(env.program.read_text())
    config["offer_defaults"]["percent_off"]["control_share"] = 0.3
    program = tmp_path / "program.yaml"
    program.write_text(yaml.safe_dump(config))
    env.promote(env.v1)
    app = start_app(env.settings(tmp_path, program=program))
    try:
        client = app.test_client()
        members = [str(m) for m in pd.read_parquet(env.data / "members.parquet")["member_id"]]
        out = client.post("/v1/decisions/batch", json={"member_ids": members, "channel": CHANNEL, "n": 3},
                          headers={"X-API-Key": DECISIONS_KEY})
        assert out.status_code == 200
        arms = read_offer_arms(tmp_path / "events", "UTC", None, None)
        counts = arms.groupby(["offer_id", "arm"]).size().unstack(fill_value=0)
        offer = str((counts.min(axis=1)).idxmax())
        assert counts.loc[offer].min() >= 20, counts.sort_values("control").tail()
        mine = arms[arms["offer_id"] == offer].set_index("member_id")["arm"]
        events = [{"event_id": f"tx-{m}", "member_id": m, "type": "transaction", "ts": "2025-11-12T13:00:00Z",
                   "amount_minor": 500 if arm == "treatment" else 200, "basket_id": f"b-{m}"}
                  for m, arm in mine.items()]
        resp = client.post("/v1/events", json={"events": events}, headers={"X-API-Key": EVENTS_KEY})
        assert resp.status_code == 200, resp.get_data(as_text=True)
    finally:
        close_app(app)
    figures = tmp_path / "lift.json"
    result = CliRunner().invoke(cli, ["lift", "--log", str(tmp_path / "events"), "--data", str(env.data),
                                      "--program", str(program), "--since", CLOCK[:10], "--until", "2025-11-13",
                                      "--out", str(tmp_path / "lift.html"), "--json", str(figures)])
    assert result.exit_code == 0, result.output
    rows = json.loads(figures.read_text())["rows"]
    spend = next(r for r in rows if r["group"] == f"offer={offer}" and r["metric"] == "spend_minor")
    assert spend["treated"] == (mine == "treatment").sum() and spend["control"] == (mine == "control").sum()
    # the outcome window also holds the data's own purchases after the decision, so the lift is
    # 300 plus the arms' difference in those; worked out here from the data, it must match exactly
    tx = pd.read_parquet(env.data / "transactions.parquet", columns=["member_id", "purchased_at", "amount_minor"])
    start = arms[arms["offer_id"] == offer].groupby("member_id")["at"].min()
    tx = tx[tx["member_id"].astype(str).isin(start.index)]
    tx = tx[(tx["purchased_at"] >= tx["member_id"].astype(str).map(start)) & (tx["purchased_at"] < pd.Timestamp("2025-11-13"))]
    data_spend = tx.groupby(tx["member_id"].astype(str))["amount_minor"].sum()
    own = pd.Series({m: (500 if arm == "treatment" else 200) + data_spend.get(m, 0) for m, arm in mine.items()})
    expected = own[mine == "treatment"].mean() - own[mine == "control"].mean()
    assert abs(spend["lift"] - expected) < 1e-6, (spend["lift"], expected)
    assert spend["low"] <= spend["lift"] <= spend["high"]
