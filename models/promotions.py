"""Tier-aware promotions: which tier mechanic applies to a member, and the member's text.

Five mechanics (shared/reference/domain.md):

1. Tier-restricted offers: ``tiers``/``min_tier`` on an offer (checked in eligibility).
2. Tier-differentiated values: ``tier_values`` on an offer, and tier earn multipliers
   on points multipliers (applied in arbitration).
3. Upgrade challenge (kind ``tier_challenge``): only when there is a next tier, the spend
   needed is at most ``reach_multiple`` x the member's typical basket (for visit-based
   programs: at most ``reach_multiple`` visits), and at least ``min_days_left`` days remain
   before the deadline: the period end for calendar-year tiers, ``horizon_days`` ahead
   for rolling and lifetime tiers.
4. Retention nudge (kind ``tier_retention``): the member holds a tier above the entry
   tier, falls short of keeping it (``delta_to_keep`` > 0) and the tier period ends
   within ``window_days``.
5. Entry rewards are ordinary offers restricted to the new tier.

Texts are ``str.format`` templates; the fields are listed in
:data:`models.program.TEMPLATE_FIELDS`. Money is shown in whole major units rounded up,
so "Spend $42" is always enough.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from models.catalog import MONEY_KINDS, MULTIPLIER_KINDS, PERCENT_KINDS, Offer
from models.eligibility import CODE
from models.member import MemberContext
from models.program import Program
from models.units import DAY_NS

CHALLENGE, RETENTION = "tier_challenge", "tier_retention"


@dataclass(frozen=True)
class Mechanics:
    """A member's status for the two tier-state mechanics (code 0 means offered)."""

    challenge_code: int
    challenge_deadline: pd.Timestamp | None
    challenge_amount: str | None
    retention_code: int
    retention_deadline: pd.Timestamp | None
    retention_amount: str | None


def member_mechanics(program: Program, member: MemberContext, as_of: pd.Timestamp) -> Mechanics:
    """Decide whether the upgrade challenge and the retention nudge apply to ``member``."""
    tier = member.tier
    if tier is None:
        unknown = CODE["TIER_UNKNOWN"]
        return Mechanics(unknown, None, None, unknown, None, None)
    ch = program.promotions.upgrade_challenge
    c_code, c_deadline, c_amount = 0, None, None
    if tier.next_tier is None or tier.delta_to_next is None:
        c_code = CODE["TOP_TIER_REACHED"]
    else:
        if program.tier_policy.window.type == "calendar_year" and tier.period_end is not None:
            c_deadline = tier.period_end
        else:
            c_deadline = as_of + pd.Timedelta(days=ch.horizon_days)
        c_amount = program.format_metric(tier.delta_to_next)
        if (c_deadline - as_of).value / DAY_NS < ch.min_days_left:
            c_code = CODE["NOT_ENOUGH_TIME"]
        elif not _reachable(program, member, tier.delta_to_next, ch.reach_multiple):
            c_code = CODE["CHALLENGE_OUT_OF_REACH"]
    rn = program.promotions.retention_nudge
    r_code, r_deadline, r_amount = 0, tier.period_end, None
    if tier.tier_rank == 0 or tier.delta_to_keep <= 0 or tier.period_end is None:
        r_code = CODE["RETENTION_NOT_NEEDED"]
    else:
        r_amount = program.format_metric(tier.delta_to_keep)
        days = (tier.period_end - as_of).value / DAY_NS
        if not 0 <= days <= rn.window_days:
            r_code = CODE["RETENTION_NOT_DUE"]
    return Mechanics(c_code, c_deadline, c_amount, r_code, r_deadline, r_amount)


def _reachable(program: Program, member: MemberContext, delta: int, multiple: float) -> bool:
    """Whether ``delta`` (metric units) is within ``multiple`` typical baskets."""
    if program.counts_visits:
        return math.ceil(delta / program.earn_fraction) <= multiple
    if member.typical_basket_minor is None:
        return False
    spend = delta if program.tier_policy.metric == "spend" else math.ceil(
        delta * program.currency.minor_units / program.earn_fraction)
    return spend <= multiple * member.typical_basket_minor


