"""Loading a data directory into the feature containers (FeatureCatalog and History).

Shared by training (which adds labels) and by the service's ``offers materialize``
(which writes each member's history into the online store). Reading goes through
:mod:`offerdata.tables`, so CSV and Parquet both work; callers validate first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from models.features import FeatureCatalog, History
from offerdata.tables import read_table

TRANSACTION_COLUMNS = ["member_id", "purchased_at", "basket_id", "product_id", "amount_minor", "discount_minor",
                       "coupon_discount_minor"]


def load_catalog(data_dir: str | os.PathLike[str]) -> FeatureCatalog:
    """Products, offers and offer_products of ``data_dir`` as a :class:`FeatureCatalog`."""
    return FeatureCatalog.from_frames(read_table(data_dir, "products"), read_table(data_dir, "offers"),
                                      read_table(data_dir, "offer_products"))


def load_history(data_dir: str | os.PathLike[str], catalog: FeatureCatalog,
                 members: Sequence[str] | None = None) -> tuple[History, pd.DataFrame, pd.DataFrame]:
    """Every (or the listed) member's history, plus the raw exposures and redemptions frames."""
    member_frame = read_table(data_dir, "members", columns=["member_id", "joined_at"])
    transactions = read_table(data_dir, "transactions", columns=TRANSACTION_COLUMNS)
    exposures = read_table(data_dir, "exposures", columns=["member_id", "offer_id", "exposed_at", "channel"])
    redemptions = read_table(data_dir, "redemptions", columns=["member_id", "offer_id", "redeemed_at"])
    if members is not None:
        wanted = set(members)
        member_frame = member_frame[member_frame["member_id"].isin(wanted)]
        transactions = transactions[transactions["member_id"].isin(wanted)]
        exposures = exposures[exposures["member_id"].isin(wanted)]
        redemptions = redemptions[redemptions["member_id"].isin(wanted)]
    history = History.from_frames(catalog, member_frame, transactions, exposures, redemptions)
    return history, exposures, redemptions
