"""Which members each campaign reaches, which offers they see, when and on which channel.

For every campaign a member is *eligible* when they had joined by the campaign's
start, opted in to at least one of its channels, hold a tier (and segment) that at
least one of its offers allows, and, for birthday campaigns, were born that month.
Eligible members are reached with probability ``reach``, tilted towards members
whose best affinity for the campaign's offers is high when the campaign is targeted.
A reached member sees between ``per_member`` offers among those their tier and
segment allow, again chosen by affinity plus Gumbel noise, all at one moment within
the first ``send_days`` of the campaign, on one channel from the intersection of the
member's opt-ins and the campaign's channels. Loops run per campaign (about 60),
never per member.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offerdata.synthetic.members import MemberChunk
from offerdata.synthetic.offer_catalog import MEAN_PRIVATE_PROPENSITY, OfferCatalog
from offerdata.synthetic.params import DAY, OPT_IN_CHANNELS, STREAM_EXPOSURES, rng


@dataclass
class Exposures:
    """One row per (member, offer) exposure of a chunk."""

    member: np.ndarray  # row in the chunk
    offer: np.ndarray  # offer index
    time: np.ndarray  # seconds since the start of the year
    channel: np.ndarray  # index into OPT_IN_CHANNELS


def affinity_lift(members: MemberChunk, offers: OfferCatalog) -> np.ndarray:
    """(members, offers) affinity: the member's share of the offer's target over the average share.

    1 is an average member; a member who buys twice the usual share of the target
    category scores 2. For one supplier brand the lift is scaled by how much more (or
    less) than average the member buys national brands rather than private label.
    """
    lift = (members.preferences @ offers.lift_weights.T).astype(np.float32)
    brand_factor = (1 - members.private_propensity) / (1 - MEAN_PRIVATE_PROPENSITY)
    lift[:, offers.national_brand] *= brand_factor[:, None].astype(np.float32)
    return lift


def _pick_channel(member_mask: np.ndarray, campaign_mask: int, gen: np.random.Generator) -> np.ndarray:
    """A uniformly chosen channel among those both the member and the campaign allow."""
    bits = (member_mask[:, None] & campaign_mask) >> np.arange(len(OPT_IN_CHANNELS)) & 1
    return np.argmax(np.where(bits == 1, gen.random(bits.shape), -1.0), axis=1)


def generate_exposures(members: MemberChunk, tier: np.ndarray, lift: np.ndarray,
                       offers: OfferCatalog, seed: int, chunk_index: int) -> Exposures:
    """Every exposure of the chunk's members over the year's campaigns."""
    gen = rng(seed, chunk_index, STREAM_EXPOSURES)
    log_lift_all = np.log(np.clip(lift, 1e-3, None))
    parts: list[tuple[np.ndarray, ...]] = []
    for ci, camp in enumerate(offers.campaigns):
        lo_col, hi_col = offers.campaign_offers[ci], offers.campaign_offers[ci + 1]
        allowed = offers.tier_ok[lo_col:hi_col][:, tier].T & offers.segment_ok[lo_col:hi_col][:, members.segment].T
        eligible = ((members.joined <= camp.start) & (members.channel_mask & camp.channel_mask > 0)
                    & allowed.any(axis=1))
        if camp.birth_month:
            eligible &= members.birth_month == camp.birth_month
        rows = np.flatnonzero(eligible)
        if len(rows) == 0:
            continue
        log_lift = log_lift_all[rows, lo_col:hi_col]
        allowed = allowed[rows]
        if camp.targeting:
            weight = np.exp(camp.targeting * np.where(allowed, log_lift, -np.inf).max(axis=1))
            chance = np.clip(camp.reach * weight / weight.mean(), 0.0, 1.0)
        else:
            chance = np.full(len(rows), camp.reach)
        reached = gen.random(len(rows)) < chance
        rows, log_lift, allowed = rows[reached], log_lift[reached], allowed[reached]
        if len(rows) == 0:
            continue
        score = camp.targeting * log_lift + gen.gumbel(size=log_lift.shape)
        score[~allowed] = -np.inf
        rank = np.argsort(np.argsort(-score, axis=1), axis=1)
        lo, hi = camp.per_member
        shown = np.minimum(gen.integers(lo, hi + 1, size=len(rows)), allowed.sum(axis=1))
        who, which = np.nonzero(rank < shown[:, None])
        sent = camp.start + (gen.random(len(rows)) * camp.send_days * DAY).astype(np.int64)
        channel = _pick_channel(members.channel_mask[rows], camp.channel_mask, gen)
        parts.append((rows[who], lo_col + which, sent[who], channel[who]))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Exposures(empty, empty, empty, empty)
    member, offer, time, channel = (np.concatenate(a) for a in zip(*parts, strict=True))
    order = np.argsort((member << 37) | (time << 11) | offer)  # offers number fewer than 2**11
    return Exposures(member[order], offer[order], time[order], channel[order])
