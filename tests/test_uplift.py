"""Uplift metrics against hand-computed values, and train -> evaluate -> score on a small experiment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from models.model import ArtifactError, PropensityModel
from models.registry import Registry
from offerdata.experiments.contract import (
    Experiment,
    ExperimentOffer,
    program_yaml,
    write_experiment,
)
from offers_cli.main import cli
from training.uplift.metrics import auuc, qini, qini_curve, targeted_value, uplift_at_k

Y = np.array([1, 0, 1, 0, 0, 1])
T = np.array([1, 1, 0, 0, 1, 0])
S = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


def test_qini_curve_by_hand() -> None:
    # i=1: Yt=1, Nt=1, no control -> 1; i=2: 1; i=3: Yt=1,Nt=2,Yc=1,Nc=1 -> 1-2=-1;
    # i=4: 1 - 1*2/2 = 0; i=5: 1 - 1*3/2 = -0.5; i=6: 1 - 2*3/3 = -1
    assert qini_curve(Y, T, S).tolist() == [1.0, 1.0, -1.0, 0.0, -0.5, -1.0]
    assert qini(Y, T, S) == pytest.approx((1 + 1 - 1 + 0 - 0.5 - 1) / 6 / 3)


def test_uplift_at_k_and_auuc_by_hand() -> None:
    # top half: units 0,1,2 -> treated rate 1/2, control rate 1/1
    assert uplift_at_k(Y, T, S, 0.5) == pytest.approx(0.5 - 1.0)
    # uplift curve: i=3: (1/2-1)*3=-1.5; i=4: (1/2-1/2)*4=0; i=5: (1/3-1/2)*5; i=6: (1/3-2/3)*6; first two 0
    expected = (0 + 0 - 1.5 + 0 + (1 / 3 - 1 / 2) * 5 + (1 / 3 - 2 / 3) * 6) / 6 / 6
    assert auuc(Y, T, S) == pytest.approx(expected)


def test_targeted_value_is_starbucks_irr_and_nir() -> None:
    chosen = np.array([True, True, True, True, False, False])
    v = targeted_value(Y, T, chosen, value=10.0, cost=0.15)
    assert v["irr"] == pytest.approx(1 / 2 - 1 / 2)
    assert v["nir"] == pytest.approx(10 * 1 - 0.15 * 2 - 10 * 1)


def small_experiment(n: int, seed: int, send_cost_minor: int = 15) -> Experiment:
    """Members whose response to the offer depends on attr_x: only x > 0 respond to treatment."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    treated = rng.random(n) < 0.5
    p = 0.05 + 0.25 * (treated & (x > 0))
    units = pd.DataFrame({"member_id": [f"{seed}-{i}" for i in range(n)], "attr_x": x,
                          "attr_kind": np.where(rng.random(n) < 0.5, "a", "b"),
                          "offer": np.where(treated, "promo", None), "outcome": rng.random(n) < p,
                          "amount_minor": 1000})
    return Experiment("toy", units, (ExperimentOffer("promo", "Promo", send_cost_minor, 1000),), pd.Timestamp("2020-01-01"),
                      7, {"treatment": 0.5, "control": 0.5}, program_yaml("toy"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("uplift")
    write_experiment(small_experiment(4000, 1), root / "train", held_out=False)
    write_experiment(small_experiment(3000, 2), root / "test", held_out=True)
    import training.uplift.train as t

    with pytest.MonkeyPatch.context() as mp:  # few trees: a quick test
        mp.setattr(t, "CANDIDATES", (("t_learner", 4, 40), ("class_transformation", 4, 40)))
        result = CliRunner().invoke(cli, ["train", "--data", str(root / "train"), "--registry", str(root / "reg")])
    assert result.exit_code == 0, result.output
    assert "(uplift)" in result.output  # chosen automatically: the data has control arms
    return root / "train", root / "test", root / "reg"


def test_uplift_model_finds_the_responders_on_held_out_data(trained: tuple[Path, Path, Path]) -> None:
    _, test, reg = trained
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(test), "--registry", str(reg),
                                      "--bootstrap", "20", "--json"])
    assert result.exit_code == 0, result.output
    import json

    m = json.loads(result.output)["offers"]["promo"]
    # the true uplift is 0.25 for x > 0 and 0 otherwise: the model's top 30% beat random's
    assert m["ranking"]["model"]["uplift@30%"] > 0.15 > m["ranking"]["random"]["uplift@30%"]
    assert m["ranking"]["model"]["qini"] > m["ranking"]["random"]["qini"]
    assert m["policy"]["model"]["net_value"] > m["policy"]["random"]["net_value"]
    assert m["policy"]["model"]["irr"] > m["policy"]["treat_everyone"]["irr"]
    assert m["policy"]["treat_no_one"]["nir"] == 0.0
    lo, hi = m["ci95"]["uplift@30%"]
    assert lo <= m["ranking"]["model"]["uplift@30%"] <= hi


