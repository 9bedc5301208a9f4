"""The data contract's experiment columns: arms, arm probabilities, send cost and value, typed attributes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from offerdata.attributes import attribute_kinds, read_attributes
from offerdata.loader import load_catalog, load_history, read_sent_exposures
from offerdata.tables import write_table
from offerdata.validate import validate
from offers_cli.main import cli
from tests.factory import tiny_tables, write_tiny


def experiment_tables() -> dict[str, pd.DataFrame]:
    """The tiny tables with an experiment: m3 is c1-o1's control, costs and values on the offers."""
    t = tiny_tables()
    t["exposures"] = pd.concat([t["exposures"], pd.DataFrame({
        "exposure_id": ["e4"], "member_id": ["m3"], "offer_id": ["c1-o1"],
        "exposed_at": [pd.Timestamp("2017-02-01")], "channel": ["email"]})], ignore_index=True)
    t["exposures"]["arm"] = ["treatment", None, "treatment", "control"]
    t["exposures"]["arm_probability"] = [0.5, None, 1.0, 0.5]
    t["offers"]["send_cost_minor"] = pd.array([15, None], dtype="Int64")
    t["offers"]["value_minor"] = pd.array([1000, 250], dtype="Int64")
    t["members"]["attr_visits"] = pd.array([3, None, 7], dtype="Int64")
    t["members"]["attr_spend"] = [1.5, 2.0, None]
    t["members"]["attr_newbie"] = [True, False, True]
    return t


def write(tmp_path: Path, mutate=None) -> Path:
    """Write the experiment tables after ``mutate(tables)``."""
    t = experiment_tables()
    if mutate:
        mutate(t)
    return write_tiny(tmp_path / "data", t)


def checks(path: Path) -> set[tuple[str, str | None, str]]:
    return {(p.table, p.column, p.check) for p in validate(path).problems}


def test_experiment_columns_are_valid(tmp_path: Path) -> None:
    report = validate(write(tmp_path))
    assert report.ok, report.render()


def test_old_directories_without_the_columns_stay_valid(tiny_dir: Path) -> None:
    assert validate(tiny_dir).ok


def test_unknown_arm_and_probability_out_of_range(tmp_path: Path) -> None:
    def mutate(t):
        t["exposures"].loc[0, "arm"] = "placebo"
        t["exposures"].loc[1, "arm_probability"] = 0.0
    assert checks(write(tmp_path, mutate)) == {("exposures", "arm", "unknown_value"),
                                               ("exposures", "arm_probability", "out_of_range")}


def test_negative_send_cost_and_value(tmp_path: Path) -> None:
    def mutate(t):
        t["offers"]["send_cost_minor"] = pd.array([-1, None], dtype="Int64")
        t["offers"]["value_minor"] = pd.array([1000, -5], dtype="Int64")
    assert checks(write(tmp_path, mutate)) == {("offers", "send_cost_minor", "negative"),
                                               ("offers", "value_minor", "negative")}


def test_a_redemption_by_a_control_member_is_refused(tmp_path: Path) -> None:
    def mutate(t):
        t["redemptions"] = pd.concat([t["redemptions"], pd.DataFrame({
            "redemption_id": ["r2"], "member_id": ["m3"], "offer_id": ["c1-o1"],
            "redeemed_at": [pd.Timestamp("2017-02-11 12:00")]})], ignore_index=True)
    assert checks(write(tmp_path, mutate)) == {("redemptions", "member_id+offer_id", "control_redemption")}


def test_attribute_columns_must_be_scalar_and_well_named(tmp_path: Path) -> None:
    def mutate(t):
        t["members"]["attr_Bad Name"] = ["x", "y", "z"]
        t["members"]["attr_tags"] = [["a"], ["b"], []]
    assert checks(write(tmp_path, mutate)) == {("members", "attr_Bad Name", "bad_name"),
                                               ("members", "attr_tags", "wrong_type")}


def test_attributes_are_read_typed_from_parquet_and_csv(tmp_path: Path) -> None:
    path = write(tmp_path)
    attrs = read_attributes(path)
    assert attribute_kinds(attrs) == {"attr_age": "category", "attr_visits": "numeric",
                                      "attr_spend": "numeric", "attr_newbie": "numeric"}
    assert attrs["attr_visits"].tolist()[0] == 3.0 and pd.isna(attrs["attr_visits"].tolist()[1])
    assert attrs["attr_newbie"].tolist() == [1.0, 0.0, 1.0]
    members = pd.read_parquet(path / "members.parquet")
    (path / "members.parquet").unlink()
    members.to_csv(path / "members.csv", index=False)
    from_csv = read_attributes(path)
    assert attribute_kinds(from_csv)["attr_visits"] == "numeric"
    assert attribute_kinds(from_csv)["attr_age"] == "category"


def test_control_assignments_are_not_exposures_for_features(tmp_path: Path) -> None:
    path = write(tmp_path)
    sent = read_sent_exposures(path, ["member_id", "offer_id"])
    assert sorted(map(tuple, sent.to_numpy())) == [("m1", "c1-o1"), ("m2", "c1-o1"), ("m2", "c1-o2")]
    _, exposures, _ = load_history(path, load_catalog(path))
    assert "m3" not in set(exposures["member_id"])


def test_holdout_transactions_are_validated_when_present(tmp_path: Path) -> None:
    path = write(tmp_path)
    holdout = tiny_tables()["transactions"].head(1).assign(member_id="nobody")
    write_table(holdout, path, "holdout_transactions")
    assert checks(path) == {("holdout_transactions", "member_id", "dangling")}


def test_validate_cli_reports_the_new_checks(tmp_path: Path) -> None:
    def mutate(t):
        t["exposures"].loc[0, "arm"] = "placebo"
    result = CliRunner().invoke(cli, ["data", "validate", str(write(tmp_path, mutate))])
    assert result.exit_code == 1
    assert "exposures.arm [unknown_value]" in result.output
