"""The synthetic program: contract-valid, deterministic, atomic, and carrying a learnable signal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from models.data_contract import CHANNELS, OFFER_KINDS, TABLES, split_list
from offerdata.synthetic import (
    TABLE_ORDER,
    TIER_NAMES,
    TIER_THRESHOLDS_MINOR,
    TIER_WINDOW_DAYS,
    generate,
    generator,
    tier_of_spend,
)
from offerdata.tables import read_table
from offerdata.validate import validate
from offers_cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = 2_000
SEED = 7


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """One 2,000-member program shared by the read-only tests of this module."""
    out = tmp_path_factory.mktemp("synthetic") / "data"
    return out, generate(out, n_members=MEMBERS, seed=SEED)


@pytest.fixture(scope="module")
def tables(program: tuple[Path, dict[str, int]]) -> dict[str, pd.DataFrame]:
    """Every table of the shared program, typed by the contract."""
    return {name: read_table(program[0], name) for name in TABLE_ORDER}


def read_all(path: Path) -> dict[str, pd.DataFrame]:
    """Every table of ``path`` exactly as stored."""
    return {name: pd.read_parquet(path / f"{name}.parquet") for name in TABLE_ORDER}


def member_spend(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """Paid spend per member over the year, in cents (0 for members without purchases)."""
    spend = tables["transactions"].groupby("member_id")["amount_minor"].sum()
    return spend.reindex(tables["members"]["member_id"], fill_value=0)


def test_output_passes_validation(program: tuple[Path, dict[str, int]]) -> None:
    out, rows = program
    report = validate(out)
    assert report.ok, report.render()
    assert report.row_counts == rows
    assert rows["members"] == MEMBERS
    assert all(rows[name] > 0 for name in TABLE_ORDER)


def test_files_have_exactly_the_contract_columns_and_types(program: tuple[Path, dict[str, int]]) -> None:
    out, _ = program
    for name in TABLE_ORDER:
        schema = pq.read_schema(out / f"{name}.parquet")
        assert schema.names == [c.name for c in TABLES[name].columns], name
        for col in TABLES[name].columns:
            arrow = str(schema.field(col.name).type)
            expected = {"string": "string", "int": "int64", "float": "double",
                        "timestamp": "timestamp[ns]"}[col.type]
            assert arrow == expected, (name, col.name, arrow)


def test_values_stay_in_their_domains(tables: dict[str, pd.DataFrame]) -> None:
    offers, tx = tables["offers"], tables["transactions"]
    assert set(offers["kind"]) <= set(OFFER_KINDS)
    assert set(tables["exposures"]["channel"]) <= set(CHANNELS)
    assert {"percent_off", "amount_off", "points_multiplier", "bonus_points", "free_item", "partner",
            "free_shipping", "early_access", "birthday"} <= set(offers["kind"])
    partner = offers[offers["kind"] == "partner"]
    assert partner["funder"].notna().all() and partner["cost_share"].between(0, 1).all()
    assert (tx[["quantity", "amount_minor", "discount_minor", "coupon_discount_minor"]] >= 0).all().all()
    assert (tx["discount_minor"] >= tx["coupon_discount_minor"]).all()
    assert tx["purchased_at"].dt.year.eq(2025).all()
    products = tables["products"]
    assert 2_000 <= len(products) <= 5_000
    assert products["department"].nunique() >= 10 and products["category"].nunique() >= 50
    assert "Private" in set(products["brand"]) and products["brand"].nunique() > 50


def test_same_seed_gives_identical_tables(program: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, n_members=MEMBERS, seed=SEED)
    first, second = read_all(program[0]), read_all(again)
    for name in TABLE_ORDER:
        pd.testing.assert_frame_equal(first[name], second[name], obj=name)


def test_different_seed_gives_different_data(program: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate(other, n_members=MEMBERS, seed=SEED + 1)
    first, second = read_all(program[0]), read_all(other)
    for name in ("members", "transactions", "exposures", "redemptions", "products", "offers"):
        assert not first[name].equals(second[name]), name


def test_chunks_are_independent_and_ids_unique_across_them(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    """With a small chunk size the multi-chunk path runs: ids never collide between chunks."""
    monkeypatch.setattr(generator, "CHUNK_MEMBERS", 600)
    rows = generate(tmp_path / "chunked", n_members=1_500, seed=SEED)
    report = validate(tmp_path / "chunked")
    assert report.ok, report.render()
    assert rows["members"] == 1_500
    members = read_table(tmp_path / "chunked", "members")
    assert members["member_id"].iloc[[0, 599, 600, 1_499]].tolist() == [
        "M00000001", "M00000600", "M00000601", "M00001500"]
    # A chunk's draws depend on (seed, chunk index) only, so the first chunk matches a
    # 600-member program of the same seed.
    monkeypatch.setattr(generator, "MIN_MEMBERS", 1)
    generate(tmp_path / "first", n_members=600, seed=SEED)
    pd.testing.assert_frame_equal(read_table(tmp_path / "first", "members"), members.iloc[:600])


def test_failure_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = generator.generate_redemptions

    def fail_on_second_chunk(*args: object) -> object:
        if args[-1] == 1:  # chunk_index
            raise RuntimeError("disk on fire")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(generator, "CHUNK_MEMBERS", 600)
    monkeypatch.setattr(generator, "generate_redemptions", fail_on_second_chunk)
    out = tmp_path / "out"
    out.mkdir()
    (out / "members.parquet").write_text("previous content")
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate(out, n_members=1_500, seed=SEED)
    assert sorted(p.name for p in out.iterdir()) == ["members.parquet"]
    assert (out / "members.parquet").read_text() == "previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging directory left


def test_tiers_split_about_60_30_10(tables: dict[str, pd.DataFrame]) -> None:
    assert TIER_NAMES == ("Bronze", "Silver", "Gold")
    assert TIER_THRESHOLDS_MINOR[0] == 0 and list(TIER_THRESHOLDS_MINOR) == sorted(TIER_THRESHOLDS_MINOR)
    share = np.bincount(tier_of_spend(member_spend(tables).to_numpy()), minlength=3) / MEMBERS
    assert share == pytest.approx([0.6, 0.3, 0.1], abs=0.05)


def test_volume_per_member(tables: dict[str, pd.DataFrame]) -> None:
    lines = len(tables["transactions"]) / MEMBERS
    assert 30 <= lines <= 60
    exposures = tables["exposures"]
    rate = len(tables["redemptions"]) / len(exposures)
    assert 0.01 <= rate <= 0.05
    per_member = exposures.groupby("member_id").size()
    assert per_member.median() >= 5


def test_exposures_respect_opt_ins_join_dates_tiers_segments_and_birthdays(
        tables: dict[str, pd.DataFrame]) -> None:
    members = tables["members"].set_index("member_id")
    exp = tables["exposures"].merge(tables["offers"], on="offer_id")
    opted = members.loc[exp["member_id"], "channels"].map(split_list).to_numpy()
    assert all(ch in ok for ch, ok in zip(exp["channel"], opted, strict=True))
    assert all(ch in split_list(allowed) for ch, allowed in zip(exp["channel"], exp["channels"], strict=True))
    assert (exp["exposed_at"] >= exp["starts_at"]).all() and (exp["exposed_at"] <= exp["ends_at"]).all()
    assert (members.loc[exp["member_id"], "joined_at"].to_numpy() <= exp["exposed_at"].to_numpy()).all()

    restricted = exp[exp["tiers"].notna()]
    assert len(restricted) > 0
    # Redemption lines only ever add spend, so the year's spend is at least what earned the tier.
    rank = pd.Series(tier_of_spend(member_spend(tables).to_numpy()), index=members.index)
    lowest = restricted["tiers"].map(lambda t: min(TIER_NAMES.index(x) for x in split_list(t)))
    assert (rank.loc[restricted["member_id"]].to_numpy() >= lowest.to_numpy()).all()
    assert set(restricted["tiers"].map(split_list).explode()) <= {"Silver", "Gold"}

    segmented = exp[exp["segments"].notna()]
    assert (members.loc[segmented["member_id"], "segment"].to_numpy() == segmented["segments"].to_numpy()).all()

    birthday = exp[exp["kind"] == "birthday"]
    assert len(birthday) > 0
    born = members.loc[birthday["member_id"], "birth_month"].to_numpy()
    assert (born == birthday["starts_at"].dt.month.to_numpy()).all()


def test_redemptions_follow_exposures_inside_the_window_with_a_coupon_line(
        tables: dict[str, pd.DataFrame]) -> None:
    red = tables["redemptions"].merge(tables["offers"], on="offer_id")
    red = red.merge(tables["exposures"][["member_id", "offer_id", "exposed_at"]], on=["member_id", "offer_id"])
    assert (red["redeemed_at"] >= red["exposed_at"]).all()
    assert red["redeemed_at"].between(red["starts_at"], red["ends_at"]).all()

    # Each redemption's basket holds a line, bought at that moment, of one of the offer's products.
    lines = tables["transactions"].merge(tables["offer_products"], on="product_id")
    matched = red.merge(lines, left_on=["member_id", "basket_id", "offer_id", "redeemed_at"],
                        right_on=["member_id", "basket_id", "offer_id", "purchased_at"])
    assert set(matched["redemption_id"]) == set(red["redemption_id"])
    price_off = matched[matched["kind"].isin(["percent_off", "amount_off", "free_item", "birthday"])]
    assert len(price_off) > 0
    # The line's coupon discount is exactly the discount the redemption granted, and positive.
    exact = price_off[(price_off["coupon_discount_minor"] == price_off["discount_minor_x"])
                      & (price_off["coupon_discount_minor"] > 0)]
    assert set(exact["redemption_id"]) == set(price_off["redemption_id"])


def test_members_redeem_offers_on_what_they_already_buy(tables: dict[str, pd.DataFrame]) -> None:
    """The signal: members whose past spend leans to the offer's category redeem far more often."""
    products = tables["products"][["product_id", "category"]]
    per_offer = tables["offer_products"].merge(products, on="product_id").groupby("offer_id")["category"]
    single = per_offer.nunique()
    category = per_offer.first()[single == 1].rename("offer_category")
    exp = tables["exposures"].merge(category, left_on="offer_id", right_index=True)
    red = tables["redemptions"][["member_id", "offer_id"]].assign(redeemed=1)
    exp = exp.merge(red, on=["member_id", "offer_id"], how="left").fillna({"redeemed": 0})

    # Spend share of the offer's category in purchases before the exposure (coupon lines excluded).
    tx = tables["transactions"]
    tx = tx[tx["coupon_discount_minor"] == 0].merge(products, on="product_id")
    past = exp[["exposure_id", "member_id", "exposed_at", "offer_category"]].merge(tx, on="member_id")
    past = past[past["purchased_at"] < past["exposed_at"]]
    total = past.groupby("exposure_id")["amount_minor"].sum()
    in_category = past[past["category"] == past["offer_category"]].groupby("exposure_id")["amount_minor"].sum()
    share = (in_category.reindex(total.index, fill_value=0) / total).rename("share")
    exp = exp.merge(share, left_on="exposure_id", right_index=True)

    high = exp[exp["share"] >= exp["share"].quantile(0.8)]["redeemed"]
    none = exp[exp["share"] == 0]["redeemed"]
    assert len(high) > 1_000 and len(none) > 1_000
    assert high.mean() > 3 * none.mean(), (high.mean(), none.mean())


