"""Every constant of the synthetic program in one place: calendar, sizes, tiers, seeding.

The numbers here are the assumptions docs/synthetic.md explains. Nothing in this
module depends on the number of members: the chunk size is fixed, so memory stays
bounded and a given (members, seed) pair always produces the same data.
"""

from __future__ import annotations

import numpy as np

#: Members generated, written and forgotten together; fixed so memory does not grow with N.
CHUNK_MEMBERS = 25_000
MIN_MEMBERS = 1_000
MAX_MEMBERS = 10_000_000

#: The simulated year: transactions cover it all, campaigns run from February to December.
YEAR = 2025
YEAR_START = np.datetime64(f"{YEAR}-01-01T00:00:00", "s")
YEAR_END = np.datetime64(f"{YEAR + 1}-01-01T00:00:00", "s")
YEAR_SECONDS = int((YEAR_END - YEAR_START) / np.timedelta64(1, "s"))
DAY = 86_400
#: The program launched here; no member joined earlier.
PROGRAM_LAUNCH = np.datetime64("2012-01-01T00:00:00", "s")

# -- tiers -----------------------------------------------------------------------------------
#: Three tiers ranked 0, 1, 2 by trailing-12-month spend (see docs/synthetic.md).
TIER_NAMES: tuple[str, ...] = ("Bronze", "Silver", "Gold")
#: Minimum trailing-12-month qualifying spend per tier, in minor units (cents):
#: Bronze from $0, Silver from $300, Gold from $700. Qualifying spend is the sum of
#: ``transactions.amount_minor`` (paid, after every discount) over the last 365 days.
TIER_THRESHOLDS_MINOR: tuple[int, ...] = (0, 30_000, 70_000)
#: Length of the tier qualification window, in days (rolling).
TIER_WINDOW_DAYS = 365

# -- channels and stores ---------------------------------------------------------------------
#: Channels a member can opt in to, in the order their bits sit in a channel mask.
OPT_IN_CHANNELS: tuple[str, ...] = ("app", "web", "email", "push", "sms", "mail")
#: Probability of opting in to each channel (push needs the app, see members.py).
OPT_IN_RATES: tuple[float, ...] = (0.55, 0.45, 0.75, 0.60, 0.15, 0.30)
N_STORES = 250

# -- segments --------------------------------------------------------------------------------
SEGMENTS: tuple[str, ...] = ("value_seeker", "premium", "family", "convenience", "occasional",
                             "mainstream")

# -- seeding ---------------------------------------------------------------------------------
#: Independent random streams; each chunk draws from ``[seed, chunk_index, stream]``.
STREAM_CATALOG = 1
STREAM_CAMPAIGNS = 2
STREAM_MEMBERS = 3
STREAM_BASKETS = 4
STREAM_EXPOSURES = 5
STREAM_REDEMPTIONS = 6


def rng(seed: int, chunk_index: int, stream: int) -> np.random.Generator:
    """A generator for one (seed, chunk, stream): chunks and streams never share draws.

    SeedSequence only takes non-negative entropy, so a negative seed is folded into a
    separate sign word: -3 and 3 give different, equally deterministic data.
    """
    return np.random.default_rng([abs(seed), int(seed < 0), chunk_index, stream])


def to_datetime(seconds: np.ndarray) -> np.ndarray:
    """Seconds since the start of the simulated year as ``datetime64[ns]`` timestamps."""
    return (YEAR_START + seconds.astype("timedelta64[s]")).astype("datetime64[ns]")
