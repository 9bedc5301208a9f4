"""Eligibility: why each candidate offer may or may not go to each member, as reason codes.

Checks run as whole-array operations over a (members x candidates) matrix; a single
decision is the one-member case. Each cell keeps the *first* failing reason, in the
order of :data:`REASONS`, so an excluded offer always carries one clear code and
never raises. Caps, budgets and diversity are applied later by the decision
(:mod:`models.caps`, :mod:`models.arbitration`) but use codes from the same table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.catalog import ALL_CHANNELS, Catalog, Offer, channel_bits
from models.data_contract import CHANNELS
from models.member import MemberContext
from models.units import DAY_NS

#: Reason codes; index 0 means eligible. The order is the order checks are reported in.
REASONS: tuple[str, ...] = (
    "ELIGIBLE", "UNKNOWN_OFFER", "OUTSIDE_WINDOW", "CHANNEL_NOT_ELIGIBLE", "TIER_NOT_ELIGIBLE",
    "SEGMENT_NOT_ELIGIBLE", "BIRTHDAY_NOT_THIS_MONTH", "JOIN_DATE_NOT_ELIGIBLE", "MIN_SPEND_NOT_MET",
    "PRODUCT_NOT_BOUGHT", "TIER_UNKNOWN", "TOP_TIER_REACHED", "CHALLENGE_OUT_OF_REACH", "NOT_ENOUGH_TIME",
    "RETENTION_NOT_NEEDED", "RETENTION_NOT_DUE", "FREQUENCY_CAPPED", "MEMBER_CAP_REACHED",
    "BUDGET_EXHAUSTED", "DIVERSITY_LIMIT", "OFFER_CONTROL", "HOLDOUT", "COST_EXCEEDS_VALUE",
    "POINTS_INSUFFICIENT", "NO_POINTS_EXPIRING", "PLAN_REQUIRED", "RULE_NOT_MET",
    "BUDGET_PACED", "CONTACT_CAPPED", "QUIET_HOURS",
)
CODE = {name: i for i, name in enumerate(REASONS)}


@dataclass(frozen=True)
class MemberArrays:
    """Member attributes as arrays aligned with a list of members (see :func:`member_arrays`)."""

    tier_rank: np.ndarray
    segment: np.ndarray
    birth_month: np.ndarray
    join_days: np.ndarray
    channel_mask: np.ndarray
    recent_spend: np.ndarray
    basket: np.ndarray
    points_balance: np.ndarray


def member_arrays(catalog: Catalog, members: Sequence[MemberContext], as_of: pd.Timestamp) -> MemberArrays:
    """Collect member attributes into arrays; unknown baskets take the program's default basket."""
    default_basket = catalog.program.to_minor(catalog.program.decisions.default_basket)
    unknown_segment = len(catalog.segment_code)
    seg = catalog.segment_code
    return MemberArrays(
        tier_rank=np.array([0 if m.tier is None else m.tier.tier_rank for m in members], dtype=np.int64),
        segment=np.array([seg.get(m.segment, unknown_segment) if m.segment else unknown_segment for m in members],
                         dtype=np.int64),
        birth_month=np.array([m.birth_month or 0 for m in members], dtype=np.int64),
        join_days=np.array([np.nan if m.joined_at is None or pd.isna(m.joined_at)
                            else (as_of - pd.Timestamp(m.joined_at)).value / DAY_NS for m in members]),
        channel_mask=np.array([ALL_CHANNELS if m.channels is None else channel_bits(m.channels) for m in members],
                              dtype=np.int64),
        recent_spend=np.array([m.recent_spend_minor for m in members], dtype=np.int64),
        basket=np.array([m.typical_basket_minor or default_basket for m in members], dtype=np.float64),
        points_balance=np.array([m.points_balance or 0 for m in members], dtype=np.int64),
    )