def test_cli_writes_a_valid_directory(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(cli, ["data", "synthetic", "--members", "1000", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "members" in result.output and "1,000 rows" in result.output
    assert validate(out).ok


def test_cli_in_a_real_process(tmp_path: Path) -> None:
    out = tmp_path / "proc"
    done = subprocess.run([sys.executable, "-m", "offers_cli.main", "data", "synthetic", "--members", "1000",
                           "--seed", "5", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    report = validate(out)
    assert report.ok, report.render()
    assert report.row_counts["members"] == 1_000


def test_cli_refuses_too_few_members(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["data", "synthetic", "--members", "999", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "--members" in result.output and "999" in result.output and "1000" in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("n", [999, 10_000_001])
def test_generate_refuses_sizes_out_of_range(tmp_path: Path, n: int) -> None:
    with pytest.raises(ValueError, match="n_members must lie between 1,000 and 10,000,000"):
        generate(tmp_path / "x", n_members=n)
    assert not (tmp_path / "x").exists()


def test_example_program_config_uses_the_generator_tiers() -> None:
    """examples/programs/synthetic.yaml must describe the tiers the generator assigns."""
    import yaml

    config = yaml.safe_load((ROOT / "examples" / "programs" / "synthetic.yaml").read_text())
    tiers = config["tiers"]
    assert [t["name"] for t in tiers] == list(TIER_NAMES)
    assert [round(t["threshold"] * 100) for t in tiers] == list(TIER_THRESHOLDS_MINOR)
    assert config["tier_policy"]["window"]["days"] == TIER_WINDOW_DAYS
