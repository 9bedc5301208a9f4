"""Members of one chunk: hidden shopping traits and the contract's ``members`` rows.

Every member gets latent traits the rest of the generator acts on; only their visible
consequences are written (joined_at, birth_month, segment, home store, channel opt-ins):

* category preferences: a mix of the average shares and a Dirichlet draw around them,
  so each member leans towards a handful of categories;
* a visit rhythm: mean days between visits, lognormal (median 27 days);
* basket size: mean lines per basket, lognormal (median 2.95);
* private-label propensity (Beta), deal proneness (Beta) and an engagement effect
  (normal) that raises shelf-discount use and offer redemption;
* tenure: 15% joined during the simulated year, the rest earlier (exponential, mean 4 years).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from offerdata.synthetic import ids
from offerdata.synthetic.params import (
    DAY,
    N_STORES,
    OPT_IN_CHANNELS,
    OPT_IN_RATES,
    PROGRAM_LAUNCH,
    SEGMENTS,
    STREAM_MEMBERS,
    YEAR_SECONDS,
    YEAR_START,
    rng,
    to_datetime,
)

#: Weight of the member's own Dirichlet draw against the population's average category shares.
PREFERENCE_WEIGHT = 0.8
#: Dirichlet concentration (times the average shares): lower means more specialised members.
PREFERENCE_CONCENTRATION = 8.0
MEDIAN_GAP_DAYS = 27.0
GAP_SIGMA = 0.65
MEDIAN_BASKET_LINES = 2.95
BASKET_SIGMA = 0.45
NEW_MEMBER_SHARE = 0.15
TENURE_MEAN_YEARS = 4.0
BIRTH_MONTH_MISSING = 0.08
HOME_STORE_LOYALTY = 0.85


@dataclass
class MemberChunk:
    """Traits of the members of one chunk (row ``i`` is member number ``first + i + 1``)."""

    first: int  # global index of the chunk's first member
    member_id: pa.Array
    member_id_bytes: np.ndarray  # the same ids as a fixed-width byte matrix
    joined: np.ndarray  # seconds since the start of the year (negative: joined earlier)
    birth_month: np.ndarray  # 1-12, 0 when unknown
    segment: np.ndarray  # index into SEGMENTS
    home_store: np.ndarray  # 0-based store index
    channel_mask: np.ndarray  # bit i set: opted in to OPT_IN_CHANNELS[i]
    preferences: np.ndarray  # (members, categories) purchase shares, rows sum to 1
    gap_days: np.ndarray  # mean days between visits
    basket_lines: np.ndarray  # mean lines per basket (>= 1)
    private_propensity: np.ndarray  # chance a line is private label
    deal_proneness: np.ndarray  # 0-1
    engagement: np.ndarray  # member random effect on redemption (logit scale)

    @property
    def size(self) -> int:
        """Number of members in the chunk."""
        return len(self.joined)


def member_numbers(first: int, count: int) -> np.ndarray:
    """Member numbers ``first + 1`` to ``first + count``: ids count from 1."""
    return np.arange(first + 1, first + count + 1, dtype=np.int64)


def id_bytes(prefix: str, numbers: np.ndarray) -> np.ndarray:
    """Ids ``<prefix>00000042`` as a byte matrix (8 digits cover 10M members)."""
    return ids.concat(ids.literal(prefix, len(numbers)), ids.digits(numbers, 8))


def _segments(lines: np.ndarray, gap: np.ndarray, private: np.ndarray, deal: np.ndarray) -> np.ndarray:
    """The marketing segment a program would derive from the member's habits (first rule wins)."""
    visits = 365.0 / gap
    rules = [
        (private > 0.5) | (deal > 0.65),  # value_seeker
        (private < 0.15) & (visits * lines > 55),  # premium
        lines > 4.0,  # family
        (visits > 25) & (lines < 2.5),  # convenience
        visits < 7,  # occasional
    ]
    segment = np.full(len(lines), len(SEGMENTS) - 1)  # mainstream
    for index in range(len(rules) - 1, -1, -1):
        segment[rules[index]] = index
    return segment


