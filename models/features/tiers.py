"""Tier-state features under a program config, point-in-time.

Tier status is evaluated as of the start of the request's day (programs compute status
nightly), identically offline and online, by the same engine that serves tier state
(:mod:`models.tiers`). One engine call per distinct day covers every member with a
request that day. Without a program config these features are missing (NaN).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.features.prefix import DAY
from models.program import Program
from models.tiers import _columns, _tier_arrays

TIER_FEATURES = ["tier_rank", "tier_metric", "tier_delta_to_next", "tier_delta_to_keep", "tier_at_risk",
                 "tier_days_to_period_end"]
_NS = np.int64(1_000_000_000)
_NONE = np.iinfo(np.int64).min


def tier_features(program: Program, line_member: np.ndarray, line_time: np.ndarray, line_amount: np.ndarray,
                  joined_at: np.ndarray, m: np.ndarray, t: np.ndarray, out: dict[str, np.ndarray]) -> None:
    """Fill the TIER_FEATURES columns of ``out`` for requests (member index m, as_of t in seconds)."""
    day = (t // DAY) * DAY
    n_members = len(joined_at)
    for d in np.unique(day):
        rows = np.flatnonzero(day == d)
        members = np.unique(m[rows])
        in_day = np.zeros(n_members, dtype=bool)
        in_day[members] = True
        sel = in_day[line_member]
        codes = np.searchsorted(members, line_member[sel]).astype(np.int64)
        joined = joined_at[members]
        joined_ns = np.where(joined == _NONE, _NONE, joined * _NS)
        arrays = _tier_arrays(program, codes, line_time[sel] * _NS, line_amount[sel].astype(np.int64),
                              len(members), int(d * _NS), joined_ns)
        cols = _columns(program, arrays)
        pos = np.searchsorted(members, m[rows])
        period_end = np.asarray(cols["period_end"], dtype="datetime64[ns]").view(np.int64)[pos]
        out["tier_rank"][rows] = np.asarray(cols["tier_rank"], dtype=np.float64)[pos]
        out["tier_metric"][rows] = np.asarray(cols["metric"], dtype=np.float64)[pos]
        out["tier_delta_to_next"][rows] = pd.array(cols["delta_to_next"]).to_numpy(dtype=np.float64, na_value=np.nan)[pos]
        out["tier_delta_to_keep"][rows] = np.asarray(cols["delta_to_keep"], dtype=np.float64)[pos]
        out["tier_at_risk"][rows] = np.asarray(cols["at_risk"], dtype=np.float64)[pos]
        out["tier_days_to_period_end"][rows] = np.where(period_end == _NONE, np.nan,
                                                        (period_end / _NS - d) / DAY)
