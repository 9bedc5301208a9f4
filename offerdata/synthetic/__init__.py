"""A synthetic loyalty program, from 1,000 to 10,000,000 members, in the data contract.

``generate(out_dir, n_members, seed)`` writes members, products, transactions, offers,
offer_products, exposures and redemptions as Parquet, streamed in fixed-size chunks
and moved into place atomically. The data carries the signal a propensity model must
find: members redeem offers on what they already buy. docs/synthetic.md describes
every assumption; the tier program is exported here for configs to match.
"""

from offerdata.synthetic.generator import TABLE_ORDER, generate, tier_of_spend
from offerdata.synthetic.params import (
    CHUNK_MEMBERS,
    MAX_MEMBERS,
    MIN_MEMBERS,
    TIER_NAMES,
    TIER_THRESHOLDS_MINOR,
    TIER_WINDOW_DAYS,
    YEAR,
)

__all__ = [
    "CHUNK_MEMBERS",
    "MAX_MEMBERS",
    "MIN_MEMBERS",
    "TABLE_ORDER",
    "TIER_NAMES",
    "TIER_THRESHOLDS_MINOR",
    "TIER_WINDOW_DAYS",
    "YEAR",
    "generate",
    "tier_of_spend",
]