def generate_members(seed: int, chunk_index: int, first: int, count: int,
                     category_popularity: np.ndarray) -> MemberChunk:
    """Draw the traits of ``count`` members starting at global index ``first``."""
    gen = rng(seed, chunk_index, STREAM_MEMBERS)
    dirichlet = gen.dirichlet(PREFERENCE_CONCENTRATION * category_popularity, size=count)
    preferences = (1 - PREFERENCE_WEIGHT) * category_popularity + PREFERENCE_WEIGHT * dirichlet
    # A shared factor links visit frequency and basket size weakly and negatively:
    # frequent shoppers buy a little less per trip.
    shared = gen.standard_normal(count)
    gap_days = MEDIAN_GAP_DAYS * np.exp(GAP_SIGMA * (0.3 * shared + 0.954 * gen.standard_normal(count)))
    gap_days = np.clip(gap_days, 2.0, 365.0)
    basket = MEDIAN_BASKET_LINES * np.exp(BASKET_SIGMA * (0.3 * shared + 0.954 * gen.standard_normal(count)))
    basket = np.clip(basket, 1.0, 15.0)
    private = gen.beta(2.0, 5.0, size=count)
    deal = gen.beta(2.0, 4.0, size=count)
    engagement = 1.5 * (deal - 1 / 3) + gen.normal(0.0, 0.5, size=count)

    new = gen.random(count) < NEW_MEMBER_SHARE
    earliest = int((PROGRAM_LAUNCH - YEAR_START) / np.timedelta64(1, "s"))
    tenure = gen.exponential(TENURE_MEAN_YEARS * 365.25 * DAY, size=count)
    joined = np.where(new, gen.integers(0, YEAR_SECONDS - 30 * DAY, size=count),
                      np.maximum(earliest, -tenure.astype(np.int64) - 1))
    birth_month = gen.integers(1, 13, size=count)
    birth_month[gen.random(count) < BIRTH_MONTH_MISSING] = 0

    opted = gen.random((count, len(OPT_IN_CHANNELS))) < np.asarray(OPT_IN_RATES)
    opted[:, OPT_IN_CHANNELS.index("push")] &= opted[:, OPT_IN_CHANNELS.index("app")]
    nothing = ~opted.any(axis=1)
    opted[nothing, OPT_IN_CHANNELS.index("email")] = True  # the sign-up form asks for an email
    mask = (opted * (1 << np.arange(len(OPT_IN_CHANNELS)))).sum(axis=1)

    id_matrix = id_bytes("M", member_numbers(first, count))
    return MemberChunk(
        first=first,
        member_id=ids.to_arrow(id_matrix),
        member_id_bytes=id_matrix,
        joined=joined.astype(np.int64),
        birth_month=birth_month,
        segment=_segments(basket, gap_days, private, deal),
        home_store=gen.integers(0, N_STORES, size=count),
        channel_mask=mask.astype(np.int64),
        preferences=preferences,
        gap_days=gap_days,
        basket_lines=basket,
        private_propensity=private,
        deal_proneness=deal,
        engagement=engagement,
    )


def channel_lists() -> pa.Array:
    """The ``|``-joined opt-in list for every possible channel mask (index = mask)."""
    lists = []
    for mask in range(1 << len(OPT_IN_CHANNELS)):
        names = [c for i, c in enumerate(OPT_IN_CHANNELS) if mask >> i & 1]
        lists.append("|".join(names) if names else None)
    return pa.array(lists, pa.string())


def store_ids() -> pa.Array:
    """Store ids ``S001``... indexed by store number."""
    return pa.array([f"S{i + 1:03d}" for i in range(N_STORES)], pa.string())


def members_table(chunk: MemberChunk) -> pa.Table:
    """The contract's ``members`` rows for one chunk."""
    birth = pa.array(chunk.birth_month, pa.int64(), mask=chunk.birth_month == 0)
    return pa.table({
        "member_id": chunk.member_id,
        "joined_at": pa.array(to_datetime(chunk.joined), pa.timestamp("ns")),
        "birth_month": birth,
        "segment": pc.take(pa.array(SEGMENTS, pa.string()), pa.array(chunk.segment)),
        "home_store_id": pc.take(store_ids(), pa.array(chunk.home_store)),
        "channels": pc.take(channel_lists(), pa.array(chunk.channel_mask)),
    })
