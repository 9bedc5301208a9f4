"""Which exposures turn into redemptions, and the basket line each redemption lands on.

The chance that an exposure is redeemed is a logistic function of, in decreasing order
of strength (docs/synthetic.md has the exact numbers):

* the member's affinity lift for the offer's products (log scale, coefficient 1.0),
* the discount depth: the offer's worth as a share of a typical target purchase,
* the offer kind (birthday offers are popular, points multipliers are not),
* the member's tier (rank 0-2), engagement, shopping frequency and the channel,

calibrated so that about 3% of exposures are redeemed. A redemption happens on one of
the member's own trips between the exposure and the end of the offer's window; a
member with no trip in that window makes an extra, offer-driven trip only with
probability ``EXTRA_TRIP_CHANCE`` (otherwise the coupon lapses), so members who
shop often redeem more. Either way the
redeemed product is added to that basket as a transaction line whose
``coupon_discount_minor`` is the coupon's value (zero for points and shipping offers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offerdata.synthetic.baskets import MAX_VISITS, Visits, store_hours
from offerdata.synthetic.campaigns import SHIPPING_FEE_CENTS
from offerdata.synthetic.exposures import Exposures
from offerdata.synthetic.members import MemberChunk
from offerdata.synthetic.offer_catalog import OfferCatalog
from offerdata.synthetic.params import OPT_IN_CHANNELS, STREAM_REDEMPTIONS, rng
from offerdata.synthetic.products import ProductCatalog

INTERCEPT = -5.1
#: Chance that a member who would redeem but has no trip in the window makes one for the offer.
EXTRA_TRIP_CHANCE = 0.35
AFFINITY_EFFECT = 1.0
DEPTH_EFFECT = 2.0
TIER_EFFECT = 0.35
FREQUENCY_EFFECT = 0.3
#: Visits a year of the median member; frequency enters as log(visits / this).
MEDIAN_VISITS = 365 / 27
KIND_EFFECT: dict[str, float] = {
    "percent_off": 0.0, "amount_off": 0.0, "free_item": 0.3, "points_multiplier": -0.3,
    "bonus_points": -0.1, "partner": 0.3, "early_access": 0.4, "free_shipping": 0.0,
    "birthday": 1.2,
}
CHANNEL_EFFECT: dict[str, float] = {"app": 0.3, "web": 0.0, "email": 0.0, "push": 0.2, "sms": -0.2,
                                    "mail": -0.4}
#: Time in seconds wide enough to order (member, time) pairs by one integer key.
_SPAN = 1 << 26


@dataclass
class Redemptions:
    """Redeemed exposures and the transaction lines they add."""

    member: np.ndarray  # row in the chunk
    offer: np.ndarray
    time: np.ndarray  # seconds; also the purchase time of the line
    seq: np.ndarray  # basket sequence number (>= MAX_VISITS for offer-driven trips)
    store: np.ndarray
    product: np.ndarray  # catalog row of the redeemed product
    quantity: np.ndarray
    gross: np.ndarray  # shelf price times quantity, cents
    coupon: np.ndarray  # coupon discount on the line, cents
    discount: np.ndarray  # discount granted by the redemption, cents


def redemption_logit(members: MemberChunk, tier: np.ndarray, lift: np.ndarray,
                     exposures: Exposures, offers: OfferCatalog) -> np.ndarray:
    """Log-odds that each exposure is redeemed (see the module docstring)."""
    m, o = exposures.member, exposures.offer
    kind_effect = np.array([KIND_EFFECT[k] for k in offers.kind])
    channel_effect = np.array([CHANNEL_EFFECT[c] for c in OPT_IN_CHANNELS])
    visits = 365.0 / members.gap_days[m]
    return (INTERCEPT + kind_effect[o]
            + AFFINITY_EFFECT * np.log(np.clip(lift[m, o], 0.05, 20.0))
            + DEPTH_EFFECT * offers.depth[o]
            + TIER_EFFECT * tier[m]
            + members.engagement[m]
            + FREQUENCY_EFFECT * np.log(visits / MEDIAN_VISITS)
            + channel_effect[exposures.channel])


def _coupon(kind: np.ndarray, value: np.ndarray, price: np.ndarray,
            quantity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coupon discount on the line and the discount the redemption grants, per kind."""
    gross = price * quantity
    percent = np.isin(kind, ["percent_off", "partner", "early_access"])
    amount = np.isin(kind, ["amount_off", "birthday"])
    coupon = np.zeros(len(kind), dtype=np.int64)
    coupon[percent] = np.round(gross[percent] * value[percent] / 100).astype(np.int64)
    coupon[amount] = np.minimum(value[amount].astype(np.int64), gross[amount])
    free = kind == "free_item"
    coupon[free] = price[free]
    granted = coupon.copy()
    granted[kind == "free_shipping"] = SHIPPING_FEE_CENTS
    return coupon, granted


def generate_redemptions(members: MemberChunk, tier: np.ndarray, lift: np.ndarray,
                         exposures: Exposures, visits: Visits, offers: OfferCatalog,
                         catalog: ProductCatalog, seed: int, chunk_index: int) -> Redemptions:
    """Draw redemptions for the chunk's exposures and place each on a basket."""
    gen = rng(seed, chunk_index, STREAM_REDEMPTIONS)
    logit = redemption_logit(members, tier, lift, exposures, offers)
    hit = gen.random(len(logit)) < 1.0 / (1.0 + np.exp(-logit))
    m, o, seen = exposures.member[hit], exposures.offer[hit], exposures.time[hit]
    # At most one redemption per (member, offer): each pair is exposed once.
    end = offers.ends[o]
    key = visits.member * _SPAN + visits.time
    lo = np.searchsorted(key, m * _SPAN + seen, side="left")
    hi = np.searchsorted(key, m * _SPAN + end, side="right")
    has_trip = hi > lo
    keep = has_trip | (gen.random(len(m)) < EXTRA_TRIP_CHANCE)
    m, o, seen, end, lo, hi, has_trip = (a[keep] for a in (m, o, seen, end, lo, hi, has_trip))
    pick = np.minimum(lo + (gen.random(len(m)) * (hi - lo)).astype(np.int64), len(key) - 1)
    extra_time = np.clip(store_hours(seen + (gen.random(len(m)) * (end - seen)).astype(np.int64)), seen, end)
    time = np.where(has_trip, visits.time[pick], extra_time)
    seq = np.where(has_trip, visits.seq[pick], MAX_VISITS + o)
    store = np.where(has_trip, visits.store[pick], members.home_store[m])

    first, count = offers.product_start[o], np.diff(offers.product_start)[o]
    product = offers.product_rows[first + (gen.random(len(m)) * count).astype(np.int64)]
    kind = offers.kind[o]
    quantity = 1 + gen.poisson(0.25, size=len(m))
    quantity[kind == "free_item"] = np.maximum(quantity[kind == "free_item"], 2)
    price = catalog.price[product]
    coupon, granted = _coupon(kind, offers.value[o], price, quantity)
    return Redemptions(member=m, offer=o, time=time, seq=seq, store=store, product=product,
                       quantity=quantity.astype(np.int64), gross=price * quantity, coupon=coupon,
                       discount=granted)
