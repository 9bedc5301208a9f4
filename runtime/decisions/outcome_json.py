"""Decision outcomes as JSON: the shape both decision endpoints answer with.

One decision::

    {"decision_id", "model_version", "as_of", "placement", "member": {tier state, progress},
     "offers": [{offer_id, rank, kind, title, text, value, value_unit, value_display,
                 propensity, uplift, priority, net_value, send_cost, explored,
                 probability, tier_promo, reasons, requires_coupon, coupon_code?,
                 coupon_display?, expires_at?}],
     "excluded": [{offer_id, reason, clause?}], "holdout", "policy", "scores", "history",
     "degraded", "took_ms"}

An offer's ``value`` is in the unit ``value_unit`` names (``currency_minor``: minor units
of the program's money; ``percent``; ``multiplier``; ``points``), and ``value_display`` is
the same for people. ``priority`` is the expected net value of sending the offer in minor
units (``net_value`` in major units): uplift x value - cost for an uplift model (``uplift`` its
incremental conversion probability, null for propensity models), propensity x value - cost
otherwise; ``send_cost`` is what one send costs, in major units. Money in the member's tier state is in the metric's unit (minor units
for spend programs, with ``metric_display`` beside it); ``progress`` is the share of the next tier's threshold reached (1 at the top).
An excluded offer whose targeting rule failed (``RULE_NOT_MET``) names the failing clause
with its YAML path: ``"clause": "offers[2].rule.all[0]: context.device == app"``.
Times are RFC 3339: decision times in UTC, tier dates with the program zone's offset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from models.catalog import MULTIPLIER_KINDS, PERCENT_KINDS, POINT_KINDS
from models.member import MemberContext
from models.program import Program
from runtime.decisions.outcome import IssuedOffer, Outcome


def rfc3339(when: datetime | pd.Timestamp | int) -> str:
    """An aware datetime (or epoch seconds) as RFC 3339 UTC text."""
    if isinstance(when, int):
        when = datetime.fromtimestamp(when, UTC)
    return pd.Timestamp(when).tz_convert(UTC).isoformat().replace("+00:00", "Z")


def _local(ts: pd.Timestamp | None, zone: str) -> str | None:
    """A naive local program time as RFC 3339 with the zone's offset."""
    if ts is None or pd.isna(ts):
        return None
    return pd.Timestamp(ts).tz_localize(zone, ambiguous=True, nonexistent="shift_forward").isoformat()


def member_json(program: Program, member: MemberContext) -> dict[str, Any]:
    """The member's tier state and progress."""
    out: dict[str, Any] = {"member_id": member.member_id, "known": member.known_history}
    if member.points_balance is not None:
        out["points_balance"] = member.points_balance
    tier = member.tier
    if tier is None:
        return out
    thresholds = program.threshold_metric
    progress = 1.0
    if tier.next_tier is not None:
        target = int(thresholds[tier.tier_rank + 1])
        progress = round(min(tier.metric / target, 1.0), 4) if target > 0 else 1.0
    out.update({
        "tier": tier.tier, "tier_rank": tier.tier_rank, "since": _local(tier.since, program.timezone),
        "metric": int(tier.metric), "metric_display": program.format_metric(int(tier.metric)),
        "next_tier": tier.next_tier,
        "delta_to_next": None if tier.delta_to_next is None else int(tier.delta_to_next),
        "delta_to_keep": int(tier.delta_to_keep),
        "period_end": _local(tier.period_end, program.timezone),
        "projected_tier": tier.projected_tier, "at_risk": bool(tier.at_risk), "progress": progress,
    })
    return out


def value_unit(kind: str) -> str:
    """The unit of an offer kind's ``value``: ``percent``, ``multiplier``, ``points`` or
    ``currency_minor`` (minor units of the program's money, e.g. cents)."""
    if kind in PERCENT_KINDS:
        return "percent"
    if kind in MULTIPLIER_KINDS:
        return "multiplier"
    if kind in POINT_KINDS:
        return "points"
    return "currency_minor"


def value_display(program: Program, kind: str, value: float) -> str | None:
    """An offer's value as a member reads it ("$1.50", "20%", "2x", "500 stars"); None
    when the value is unknown (0, as for catalog coupons without a face value)."""
    if not value:
        return None
    unit = value_unit(kind)
    if unit == "percent":
        return f"{value:g}%"
    if unit == "multiplier":
        return f"{value:g}x"
    if unit == "points":
        return f"{value:,.0f} {program.currency.name}"
    per = program.currency.minor_units
    digits = len(str(per)) - 1 if per > 1 else 0
    return f"{program.currency.symbol}{value / per:,.{digits}f}"


def offer_json(program: Program, item: IssuedOffer) -> dict[str, Any]:
    """One ranked offer with its value's unit and display text, and its coupon if issued."""
    o = item.offer
    out: dict[str, Any] = {
        "offer_id": o.offer_id, "rank": item.rank, "kind": o.kind, "title": o.title, "text": o.text,
        "value": o.value, "value_unit": value_unit(o.kind),
        "value_display": value_display(program, o.kind, o.value), "propensity": round(o.propensity, 6),
        "uplift": None if o.uplift is None else round(o.uplift, 6), "priority": round(o.priority, 6),
        "net_value": round(o.priority / program.currency.minor_units, 4),
        "send_cost": o.send_cost_minor / program.currency.minor_units, "explored": o.explored, "probability": round(o.probability, 6), "tier_promo": o.tier_promo,
        "reasons": list(o.reasons), "requires_coupon": o.requires_coupon,
    }
    if item.coupon is not None:
        out["coupon_code"] = item.coupon.code
        out["coupon_display"] = item.coupon.display
        out["expires_at"] = rfc3339(item.coupon.expires_at)
    return out


def outcome_json(program: Program, outcome: Outcome, include_excluded: bool = True) -> dict[str, Any]:
    """The response document of one decision (see the module docstring)."""
    d = outcome.decision
    out: dict[str, Any] = {
        "decision_id": outcome.decision_id, "model_version": outcome.model_version,
        "as_of": rfc3339(outcome.as_of), "placement": outcome.placement,
        "member": member_json(program, outcome.member),
        "offers": [offer_json(program, o) for o in outcome.offers],
    }
    if include_excluded:
        clauses = d.rule_clauses
        out["excluded"] = [{"offer_id": e.offer_id, "reason": e.reason, "clause": clauses[e.offer_id]}
                           if e.reason == "RULE_NOT_MET" and e.offer_id in clauses
                           else {"offer_id": e.offer_id, "reason": e.reason} for e in outcome.excluded]
    out.update({"holdout": d.holdout, "policy": d.policy, "explored": d.explored, "scores": outcome.scores,
                "history": outcome.history, "degraded": outcome.degraded,
                "took_ms": round(outcome.took_ms, 3)})
    return out
