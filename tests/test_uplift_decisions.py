"""Cost-aware decisions: the core ranks by expected net value and can send nothing; an uplift
champion decides in ``offers batch`` and in the service (as an app, over a real Redis)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from click.testing import CliRunner

from models.decision import decide
from offerdata.experiments.contract import write_experiment
from offers_cli.main import cli
from runtime.stores import MemberProfile
from runtime.stores.encoding import decode_profile, encode_profile
from tests.conftest import free_port
from tests.decision_helpers import AS_OF, catalog, member, offer, program
from tests.decisions_env import close_app, start_app
from tests.service_helpers import (
    ADMIN_KEY,
    ALL_KEYS,
    DECISIONS_KEY,
    ROOT,
    gunicorn_args,
    make_settings,
    service_env,
    start_process,
    stop_process,
    wait_until_healthy,
)
from tests.test_console import sign_in
from tests.test_decisions_gunicorn import wait_ready
from tests.test_uplift import small_experiment
from training.uplift.data import load_units
from training.uplift.metrics import targeted_value

DECIDE = {"X-API-Key": DECISIONS_KEY}


# -- the decision core ------------------------------------------------------------------------
def test_an_offer_whose_send_costs_more_than_it_earns_is_not_sent() -> None:
    # propensity 0.1 x (value 100 + margin 0) = 10 expected; the send costs 15 -> a loss
    cat = catalog([offer("costly", value=100, send_cost_minor=15), offer("cheap", value=100, send_cost_minor=5)])
    d = decide(cat, member(), ["costly", "cheap"], [0.1, 0.1], as_of=AS_OF)
    assert [o.offer_id for o in d.offers] == ["cheap"]
    assert ("costly", "COST_EXCEEDS_VALUE") in d.excluded
    assert d.offers[0].priority == pytest.approx(0.1 * 100 - 5)
    reasons = d.offers[0].reasons
    assert "EXPECTED_VALUE:0.10" in reasons and "COST:0.05" in reasons and "NET_VALUE:+0.05" in reasons


def test_no_offer_is_an_option_only_while_min_net_value_is_set() -> None:
    prog = program()
    off = prog.model_copy(update={"decisions": prog.decisions.model_copy(update={"min_net_value": None})})
    cat = catalog([offer("costly", value=100, send_cost_minor=15)], off)
    assert [o.offer_id for o in decide(cat, member(), ["costly"], [0.1], as_of=AS_OF).offers] == ["costly"]
    strict = prog.model_copy(update={"decisions": prog.decisions.model_copy(update={"min_net_value": 0.2})})
    cat = catalog([offer("costly", value=100, send_cost_minor=5)], strict)  # earns 0.05 net, below 0.20
    assert decide(cat, member(), ["costly"], [0.1], as_of=AS_OF).offers == ()


def test_uplift_ranks_by_the_conversions_an_offer_causes() -> None:
    # "sure" is redeemed by members who buy anyway (high propensity, no uplift); "nudge" changes behaviour
    cat = catalog([offer("sure", value=100, conversion_value_minor=1000, send_cost_minor=15),
                   offer("nudge", value=100, conversion_value_minor=1000, send_cost_minor=15)])
    d = decide(cat, member(), ["sure", "nudge"], [0.6, 0.1], uplift=[0.001, 0.05], as_of=AS_OF)
    assert [o.offer_id for o in d.offers] == ["nudge"]  # sure: 0.001 x 1000 - 15 < 0
    assert ("sure", "COST_EXCEEDS_VALUE") in d.excluded
    top = d.offers[0]
    assert top.uplift == pytest.approx(0.05) and top.priority == pytest.approx(0.05 * 1000 - 15)
    assert {"MODEL_UPLIFT", "UPLIFT:+0.0500", "INCREMENTAL_VALUE:0.50", "COST:0.15", "NET_VALUE:+0.35"} <= set(
        top.reasons)


def test_a_retailer_cost_is_paid_on_every_redemption_not_only_the_caused_ones() -> None:
    cat = catalog([offer("coupon", value=100, cost_minor=100, conversion_value_minor=1000)])
    # 0.06 x 1000 = 60 earned by the caused conversions, 0.5 x 100 = 50 paid on all redemptions
    d = decide(cat, member(), ["coupon"], [0.5], uplift=[0.06], as_of=AS_OF)
    assert d.offers[0].priority == pytest.approx(10.0)
    # members who would mostly redeem anyway cost more than the offer causes
    d = decide(cat, member(), ["coupon"], [0.7], uplift=[0.06], as_of=AS_OF)
    assert d.offers == () and ("coupon", "COST_EXCEEDS_VALUE") in d.excluded


def test_member_attributes_round_trip_through_the_profile_encoding() -> None:
    profile = MemberProfile("fp", joined_at=5, attributes=(("attr_x", 1.5), ("attr_kind", "a")))
    assert decode_profile(encode_profile(profile)) == profile
    assert decode_profile({b"fp": b"fp", b"at": b"not json"}) == MemberProfile("fp")


# -- offers batch and the service with an uplift champion ----------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A toy experiment (only members with attr_x > 0 respond to the offer: uplift 0.25, worth
    $2.50 a member against a $1 send; the others' uplift is 0), and its uplift model."""
    root = tmp_path_factory.mktemp("uplift-decisions")
    write_experiment(small_experiment(4000, 1, send_cost_minor=100), root / "train", held_out=False)
    write_experiment(small_experiment(3000, 2, send_cost_minor=100), root / "test", held_out=True)
    import training.uplift.train as t

    with pytest.MonkeyPatch.context() as mp:  # few trees: a quick test
        mp.setattr(t, "CANDIDATES", (("t_learner", 4, 40),))
        result = CliRunner().invoke(cli, ["train", "--data", str(root / "train"), "--registry", str(root / "reg")])
    assert result.exit_code == 0, result.output
    return root / "train", root / "test", root / "reg"


