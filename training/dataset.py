"""Loading a validated data directory into the feature containers, with labels.

A :class:`Dataset` holds the catalog, every member's history and the labelled
exposures: one row per (member, offer, exposure time), labelled 1 when the member
redeemed that offer inside the offer's validity window at or after the exposure.
Repeated exposures of one member to one offer keep the first (the label would be shared).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.features import FeatureVocabulary, History, channel_codes, to_seconds
from offerdata.loader import load_catalog, load_history
from offerdata.tables import read_table, table_path
from offerdata.validate import require_valid


@dataclass
class Dataset:
    """FeatureVocabulary, histories and labelled exposures of one data directory."""

    data_dir: Path
    catalog: FeatureVocabulary
    history: History
    exposures: pd.DataFrame  # member_id, offer_id, campaign_id, exposed_at, channel, redeemed_at, label, as_of (s), m, o, ch
    fingerprint: str

    @property
    def first_exposure(self) -> pd.Timestamp:
        return pd.Timestamp(self.exposures["exposed_at"].min())

    @property
    def last_exposure(self) -> pd.Timestamp:
        return pd.Timestamp(self.exposures["exposed_at"].max())


def fingerprint(data_dir: str | os.PathLike[str]) -> str:
    """A short hash of the tables' names, sizes and contents' first/last bytes (cheap, stable)."""
    digest = hashlib.sha256()
    for name in ("members", "products", "transactions", "offers", "offer_products", "exposures", "redemptions"):
        path = table_path(data_dir, name)
        if path is None:
            continue
        size = path.stat().st_size
        digest.update(f"{name}:{size}:".encode())
        with open(path, "rb") as fh:
            digest.update(fh.read(1 << 16))
            fh.seek(max(size - (1 << 16), 0))
            digest.update(fh.read(1 << 16))
    return digest.hexdigest()[:16]


def labelled_rows(exposures: pd.DataFrame, offers: pd.DataFrame, redemptions: pd.DataFrame,
                  member_index: Callable[[pd.Series], np.ndarray], catalog: FeatureVocabulary) -> pd.DataFrame:
    """Labelled exposures with their feature-row columns, in the order every builder uses.

    ``member_index`` maps member ids to member indices (``m``). Rows are in order of exposure
    time, then of the exposures file (:func:`label_exposures`); rows read for one partition
    carry ``file_row`` so the partitions can be put back in that order.
    """
    labelled = label_exposures(exposures, offers, redemptions)
    labelled["as_of"] = to_seconds(labelled["exposed_at"])
    labelled["m"] = member_index(labelled["member_id"])
    labelled["o"] = catalog.offer_index(labelled["offer_id"])
    labelled["ch"] = channel_codes(labelled["channel"])
    return labelled


def label_exposures(exposures: pd.DataFrame, offers: pd.DataFrame, redemptions: pd.DataFrame) -> pd.DataFrame:
    """First exposure per (member, offer), labelled by a redemption inside the validity window.

    ``redeemed_at`` keeps the first such redemption's time, so a backtest can censor labels
    that were not yet known at its cut-off.
    """
    exp = (exposures.sort_values("exposed_at", kind="stable")
           .drop_duplicates(["member_id", "offer_id"], keep="first"))
    exp = exp.merge(offers[["offer_id", "campaign_id", "starts_at", "ends_at"]], on="offer_id", how="left")
    red = redemptions[["member_id", "offer_id", "redeemed_at"]]
    hit = exp[["member_id", "offer_id", "exposed_at", "starts_at", "ends_at"]].merge(red, on=["member_id", "offer_id"])
    ok = (hit["redeemed_at"] >= hit["exposed_at"]) & (hit["redeemed_at"] >= hit["starts_at"]) & (
        hit["redeemed_at"] <= hit["ends_at"])
    first = hit.loc[ok].groupby(["member_id", "offer_id"], as_index=False)["redeemed_at"].min()
    exp = exp.merge(first, on=["member_id", "offer_id"], how="left")
    exp["label"] = exp["redeemed_at"].notna().astype(np.int8)
    return exp.reset_index(drop=True)


def load_dataset(data_dir: str | os.PathLike[str], validate: bool = True) -> Dataset:
    """Validate ``data_dir`` (raising on any problem) and load it for feature computation."""
    if validate:
        require_valid(data_dir)
    catalog = load_catalog(data_dir)
    history, exposures, redemptions = load_history(data_dir, catalog)
    history = history.sorted_by_member()  # once, so feature partitions are slices
    offers = read_table(data_dir, "offers", columns=["offer_id", "campaign_id", "starts_at", "ends_at"])
    labelled = labelled_rows(exposures, offers, redemptions, history.member_index, catalog)
    return Dataset(Path(data_dir), catalog, history, labelled, fingerprint(data_dir))
