"""What the decision core knows about a member: a plain dataclass the caller fills in.

The service builds a :class:`MemberContext` from its online store, batch jobs from the
contract tables; the core never fetches anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from models.challenges import Progress
from models.tiers import TierState


@dataclass(frozen=True)
class MemberContext:
    """One member's inputs to a decision.

    Attributes
    ----------
    member_id
        The member's id (also hashed for the holdout group).
    tier
        The member's :class:`~models.tiers.TierState`; None when unknown (tier-restricted
        offers then only pass for the entry tier, tier mechanics are skipped).
    segment, birth_month, joined_at
        Member attributes for eligibility; None when unknown.
    channels
        Channels the member opted in to; None when unknown (no channel is ruled out).
    bought_products, bought_categories
        Products and categories the member has bought (for targeted offers).
    typical_basket_minor
        The member's typical basket in minor units (the value model and the upgrade
        challenge's reach test use it); None when unknown.
    recent_spend_minor
        Recent spend in minor units, for ``min_recent_spend`` eligibility.
    has_history
        Whether the member has any purchase history; None infers it from the basket,
        recent spend and tier metric. A member without history gets the cold-start policy.
    points_balance
        Spendable points (the ledger's balance now); None when the program keeps no ledger
        (offers priced in points are then never eligible).
    points_expiry
        The member's spendable points by expiry, as (local program seconds when they expire,
        points), soonest first; points that never expire are left out.
    challenges
        The member's current run of each challenge they were given, with its progress
        (:mod:`models.challenges`).
    plans
        The paid plans (``points.plans``) active for the member now.
    attributes
        The member's ``attr_*`` columns as (name, value) pairs (numbers and booleans as
        floats, categories as strings; missing values left out), for targeting rules.
    """

    member_id: str
    tier: TierState | None = None
    segment: str | None = None
    birth_month: int | None = None
    joined_at: pd.Timestamp | None = None
    channels: frozenset[str] | None = None
    bought_products: frozenset[str] = frozenset()
    bought_categories: frozenset[str] = frozenset()
    typical_basket_minor: int | None = None
    recent_spend_minor: int = 0
    has_history: bool | None = None
    points_balance: int | None = None
    points_expiry: tuple[tuple[int, int], ...] = ()
    challenges: tuple[Progress, ...] = ()
    plans: frozenset[str] = frozenset()
    attributes: tuple[tuple[str, str | float], ...] = ()

    def attribute(self, name: str) -> str | float | None:
        """The member's value of attribute column ``name`` (``attr_...``); None when missing."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    def points_expiring(self, until: int) -> int:
        """Spendable points expiring at or before ``until`` (local program seconds)."""
        return sum(points for at, points in self.points_expiry if at <= until)

    @property
    def known_history(self) -> bool:
        """True when the member has purchase history (explicit, or inferred)."""
        if self.has_history is not None:
            return self.has_history
        return bool(self.typical_basket_minor or self.recent_spend_minor
                    or (self.tier is not None and self.tier.metric > 0))
