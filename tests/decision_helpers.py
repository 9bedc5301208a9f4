"""Small programs, offers and members for decision-core tests."""

from __future__ import annotations

import pandas as pd

from models.catalog import Catalog, Offer, OfferCaps
from models.member import MemberContext
from models.program import Program, parse_program
from models.tiers import TierState

AS_OF = pd.Timestamp("2024-06-15 12:00")
YEAR_END = pd.Timestamp("2024-12-31 23:59:59")

PROGRAM_YAML = """
name: test
currency: {{name: points, earn_rate: 1, point_value: 0.01}}
tier_policy:
  metric: spend
  window: {{type: calendar_year}}
tiers:
  - {{name: Bronze, threshold: 0}}
  - {{name: Silver, threshold: 300}}
  - {{name: Gold, threshold: 700, earn_multiplier: 2}}
decisions:
  max_offers: {max_offers}
  margin_rate: {margin}
  default_basket: 40
  diversity: {{per_category: {per_category}, per_stacking_group: 1}}
  exploration: {{share: {share}, method: {method}}}
  holdout: {{share: {holdout}, salt: test}}
  levers: {levers}
"""


def program(max_offers: int = 5, margin: float = 0.0, per_category: int = 2, share: float = 0.0,
            method: str = "epsilon_greedy", holdout: float = 0.0, levers: str = "{}") -> Program:
    return parse_program(PROGRAM_YAML.format(max_offers=max_offers, margin=margin, per_category=per_category,
                                             share=share, method=method, holdout=holdout, levers=levers))


def tier(rank: int, *, delta_to_next: int | None = 10000, delta_to_keep: int = 0,
         period_end: pd.Timestamp | None = YEAR_END, metric: int = 0) -> TierState:
    names = ("Bronze", "Silver", "Gold")
    top = rank == 2
    return TierState(tier=names[rank], tier_rank=rank, since=None, metric=metric,
                     next_tier=None if top else names[rank + 1], delta_to_next=None if top else delta_to_next,
                     delta_to_keep=delta_to_keep, period_end=period_end, projected_tier=names[rank],
                     at_risk=delta_to_keep > 0)


def member(member_id: str = "m1", rank: int = 0, **kw: object) -> MemberContext:
    base: dict[str, object] = {"tier": tier(rank), "typical_basket_minor": 4000, "recent_spend_minor": 20000,
                               "has_history": True}
    base.update(kw)
    return MemberContext(member_id, **base)  # type: ignore[arg-type]


def offer(offer_id: str, kind: str = "amount_off", value: float = 100, **kw: object) -> Offer:
    return Offer(offer_id=offer_id, kind=kind, title=offer_id.title(), value=value, **kw)  # type: ignore[arg-type]


def catalog(offers: list[Offer], prog: Program | None = None, popularity: dict[str, float] | None = None) -> Catalog:
    return Catalog(prog or program(), offers, popularity)


__all__ = ["AS_OF", "Catalog", "Offer", "OfferCaps", "catalog", "member", "offer", "program", "tier"]
