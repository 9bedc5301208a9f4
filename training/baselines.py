"""Baseline scorers, computed point-in-time on the same split as the model.

* ``random``: a seeded uniform score.
* ``popularity``: past redemptions (before the exposure) of offers sharing a product
  with the offer, across all members.
* ``member_redemption_rate``: the member's past redemptions / past exposures.
* ``product_spend``: the member's past spend on the offer's own products, the strongest
  simple heuristic on coupon data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.features import FEATURE_NAMES
from models.features.compute import _engine
from training.dataset import Dataset


def popularity(ds: Dataset, rows: pd.DataFrame) -> np.ndarray:
    """Past redemptions of product-overlapping offers, strictly before each row's as_of."""
    hist, eng = ds.history, _engine(ds.catalog)
    out = np.zeros(len(rows))
    as_of = rows["as_of"].to_numpy()
    offers = rows["o"].to_numpy()
    valid = hist.red_offer >= 0
    for t in np.unique(as_of):
        sel = as_of == t
        before = valid & (hist.red_time < t)
        counts = np.bincount(hist.red_offer[before], minlength=ds.catalog.n_offers).astype(np.float64)
        out[sel] = (eng.offer_overlap @ counts)[offers[sel]]
    return out


def baseline_scores(ds: Dataset, rows: pd.DataFrame, features: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Every baseline's score for ``rows`` (aligned with ``features``)."""
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    return {
        "random": np.random.default_rng(seed).random(len(rows)),
        "popularity": popularity(ds, rows),
        "member_redemption_rate": np.nan_to_num(features[:, col["redemption_rate"]].astype(np.float64)),
        "product_spend": np.nan_to_num(features[:, col["product_spend"]].astype(np.float64)),
    }