def test_evaluate_refuses_a_directory_without_held_out_outcomes(trained: tuple[Path, Path, Path]) -> None:
    train, _, reg = trained
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(train), "--registry", str(reg)])
    assert result.exit_code == 1 and "no holdout_transactions" in result.output


def test_score_without_pairs_scores_every_member_and_offer(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, test, reg = trained
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(cli, ["score", "--data", str(test), "--registry", str(reg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(out)
    assert len(scores) == 3000 and set(scores["offer_id"]) == {"promo"}
    assert {"member_id", "offer_id", "propensity", "uplift"} <= set(scores.columns)
    members = pd.read_parquet(test / "members.parquet").set_index("member_id")
    x = members.loc[scores["member_id"], "attr_x"].to_numpy()
    assert scores["uplift"][x > 0.5].mean() > scores["uplift"][x < -0.5].mean() + 0.1
    pairs = tmp_path / "pairs.csv"
    scores[["member_id", "offer_id"]].head(5).assign(as_of="2020-01-01").to_csv(pairs, index=False)
    result = CliRunner().invoke(cli, ["score", "--data", str(test), "--registry", str(reg), "--pairs", str(pairs),
                                      "--out", str(tmp_path / "p.parquet")])
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(tmp_path / "p.parquet")["uplift"].tolist() == pytest.approx(scores["uplift"].head(5).tolist())


def test_propensity_loader_refuses_an_uplift_version_clearly(trained: tuple[Path, Path, Path]) -> None:
    _, _, reg = trained
    with pytest.raises(ArtifactError, match="is an uplift model"):
        PropensityModel.load(Registry(reg).path("champion"))


def test_an_x_learner_round_trips_through_the_registry_format(tmp_path: Path) -> None:
    import json

    from models.uplift import UpliftModel, load_uplift
    from training.uplift.learners import UpliftLearner

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 2))
    t = (rng.random(3000) < 0.3).astype(np.int64)  # unequal arms: the X-learner mixes by the treated share
    y = (rng.random(3000) < 0.05 + 0.3 * t * (X[:, 0] > 0)).astype(np.int64)
    learner = UpliftLearner.fit("x_learner", X, t, y, ["attr_a", "attr_b"], [], 4, 30, 100)
    assert learner.treated_share == pytest.approx(t.mean())
    uplift, _ = learner.predict(X)
    assert uplift[X[:, 0] > 0.5].mean() > uplift[X[:, 0] < -0.5].mean() + 0.15
    UpliftModel({"o": learner}, ["attr_a", "attr_b"], {}, {"offers": {"o": {}}}).save(tmp_path)
    loaded = load_uplift(tmp_path)
    assert loaded.learners["o"].method == "x_learner"
    assert loaded.predict_offer("o", X)[0] == pytest.approx(uplift)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    meta["offers"]["o"]["treated_share"] = 1.5
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="treated share"):
        load_uplift(tmp_path)


def test_selection_prefers_the_learner_whose_policy_earns_most_out_of_fold() -> None:
    from training.uplift.train import choose

    ranks_best = {"method": "a", "qini": 0.009, "policy_net_value": 100.0}
    earns_most = {"method": "b", "qini": 0.007, "policy_net_value": 250.0}
    assert choose([ranks_best, earns_most])["method"] == "b"
    no_value = [{"method": "a", "qini": 0.009}, {"method": "b", "qini": 0.007}]
    assert choose(no_value)["method"] == "a"  # an offer without a known value: Qini decides
