"""Baseline scorers, computed point-in-time on the same split as the model.

* ``random``: a seeded uniform score.
* ``popularity``: past redemptions (before the exposure) of offers sharing a product
  with the offer, across all members.
* ``member_redemption_rate``: the member's past redemptions / past exposures.
* ``product_spend``: the member's past spend on the offer's own products, the strongest
  simple heuristic on coupon data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.features import FEATURE_NAMES, FeatureVocabulary, History
from models.features.definitions import vocabulary_index


@dataclass(frozen=True)
class Redemptions:
    """Every member's redemptions as two arrays (time in seconds, offer index; -1 for an unknown
    offer): all the popularity baseline reads, 12 bytes a redemption instead of whole histories."""

    time: np.ndarray
    offer: np.ndarray

    @classmethod
    def of_history(cls, history: History) -> Redemptions:
        return cls(np.asarray(history.red_time, dtype=np.int64), np.asarray(history.red_offer, dtype=np.int32))

    @classmethod
    def concat(cls, parts: list[Redemptions]) -> Redemptions:
        """The redemptions of several partitions together (the order does not matter to popularity)."""
        if not parts:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32))
        return cls(np.concatenate([p.time for p in parts]), np.concatenate([p.offer for p in parts]))


def popularity(catalog: FeatureVocabulary, redemptions: Redemptions, rows: pd.DataFrame) -> np.ndarray:
    """Past redemptions of product-overlapping offers, strictly before each row's as_of.

    Per requested offer: the times of every redemption of an overlapping offer, sorted
    once, and a binary search per row. The cost grows with offers x redemptions, not with
    the number of distinct as_of values (millions on continuous-time data).
    """
    index = vocabulary_index(catalog)
    out = np.zeros(len(rows))
    as_of = rows["as_of"].to_numpy()
    offers = rows["o"].to_numpy().astype(np.int64)
    valid = redemptions.offer >= 0
    by_time = np.argsort(redemptions.time[valid], kind="stable")
    red_time, red_offer = redemptions.time[valid][by_time], redemptions.offer[valid][by_time].astype(np.int64)
    overlap = index.offer_overlap
    by_offer = np.argsort(offers, kind="stable")
    present, starts = np.unique(offers[by_offer], return_index=True)
    ends = np.r_[starts[1:], len(offers)]
    related = np.zeros(catalog.n_offers, dtype=bool)
    for o, lo, hi in zip(present.tolist(), starts.tolist(), ends.tolist(), strict=True):
        related[:] = False
        related[overlap.indices[overlap.indptr[o]:overlap.indptr[o + 1]]] = True
        sel = by_offer[lo:hi]
        out[sel] = np.searchsorted(red_time[related[red_offer]], as_of[sel], side="left")
    return out


def baseline_scores(catalog: FeatureVocabulary, redemptions: Redemptions, rows: pd.DataFrame, features: np.ndarray,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Every baseline's score for ``rows`` (aligned with ``features``)."""
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    return {
        "random": np.random.default_rng(seed).random(len(rows)),
        "popularity": popularity(catalog, redemptions, rows),
        "member_redemption_rate": np.nan_to_num(features[:, col["redemption_rate"]].astype(np.float64)),
        "product_spend": np.nan_to_num(features[:, col["product_spend"]].astype(np.float64)),
    }