def tier_promo(offer: Offer, program: Program, tier_rank: int) -> str | None:
    """The tier mechanic an offer applies for a member of ``tier_rank``, or None."""
    if offer.kind == CHALLENGE:
        return "upgrade_challenge"
    if offer.kind == RETENTION:
        return "retention_nudge"
    if offer.tier_values or (offer.kind in MULTIPLIER_KINDS and program.tiers[tier_rank].earn_multiplier != 1):
        return "tier_value"
    if offer.tiers is not None:
        return "tier_restricted"
    return None


def format_value(program: Program, offer: Offer, value: float) -> str:
    """An offer's value in its kind's unit, for members ("20%", "2x", "$5", "100 points")."""
    if offer.kind in PERCENT_KINDS:
        return f"{value:g}%"
    if offer.kind in MULTIPLIER_KINDS:
        return f"{value:g}x"
    if offer.kind in MONEY_KINDS:
        return program.money(int(value))
    return f"{value:,.0f} {program.currency.name}"


def format_date(when: pd.Timestamp, as_of: pd.Timestamp) -> str:
    """"31 Dec", with the year when it is not ``as_of``'s year."""
    text = f"{when.day} {when.strftime('%b')}"
    return text if when.year == as_of.year else f"{text} {when.year}"


def offer_text(program: Program, offer: Offer, member: MemberContext, mech: Mechanics, value: float,
               as_of: pd.Timestamp) -> str | None:
    """The member-specific text of an offer, e.g. "Spend $42 by 31 Dec to reach Gold"."""
    verb = "Spend" if program.tier_policy.metric == "spend" else "Earn"
    template = offer.text
    amount, deadline = None, None
    if offer.kind == CHALLENGE:
        template = template or program.promotions.upgrade_challenge.text or verb + " {amount} by {deadline} to reach {next_tier}"
        amount, deadline = mech.challenge_amount, mech.challenge_deadline
    elif offer.kind == RETENTION:
        template = template or program.promotions.retention_nudge.text or verb + " {amount} by {deadline} to keep {tier}"
        amount, deadline = mech.retention_amount, mech.retention_deadline
    if template is None:
        return None
    tier = member.tier
    fields = {
        "amount": amount or "",
        "deadline": format_date(deadline, as_of) if deadline is not None else "",
        "days_left": str(max(0, (deadline - as_of).days)) if deadline is not None else "",
        "tier": tier.tier if tier else program.tier_names[0],
        "next_tier": (tier.next_tier or "") if tier else "",
        "value": format_value(program, offer, value),
        "currency": program.currency.name,
        "title": offer.title,
        **_points_fields(offer, member, as_of),
        **_challenge_fields(program, offer, member),
    }
    return template.format_map(fields)


def _challenge_fields(program: Program, offer: Offer, member: MemberContext) -> dict[str, str]:
    """``{progress}`` and ``{target}`` of the challenge the offer presents (0 before it started)."""
    ch = next((c for c in program.points.challenges if c.offer == offer.offer_id), None)
    if ch is None:
        return {"progress": "", "target": ""}
    run = next((r for r in member.challenges if r.challenge_id == ch.id), None)
    done = 0.0 if run is None else min(run.progress, run.target)
    return {"progress": f"{done:g}", "target": f"{ch.target:g}"}


def _points_fields(offer: Offer, member: MemberContext, as_of: pd.Timestamp) -> dict[str, str]:
    """The points placeholders: the balance, the points still needed for a reward, and the points
    expiring within the offer's window (or 30 days) with the date the first of them expire."""
    balance = member.points_balance or 0
    window = offer.points_expiring_days if offer.points_expiring_days is not None else 30
    until = as_of.value // 1_000_000_000 + window * 86_400
    first = next((at for at, points in member.points_expiry if at <= until and points > 0), None)
    return {"points_balance": f"{balance:,}", "points_needed": f"{max(0, offer.points_price - balance):,}",
            "points_expiring": f"{member.points_expiring(until):,}",
            "expiry_date": "" if first is None else format_date(pd.Timestamp(first, unit="s"), as_of)}