def test_batch_sends_the_offer_only_where_its_uplift_pays(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, test, reg = trained
    out = tmp_path / "decisions.parquet"
    result = CliRunner().invoke(cli, ["batch", "--data", str(test), "--registry", str(reg), "--members",
                                      str(test / "members.parquet"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out)
    members = pd.read_parquet(test / "members.parquet").set_index("member_id")
    x = members.loc[rows["member_id"], "attr_x"].to_numpy()
    assert 0 < len(rows) < len(members)  # "no offer" for the others
    assert (x > 0).mean() > 0.8  # the true uplift is 0.25 for x > 0, none otherwise
    assert (rows["net_value"] > 0).all() and rows["uplift"].notna().all()
    assert rows["net_value"].to_numpy() == pytest.approx(rows["uplift"].to_numpy() * 10.0 - 1.0)
    assert rows["reasons"].str.contains("UPLIFT:").all() and rows["reasons"].str.contains("COST:1.00").all()
    # measured on the held-out outcomes: more than sending everyone, and a positive IRR
    units = load_units(test, "holdout").frame
    chosen = units["member_id"].isin(set(rows["member_id"])).to_numpy()
    y, t = units["y"].to_numpy(float), units["t"].to_numpy(int)
    ours = targeted_value(y, t, chosen, 10.0, 1.0)
    everyone = targeted_value(y, t, np.ones(len(y), bool), 10.0, 1.0)
    assert ours["net_value"] > everyone["net_value"] and ours["irr"] > everyone["irr"]


def test_the_service_decides_with_an_uplift_champion_over_redis(trained: tuple[Path, Path, Path], tmp_path: Path,
                                                                redis_url: str) -> None:
    _, test, reg = trained
    settings = make_settings(tmp_path, data=test, program=test / "program.yaml", registry=reg,
                             clock=(test / "decision_moment.txt").read_text().strip(), api_keys=ALL_KEYS,
                             redis_url=redis_url)
    app = start_app(settings)
    try:
        client = app.test_client()
        members = pd.read_parquet(test / "members.parquet")
        high = str(members.loc[members["attr_x"].idxmax(), "member_id"])
        low = str(members.loc[members["attr_x"].idxmin(), "member_id"])
        yes = client.post("/v1/decisions", json={"member_id": high, "channel": "email"},
                          headers=DECIDE)
        assert yes.status_code == 200, yes.get_data(as_text=True)
        body = yes.get_json()
        assert body["policy"] == "personalised"
        [sent] = body["offers"]
        assert sent["offer_id"] == "promo" and sent["uplift"] > 0.1
        assert any(r.startswith("NET_VALUE:+") for r in sent["reasons"])
        no = client.post("/v1/decisions", json={"member_id": low, "channel": "email"},
                         headers=DECIDE).get_json()
        assert no["offers"] == []
        assert {"offer_id": "promo", "reason": "COST_EXCEEDS_VALUE"} in no["excluded"]
        # the console shows support staff the uplift and the net value behind the offer
        sign_in(client, ADMIN_KEY)
        page = client.get(f"/console/members?q={high}&channel=email")
        assert page.status_code == 200, page.text
        row = page.text.split('data-offer-id="promo"', 1)[1].split("</tr>", 1)[0]
        assert f"{sent['uplift']:+.4f}" in row and f"{sent['net_value']:+.2f}" in row
        assert "COST_EXCEEDS_VALUE" in client.get(f"/console/members?q={low}&channel=email").text
    finally:
        close_app(app)


@pytest.mark.slow
def test_gunicorn_workers_serve_an_uplift_champion(trained: tuple[Path, Path, Path], tmp_path: Path,
                                                   redis_url: str) -> None:
    """The real CLI materializes the attributes into Redis; two gunicorn workers load the uplift
    champion after the fork and decide from them."""
    _, test, reg = trained
    clock = (test / "decision_moment.txt").read_text().strip()
    environ = service_env(tmp_path, REDIS_URL=redis_url, OFFERS_API_KEYS=ALL_KEYS, OFFERS_WORKERS="2",
                          OFFERS_DATA=str(test), OFFERS_REGISTRY=str(reg), OFFERS_CLOCK=clock)
    done = subprocess.run([sys.executable, "-m", "offers_cli.main", "materialize", "--data", str(test),
                           "--registry", str(reg)], env=environ, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "uplift model" in done.stdout
    port = free_port()
    log = tmp_path / "gunicorn.log"
    proc = start_process(gunicorn_args(port), environ, log)
    base = f"http://127.0.0.1:{port}"
    members = pd.read_parquet(test / "members.parquet").sort_values("attr_x")
    try:
        wait_until_healthy(base, proc, log)
        wait_ready(base)
        session = requests.Session()
        seen = {}
        for member_id in [*members["member_id"].head(10), *members["member_id"].tail(10)]:
            resp = session.post(base + "/v1/decisions", json={"member_id": member_id, "channel": "email"},
                                headers=DECIDE, timeout=60)  # a worker may still be loading its model
            assert resp.status_code == 200, resp.text
            seen[member_id] = [o["offer_id"] for o in resp.json()["offers"]]
        assert all(seen[m] == [] for m in members["member_id"].head(10))  # x lowest: the offer does not pay
        assert all(seen[m] == ["promo"] for m in members["member_id"].tail(10))  # x highest: it does
    finally:
        assert stop_process(proc) == 0