def static_reasons(catalog: Catalog, cand: np.ndarray, members: Sequence[MemberContext], ma: MemberArrays,
                   as_of: pd.Timestamp, channel: str | None, rule_fails: np.ndarray | None = None) -> np.ndarray:
    """Reason codes (members x candidates, int64) for everything but caps and tier mechanics.

    ``cand`` holds catalog positions; -1 marks an id the catalog does not know. ``rule_fails``
    marks the cells whose targeting rules fail (:func:`models.rule_checks.rule_checks`):
    ``RULE_NOT_MET`` after the fixed fields, before the offer's control group draw.
    """
    m, c = len(members), len(cand)
    known = cand >= 0
    pos = np.where(known, cand, 0)
    codes = np.zeros((m, c), dtype=np.int64)

    def fail(mask: np.ndarray, code: str) -> None:
        np.putmask(codes, (codes == 0) & np.broadcast_to(mask, (m, c)), CODE[code])

    fail(~known, "UNKNOWN_OFFER")
    now = as_of.value
    fail((now < catalog.starts[pos]) | (now > catalog.ends[pos]), "OUTSIDE_WINDOW")
    if channel is not None:
        bit = 1 << CHANNELS.index(channel) if channel in CHANNELS else 0
        offer_ok = (catalog.channel_mask[pos] & bit) != 0
        member_ok = (ma.channel_mask & bit) != 0
        fail(~(offer_ok[None, :] & member_ok[:, None]), "CHANNEL_NOT_ELIGIBLE")
    fail(~catalog.tier_ok[pos][:, ma.tier_rank].T, "TIER_NOT_ELIGIBLE")
    fail(~catalog.segment_ok[pos][:, ma.segment].T, "SEGMENT_NOT_ELIGIBLE")
    fail(catalog.birthday[pos][None, :] & (ma.birth_month != as_of.month)[:, None], "BIRTHDAY_NOT_THIS_MONTH")
    jr = catalog.join_restricted[pos]
    if jr.any():
        days = ma.join_days[:, None]
        lo, hi = catalog.join_min[pos][None, :], catalog.join_max[pos][None, :]
        outside = np.isnan(days) | (days < np.where(np.isnan(lo), -np.inf, lo)) | (days > np.where(np.isnan(hi), np.inf, hi))
        fail(jr[None, :] & outside, "JOIN_DATE_NOT_ELIGIBLE")
    fail(catalog.min_recent[pos][None, :] > ma.recent_spend[:, None], "MIN_SPEND_NOT_MET")
    fail((catalog.points_price[pos] > 0)[None, :] & (catalog.points_reach[pos][None, :] > ma.points_balance[:, None]),
         "POINTS_INSUFFICIENT")
    for j in np.flatnonzero(catalog.plan_restricted[pos] & known):
        plans = catalog.offers[pos[j]].plans or frozenset()
        col = codes[:, j]
        col[(col == 0) & np.array([not (plans & mem.plans) for mem in members], dtype=bool)] = CODE["PLAN_REQUIRED"]
    days = catalog.points_expiring_days[pos]
    for j in np.flatnonzero(~np.isnan(days) & known):
        until = as_of.value // 1_000_000_000 + int(days[j]) * 86_400
        col = codes[:, j]
        col[(col == 0) & np.array([mem.points_expiring(until) == 0 for mem in members])] = CODE["NO_POINTS_EXPIRING"]
    needs = np.flatnonzero(catalog.needs_bought[pos] & known)
    for j in needs:
        offer = catalog.offers[pos[j]]
        missing = np.array([not (offer.bought_products & mem.bought_products
                                 or offer.bought_categories & mem.bought_categories) for mem in members])
        col = codes[:, j]
        col[(col == 0) & missing] = CODE["PRODUCT_NOT_BOUGHT"]
    if rule_fails is not None:
        fail(rule_fails, "RULE_NOT_MET")
    for j in np.flatnonzero((catalog.control_share[pos] > 0) & known):
        offer = catalog.offers[pos[j]]
        held = np.array([offer_control_draw(mem.member_id, offer.offer_id) < offer.control_share for mem in members])
        col = codes[:, j]
        col[(col == 0) & held] = CODE["OFFER_CONTROL"]
    return codes


def offer_control_draw(member_id: str, offer_id: str) -> float:
    """The member's fixed position in [0, 1) for the offer's randomized control group: a seeded
    hash of both ids, so the assignment is the same on every worker and after restarts, and
    independent between offers and from the member-level holdout."""
    digest = hashlib.blake2b(f"offer-control|{offer_id}|{member_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def passed_reasons(offer: Offer, member: MemberContext, channel: str | None, basket_points: int = 0) -> list[str]:
    """The eligibility rules an offer restricts on and the member passed, as reason strings
    (``basket_points``: what the request's cart earns, counted toward a reward's price)."""
    out = []
    if offer.tiers is not None and member.tier is not None:
        out.append(f"ELIGIBLE_TIER:{member.tier.tier}")
    if offer.segments is not None and member.segment:
        out.append(f"ELIGIBLE_SEGMENT:{member.segment}")
    if channel is not None and offer.channels is not None:
        out.append(f"ELIGIBLE_CHANNEL:{channel}")
    if offer.birthday_month:
        out.append("ELIGIBLE_BIRTHDAY_MONTH")
    if offer.join_min_days is not None or offer.join_max_days is not None:
        out.append("ELIGIBLE_JOIN_WINDOW")
    if offer.min_recent_spend_minor:
        out.append("ELIGIBLE_MIN_SPEND")
    if offer.points_price:
        balance = member.points_balance or 0
        if balance >= offer.points_price:
            out.append(f"POINTS_BALANCE:{balance}")
        elif balance + basket_points >= offer.points_price:
            out.append(f"POINTS_WITH_BASKET:{basket_points}")
        else:
            out.append(f"POINTS_NUDGE:{offer.points_price - balance - basket_points}")
    if offer.points_expiring_days is not None:
        out.append("POINTS_EXPIRING")
    if offer.plans is not None and offer.plans & member.plans:
        out.append(f"ELIGIBLE_PLAN:{sorted(offer.plans & member.plans)[0]}")
    if offer.rules:
        out.append("ELIGIBLE_RULE")
    bought = sorted((offer.bought_categories & member.bought_categories) | (offer.bought_products & member.bought_products))
    if bought:
        out.append(f"ELIGIBLE_BOUGHT:{bought[0]}")
    return out
