"""The drift reference a model is registered with (see :mod:`models.drift`).

Serving scores every member it is asked about against every offer valid at that moment, not
the exposures a model is fit on (offers someone chose to send). So the reference is built
from that serving population at the training cut-off: a seeded sample of members who had
joined by then x the offers valid then, each row with a channel drawn from the exposures'
channel mix. When no offer is valid at the cut-off (a data set whose campaigns all ended),
the held-out exposures stand in, and the reference says so in ``population``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from models.drift import build_reference
from models.features import FEATURE_NAMES, to_seconds
from models.model import PropensityModel
from training.dataset import Dataset

#: Rows of the reference sample at most (members x valid offers).
REFERENCE_ROWS = 20_000
#: Valid offers sampled at most.
REFERENCE_OFFERS = 200


def reference_rows(ds: Dataset, cut: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    """Members x offers valid at ``cut`` (seeded samples of each), as feature rows (m, o, as_of, ch)."""
    rng = np.random.default_rng(seed)
    at = int(to_seconds(pd.DatetimeIndex([cut]))[0])
    catalog = ds.catalog
    offers = np.flatnonzero((catalog.offer_start <= at) & (at < catalog.offer_end))
    joined = np.flatnonzero(ds.history.joined_at <= at)
    if not len(offers) or not len(joined):
        return pd.DataFrame(columns=["m", "o", "as_of", "ch"])
    if len(offers) > REFERENCE_OFFERS:
        offers = np.sort(rng.choice(offers, REFERENCE_OFFERS, replace=False))
    n_members = min(len(joined), max(1, REFERENCE_ROWS // len(offers)))
    members = np.sort(rng.choice(joined, n_members, replace=False))
    n = n_members * len(offers)
    channels = ds.exposures["ch"].to_numpy()
    ch = rng.choice(channels, n) if len(channels) else np.zeros(n, dtype=np.int64)
    return pd.DataFrame({"m": np.repeat(members, len(offers)), "o": np.tile(offers, n_members),
                         "as_of": np.full(n, at, dtype=np.int64), "ch": ch})


def model_reference(ds: Dataset, cut: pd.Timestamp, model: PropensityModel, held_out_X: np.ndarray,
                    features: Callable[[pd.DataFrame], np.ndarray]) -> dict[str, Any]:
    """The reference of ``model``: features and calibrated scores of the serving population at
    ``cut`` (``features(rows)`` computes a feature matrix), else of the held-out exposures."""
    rows = reference_rows(ds, cut)
    if len(rows):
        X, population = features(rows), f"members x offers valid at {cut.isoformat()}"
    else:
        X, population = held_out_X, "held-out exposures (no offer was valid at the cut-off)"
    reference = build_reference(X, model.predict(X) if len(X) else np.zeros(0), FEATURE_NAMES)
    reference["population"] = population
    return reference
