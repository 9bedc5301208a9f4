"""A tiny, hand-built, contract-valid data directory for tests to start from and break."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from offerdata.tables import write_table


def tiny_tables() -> dict[str, pd.DataFrame]:
    """Three members, four products, two offers; every table valid and cross-consistent."""
    ts = pd.Timestamp
    members = pd.DataFrame({
        "member_id": ["m1", "m2", "m3"],
        "joined_at": [ts("2016-01-05"), ts("2016-06-01"), pd.NaT],
        "birth_month": pd.array([3, None, 12], dtype="Int64"),
        "segment": ["family", None, "single"],
        "attr_age": ["35-44", None, "65+"],
    })
    products = pd.DataFrame({
        "product_id": ["p1", "p2", "p3", "p4"],
        "department": ["GROCERY", "GROCERY", "DRUG GM", "PRODUCE"],
        "category": ["SOFT DRINKS", "CHEESE", "VITAMINS", "FRUIT"],
        "brand": ["National", "Private", "National", "Private"],
    })
    transactions = pd.DataFrame({
        "member_id": ["m1", "m1", "m2", "m2", "m3"],
        "purchased_at": [ts("2017-01-02 10:00"), ts("2017-01-02 10:00"), ts("2017-01-03 18:30"),
                         ts("2017-02-10 09:15"), ts("2017-02-11 12:00")],
        "basket_id": ["b1", "b1", "b2", "b3", "b4"],
        "product_id": ["p1", "p2", "p1", "p3", "p4"],
        "quantity": [2, 1, 1, 3, 1],
        "amount_minor": [398, 250, 199, 1200, 99],
        "discount_minor": [40, 0, 0, 100, 0],
        "coupon_discount_minor": [0, 0, 0, 100, 0],
    })
    offers = pd.DataFrame({
        "offer_id": ["c1-o1", "c1-o2"],
        "campaign_id": ["c1", "c1"],
        "kind": ["amount_off", "percent_off"],
        "starts_at": [ts("2017-02-01"), ts("2017-02-01")],
        "ends_at": [ts("2017-02-28 23:59:59"), ts("2017-02-28 23:59:59")],
        "title": ["$1 off soft drinks", "10% off vitamins"],
        "value": [100.0, 10.0],
        "channels": ["app|email", None],
    })
    offer_products = pd.DataFrame({"offer_id": ["c1-o1", "c1-o2"], "product_id": ["p1", "p3"]})
    exposures = pd.DataFrame({
        "exposure_id": ["e1", "e2", "e3"],
        "member_id": ["m1", "m2", "m2"],
        "offer_id": ["c1-o1", "c1-o1", "c1-o2"],
        "exposed_at": [ts("2017-02-01")] * 3,
        "channel": ["email", "email", "app"],
    })
    redemptions = pd.DataFrame({
        "redemption_id": ["r1"],
        "member_id": ["m2"],
        "offer_id": ["c1-o2"],
        "redeemed_at": [ts("2017-02-10 09:15")],
    })
    return {"members": members, "products": products, "transactions": transactions,
            "offers": offers, "offer_products": offer_products, "exposures": exposures,
            "redemptions": redemptions}


def write_tiny(path: Path, tables: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write ``tables`` (default: :func:`tiny_tables`) as Parquet into ``path``."""
    for name, frame in (tables or tiny_tables()).items():
        write_table(frame, path, name)
    return path
