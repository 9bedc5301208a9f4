"""Tier-state features under a program config, point-in-time.

Tier status is evaluated as of the start of the request's day (programs compute status
nightly), identically offline and online, by the same engine that serves tier state
(:mod:`models.tiers`). One engine call per distinct day covers every member with a
request that day. Without a program config these features are missing (NaN).
"""

from __future__ import annotations

import numpy as np

from models.features.prefix import DAY
from models.program import Program
from models.tiers import NAT, tier_arrays, tier_numbers

TIER_FEATURES = ["tier_rank", "tier_metric", "tier_delta_to_next", "tier_delta_to_keep", "tier_at_risk",
                 "tier_days_to_period_end"]
_NS = np.int64(1_000_000_000)


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
        joined_ns = np.where(joined == NAT, NAT, joined * _NS)
        arrays = tier_arrays(program, codes, line_time[sel] * _NS, line_amount[sel].astype(np.int64),
                              len(members), int(d * _NS), joined_ns)
        v = tier_numbers(program, arrays)
        pos = np.searchsorted(members, m[rows])
        period_end = v["period_end"][pos]
        out["tier_rank"][rows] = v["rank"][pos]
        out["tier_metric"][rows] = v["metric"][pos]
        dn = v["delta_to_next"][pos]
        out["tier_delta_to_next"][rows] = np.where(dn >= 0, dn, np.nan)
        out["tier_delta_to_keep"][rows] = v["delta_to_keep"][pos]
        out["tier_at_risk"][rows] = v["at_risk"][pos]
        out["tier_days_to_period_end"][rows] = np.where(period_end == NAT, np.nan, (period_end / _NS - d) / DAY)
