"""Shopping trips and the transaction lines in them, for one chunk of members.

Visits follow each member's rhythm: gaps between trips are gamma distributed
(shape 2, so rhythms are more regular than a Poisson process) around the member's
mean gap, starting at a random phase from the later of 1 January and the join date.
Trips fall between 07:00 and 22:00. Each trip has ``1 + Poisson(basket_lines - 1)``
lines; each line picks a category from the member's preferences, private label or a
national brand from the member's private-label propensity, and a product by
popularity inside that group. Quantity is ``1 + Poisson(0.25)``; a line carries a
shelf discount of 10-35% with a probability that grows with deal proneness.
Everything is vectorised over the chunk: there is no loop per member or line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offerdata.synthetic.members import HOME_STORE_LOYALTY, MemberChunk
from offerdata.synthetic.params import DAY, N_STORES, STREAM_BASKETS, YEAR_SECONDS, rng
from offerdata.synthetic.products import ProductCatalog

GAP_SHAPE = 2.0
MAX_LINES_PER_BASKET = 40
OPEN_SECONDS = 7 * 3600
OPEN_HOURS = 15
#: Visit sequence numbers stay below this; offer-driven trips are numbered from it upwards.
MAX_VISITS = 1_000


@dataclass
class Visits:
    """One row per shopping trip, sorted by (member, time)."""

    member: np.ndarray  # row in the chunk
    seq: np.ndarray  # 0-based trip number of that member
    time: np.ndarray  # seconds since the start of the year
    store: np.ndarray  # store index


@dataclass
class Lines:
    """Transaction lines of one chunk (before redemption lines are added)."""

    visit: np.ndarray  # index into Visits
    product: np.ndarray  # catalog row
    quantity: np.ndarray
    amount: np.ndarray  # paid, cents
    discount: np.ndarray  # shelf discount, cents


def segment_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at every index in ``starts`` (``starts[0]`` must be 0)."""
    total = np.cumsum(values)
    base = np.repeat(total[starts] - values[starts], np.diff(np.append(starts, len(values))))
    return total - base


def store_hours(seconds: np.ndarray) -> np.ndarray:
    """Squeeze each day's 24 hours into opening hours 07:00-22:00, keeping the order of trips."""
    day, within = np.divmod(seconds, DAY)
    return day * DAY + OPEN_SECONDS + within * (OPEN_HOURS * 3600) // DAY


def generate_visits(members: MemberChunk, gen: np.random.Generator) -> Visits:
    """Trip times for every member of the chunk over the simulated year."""
    start = np.clip(members.joined, 0, None)
    gap = members.gap_days * DAY
    expected = (YEAR_SECONDS - start) / gap
    # Draw comfortably more gaps than needed, then keep the trips that land inside the year.
    candidates = np.minimum(np.ceil(1.5 * expected + 5).astype(np.int64), 3 * MAX_VISITS)
    owner = np.repeat(np.arange(members.size), candidates)
    starts = np.concatenate(([0], np.cumsum(candidates)[:-1]))
    gaps = gen.gamma(GAP_SHAPE, 1.0 / GAP_SHAPE, size=len(owner)) * gap[owner]
    gaps[starts] = gen.random(members.size) * gap  # random phase for the first trip
    time = start[owner] + segment_cumsum(gaps, starts).astype(np.int64)
    seq = np.arange(len(owner)) - np.repeat(starts, candidates)
    keep = (time < YEAR_SECONDS) & (seq < MAX_VISITS)
    owner, time, seq = owner[keep], time[keep], seq[keep]
    away = gen.random(len(owner)) > HOME_STORE_LOYALTY
    store = np.where(away, gen.integers(0, N_STORES, size=len(owner)), members.home_store[owner])
    return Visits(member=owner, seq=seq, time=store_hours(time), store=store)


def generate_lines(members: MemberChunk, visits: Visits, catalog: ProductCatalog,
                   gen: np.random.Generator) -> Lines:
    """The purchase lines of every trip."""
    m = visits.member
    n_lines = 1 + gen.poisson(members.basket_lines[m] - 1.0)
    n_lines = np.minimum(n_lines, MAX_LINES_PER_BASKET)
    visit = np.repeat(np.arange(len(m)), n_lines)
    owner = m[visit]
    # Category by the member's preferences: one binary search over the chunk's stacked CDFs.
    n_cat = members.preferences.shape[1]
    cdf = np.cumsum(members.preferences, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    stacked = (np.arange(members.size)[:, None] + cdf).ravel()
    flat = np.searchsorted(stacked, owner + gen.random(len(owner)), side="right")
    category = np.minimum(flat - owner * n_cat, n_cat - 1)
    private = gen.random(len(owner)) < members.private_propensity[owner]
    product = catalog.sample(category, private, gen.random(len(owner)))
    quantity = 1 + gen.poisson(0.25, size=len(owner))
    gross = catalog.price[product] * quantity
    on_deal = gen.random(len(owner)) < 0.05 + 0.35 * members.deal_proneness[owner]
    discount = np.where(on_deal, np.round(gross * gen.uniform(0.10, 0.35, size=len(owner))), 0)
    discount = discount.astype(np.int64)
    return Lines(visit=visit, product=product, quantity=quantity.astype(np.int64),
                 amount=gross - discount, discount=discount)


def generate_baskets(members: MemberChunk, catalog: ProductCatalog, seed: int,
                     chunk_index: int) -> tuple[Visits, Lines]:
    """Visits and lines of one chunk, from the chunk's own basket stream."""
    gen = rng(seed, chunk_index, STREAM_BASKETS)
    visits = generate_visits(members, gen)
    return visits, generate_lines(members, visits, catalog, gen)
