"""Every class of bad input the contract validator must catch, each with its message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from offerdata.tables import DataDirError
from offerdata.validate import DataDirInvalid, Problem, require_valid, validate
from offers_cli.main import cli
from tests.factory import tiny_tables, write_tiny


def broken(tmp_path: Path, mutate) -> Path:
    """Write the tiny dataset after ``mutate(tables)`` changed it."""
    tables = tiny_tables()
    mutate(tables)
    return write_tiny(tmp_path / "data", tables)


def only_problem(path: Path) -> Problem:
    report = validate(path)
    assert len(report.problems) == 1, report.render()
    return report.problems[0]


def test_tiny_dataset_is_valid(tiny_dir: Path) -> None:
    report = validate(tiny_dir)
    assert report.ok, report.render()
    assert report.row_counts["transactions"] == 5


def test_missing_table(tmp_path: Path) -> None:
    path = write_tiny(tmp_path / "data")
    (path / "redemptions.parquet").unlink()
    p = only_problem(path)
    assert (p.table, p.check) == ("redemptions", "missing_table")
    assert "no redemptions.parquet or redemptions.csv" in p.message


def test_missing_column(tmp_path: Path) -> None:
    p = only_problem(broken(tmp_path, lambda t: t["transactions"].pop("quantity")))
    assert (p.table, p.column, p.check) == ("transactions", "quantity", "missing_column")
    assert "required column 'quantity' (int) is missing" in p.message


def test_mistyped_column(tmp_path: Path) -> None:
    def mutate(t):
        t["transactions"]["amount_minor"] = t["transactions"]["amount_minor"] / 100.0
    p = only_problem(broken(tmp_path, mutate))
    assert (p.column, p.check) == ("amount_minor", "wrong_type")
    assert "type DOUBLE, expected int" in p.message


def test_unparsable_timestamp(tmp_path: Path) -> None:
    def mutate(t):
        t["exposures"]["exposed_at"] = ["2017-02-01", "2017-02-31", "yesterday"]
    p = only_problem(broken(tmp_path, mutate))
    assert (p.table, p.column, p.check, p.rows) == ("exposures", "exposed_at", "unparsable", 2)
    assert "cannot be parsed as timestamp" in p.message
    assert p.example in ("'2017-02-31'", "'yesterday'")


def test_unparsable_integer_in_csv(tmp_path: Path) -> None:
    path = write_tiny(tmp_path / "data")
    tx = pd.read_parquet(path / "transactions.parquet").astype(str)
    tx.loc[0, "quantity"] = "2.5"
    (path / "transactions.parquet").unlink()
    tx.to_csv(path / "transactions.csv", index=False)
    p = only_problem(path)
    assert (p.column, p.check, p.rows, p.example) == ("quantity", "unparsable", 1, "'2.5'")


def test_null_in_required_column(tmp_path: Path) -> None:
    def mutate(t):
        t["offers"].loc[1, "campaign_id"] = None
    p = only_problem(broken(tmp_path, mutate))
    assert (p.table, p.column, p.check, p.rows) == ("offers", "campaign_id", "null", 1)


def test_duplicate_ids(tmp_path: Path) -> None:
    def mutate(t):
        t["members"].loc[2, "member_id"] = "m1"
        t["transactions"].loc[4, "member_id"] = "m1"
    p = only_problem(broken(tmp_path, mutate))
    assert (p.table, p.column, p.check, p.rows, p.example) == ("members", "member_id", "duplicate", 2, "'m1'")
    assert "1 member_id value(s) appear more than once" in p.message


def test_transaction_for_unknown_member(tmp_path: Path) -> None:
    def mutate(t):
        t["transactions"].loc[0, "member_id"] = "ghost"
    p = only_problem(broken(tmp_path, mutate))
    assert (p.table, p.column, p.check, p.example) == ("transactions", "member_id", "dangling", "'ghost'")
    assert "not in members" in p.message


def test_redemption_never_exposed(tmp_path: Path) -> None:
    def mutate(t):
        t["redemptions"].loc[0, "member_id"] = "m3"
    p = only_problem(broken(tmp_path, mutate))
    assert (p.table, p.check, p.example) == ("redemptions", "dangling", "'m3 / c1-o2'")
    assert p.message == "redemption of an offer never exposed to that member"


def test_negative_quantity(tmp_path: Path) -> None:
    def mutate(t):
        t["transactions"].loc[1, "quantity"] = -1
    p = only_problem(broken(tmp_path, mutate))
    assert (p.column, p.check, p.rows, p.example) == ("quantity", "negative", 1, "'-1'")
    assert p.message == "quantity is negative"


def test_window_ends_before_start(tmp_path: Path) -> None:
    def mutate(t):
        t["offers"].loc[0, "ends_at"] = pd.Timestamp("2017-01-15")
    report = validate(broken(tmp_path, mutate))
    checks = {(p.table, p.check): p for p in report.problems}
    p = checks[("offers", "window_inverted")]
    assert p.example == "'c1-o1'" and "ends before it starts" in p.message


def test_unknown_kind_and_channel(tmp_path: Path) -> None:
    def mutate(t):
        t["offers"].loc[0, "kind"] = "mystery_box"
        t["offers"].loc[1, "channels"] = "app|fax"
        t["exposures"].loc[0, "channel"] = "carrier pigeon"
    report = validate(broken(tmp_path, mutate))
    found = {(p.table, p.column) for p in report.problems if p.check == "unknown_value"}
    assert found == {("offers", "kind"), ("offers", "channels"), ("exposures", "channel")}


def test_redeemed_outside_window_and_before_exposure(tmp_path: Path) -> None:
    def mutate(t):
        t["redemptions"].loc[0, "redeemed_at"] = pd.Timestamp("2017-01-20")
    report = validate(broken(tmp_path, mutate))
    assert {p.check for p in report.problems} == {"outside_window", "before_exposure"}


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    def mutate(t):
        t["transactions"].loc[0, "quantity"] = -3
        t["transactions"].loc[1, "member_id"] = "ghost"
        t["members"].loc[0, "birth_month"] = 13
    report = validate(broken(tmp_path, mutate))
    assert {p.check for p in report.problems} == {"negative", "dangling", "out_of_range"}


def test_require_valid_raises_with_report(tmp_path: Path) -> None:
    path = broken(tmp_path, lambda t: t["transactions"].pop("basket_id"))
    with pytest.raises(DataDirInvalid, match="basket_id"):
        require_valid(path)
    with pytest.raises(DataDirError, match="does not exist"):
        validate(tmp_path / "nope")


def test_cli_exit_codes_and_json(tmp_path: Path, tiny_dir: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["data", "validate", str(tiny_dir)])
    assert ok.exit_code == 0 and "OK: the directory satisfies the data contract" in ok.output
    bad = broken(tmp_path / "b", lambda t: t["transactions"].loc.__setitem__((0, "quantity"), -1))
    result = runner.invoke(cli, ["data", "validate", "--json", str(bad)])
    assert result.exit_code == 1
    body = json.loads(result.output)
    assert body["ok"] is False and body["problems"][0]["check"] == "negative"


def test_cli_as_a_process(tmp_path: Path) -> None:
    bad = broken(tmp_path, lambda t: t["offers"].pop("kind"))
    proc = subprocess.run([sys.executable, "-m", "offers_cli.main", "data", "validate", str(bad)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "offers.kind [missing_column]" in proc.stdout
    missing = subprocess.run([sys.executable, "-m", "offers_cli.main", "data", "validate", str(tmp_path / "x")],
                             capture_output=True, text=True, check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_duckdb_memory_is_capped_and_a_bad_cap_is_a_clear_error(syn_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``OFFERS_DUCKDB_MEMORY`` caps the validation's DuckDB (it spills to disk beyond it); a value
    DuckDB cannot read is named, on the CLI with a non-zero exit."""
    import duckdb

    from offerdata.validate import bound_memory

    con = duckdb.connect(":memory:")
    monkeypatch.setenv("OFFERS_DUCKDB_MEMORY", "200MB")
    bound_memory(con, str(tmp_path))
    limit, spill = con.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    assert limit.replace(" ", "").upper().startswith(("190", "200")) and spill == str(tmp_path)
    assert validate(syn_dir).ok  # the 2,000-member program validates within the cap
    monkeypatch.setenv("OFFERS_DUCKDB_MEMORY", "lots")
    with pytest.raises(DataDirError, match="OFFERS_DUCKDB_MEMORY='lots'"):
        validate(syn_dir)
    proc = subprocess.run([sys.executable, "-m", "offers_cli.main", "data", "validate", str(syn_dir)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "OFFERS_DUCKDB_MEMORY='lots'" in proc.stderr and "Traceback" not in proc.stderr


def test_checks_run_in_parts_find_what_one_pass_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Key, reference and redemption checks split over parts of their keys (how a 73M-row table fits
    the capped memory) report exactly the problems one pass reports, with the same counts."""
    from offerdata import validate as validate_module

    def mutate(t):
        t["members"].loc[2, "member_id"] = "m1"                       # a duplicate id
        t["transactions"].loc[0, "member_id"] = "ghost"              # a dangling reference
        t["redemptions"].loc[0, "redeemed_at"] = pd.Timestamp("2017-01-20")  # before exposure, outside window
    path = broken(tmp_path, mutate)
    one = validate(path)
    monkeypatch.setattr(validate_module, "ROWS_PER_PART", 2)
    parts = validate(path)
    assert {p.check for p in one.problems} >= {"duplicate", "dangling", "before_exposure", "outside_window"}
    def summary(report):  # the example is any offending value: which one may differ between runs
        return sorted((p.table, p.column, p.check, p.rows, p.message) for p in report.problems)

    assert summary(parts) == summary(one)
    assert all(p.example is not None for p in parts.problems if p.check in ("duplicate", "dangling"))


def test_too_little_duckdb_memory_is_a_named_error(syn_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFERS_DUCKDB_MEMORY", "1MB")
    with pytest.raises(DataDirError, match="needs more memory than OFFERS_DUCKDB_MEMORY=1MB allows; raise it"):
        validate(syn_dir)
