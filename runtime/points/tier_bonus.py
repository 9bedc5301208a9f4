"""The bonus points of tier promotions: paid when a purchase does what the promotion asked.

An upgrade challenge (``kind: tier_challenge``) promises its ``value`` in points to a member who
reaches the next tier; a retention nudge (``kind: tier_retention``) to one who secures their
tier for the next period. When purchases arrive for a member the offer reached (issued or shown
within the promotion's horizon: ``promotions.upgrade_challenge.horizon_days``,
``promotions.retention_nudge.window_days``), the tier engine runs on their lines with and without
the new ones; a move up (or ``delta_to_keep`` reaching 0) pays the bonus, once per issue (cause
``tier_challenge:<offer>:<issued at>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from models.challenges import Purchases
from models.points import UNIT, Posting, available_at, expiry_at
from models.tiers import NAT, TierState, tier_state_list
from runtime.decisions.setup import DecisionSetup

KINDS = ("tier_challenge", "tier_retention")
DAY = 86_400


def tier_after(setup: DecisionSetup, lines: Purchases, joined_local: int | None, at_local: int) -> TierState:
    """The member's tier state at local second ``at_local`` from their purchase lines."""
    joined = np.array([NAT if joined_local is None else joined_local * 1_000_000_000], dtype=np.int64)
    [state] = tier_state_list(setup.program, np.zeros(len(lines.time), np.int64), lines.time * 1_000_000_000,
                              np.rint(lines.amount).astype(np.int64), 1, pd.Timestamp(at_local, unit="s"), joined)
    return state


def tier_bonus_postings(setup: DecisionSetup, before: TierState | None, after: TierState,
                        offered: Mapping[str, Sequence[int]], ts: int) -> list[Posting]:
    """The promotion bonuses the move from ``before`` to ``after`` (at epoch ``ts``) pays."""
    if before is None:
        return []
    program = setup.program
    horizons = {"tier_challenge": program.promotions.upgrade_challenge.horizon_days,
                "tier_retention": program.promotions.retention_nudge.window_days}
    out = []
    for offer in setup.catalog.offers:
        if offer.kind not in KINDS:
            continue
        value = float(offer.tier_values.get(before.tier, offer.value))
        done = (after.tier_rank > before.tier_rank if offer.kind == "tier_challenge"
                else before.delta_to_keep > 0 >= after.delta_to_keep)
        reached = [t for t in offered.get(offer.offer_id, ()) if t <= ts < t + horizons[offer.kind] * DAY]
        if value <= 0 or not done or not reached:
            continue
        issued = max(reached)
        out.append(Posting(f"{offer.kind}:{offer.offer_id}:{issued}", "earn", round(value * UNIT), ts,
                           expiry_at(program.points, ts, setup.zone), available_at(program.points, ts, setup.zone),
                           meta={"rule": offer.kind, "offer_id": offer.offer_id, "from_tier": before.tier,
                                 "to_tier": after.tier}))
    return out
