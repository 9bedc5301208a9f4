"""What accepted events earn: from transaction events and the members' state to ledger postings.

:class:`Earning` is built once per decision setup (program, catalog, product categories). For a
batch of events it reads the transaction members' decision inputs in one store round trip
(:meth:`~runtime.decisions.pipeline.DecisionPipeline.read_inputs`: the tier, exactly as a
decision sees it, and the offers issued or shown to them) and applies the pure earn rules of
:mod:`models.points` line by line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from models.challenges import Purchases
from models.features.history import UNKNOWN
from models.points import (
    UNIT,
    EarnContext,
    PointsOffer,
    Posting,
    PurchaseLine,
    available_at,
    earn_postings,
    expiry_at,
)
from models.tiers import TierState
from runtime.decisions.pipeline import DecisionPipeline
from runtime.events.event import FeedbackEvent
from runtime.points.challenge_runs import event_purchases, purchases_of, runs
from runtime.points.ledger import MemberFacts
from runtime.points.referrals import referral_postings
from runtime.points.tier_bonus import KINDS as PROMOTION_KINDS
from runtime.points.tier_bonus import tier_after, tier_bonus_postings
from runtime.stores import MemberState

POINT_KINDS = ("bonus_points", "points_multiplier")
#: The state counters that say an offer reached a member.
REACHED = ("issue", "impression")


@dataclass(frozen=True)
class MemberRead:
    """What the earn rules read about one member, in the one store read of a batch."""

    context: EarnContext
    facts: MemberFacts
    state: MemberState | None
    #: purchase lines from the history (local seconds), before this batch's
    lines: Purchases
    #: the tier now, before this batch's purchases
    tier: TierState | None
    #: the join time in local seconds (None: unknown)
    joined_local: int | None


def basket_totals(lines: Sequence[FeedbackEvent], exponent: int) -> dict[tuple[str, str], int]:
    """Spend per (member, basket id) over the purchase lines that arrived together (refunds excluded),
    so a bonus offer's minimum basket is checked against the basket, not one line of it."""
    out: dict[tuple[str, str], int] = {}
    for ev in lines:
        if ev.basket_id is not None and getattr(ev, "refund_of", None) is None:
            key = (ev.member_id, ev.basket_id)
            out[key] = out.get(key, 0) + ev.amount(exponent)
    return out


class Earning:
    """The earn rules bound to one decision pipeline (see the module docstring)."""

    def __init__(self, pipeline: DecisionPipeline):
        self.pipeline = pipeline
        setup = pipeline.setup
        self.program = setup.program
        self.zone = setup.zone
        # an offer presenting a challenge pays by the challenge's goal, not per purchase
        presenting = {c.offer for c in setup.program.points.challenges}
        self.offers = [
            PointsOffer(o.offer_id, o.kind, float(o.value), o.category,
                        None if o.starts_at is None else setup.epoch(o.starts_at),
                        None if o.ends_at is None else setup.epoch(o.ends_at),
                        None if o.valid_days is None else o.valid_days * 86_400, o.min_spend_minor)
            for o in setup.catalog.offers if o.kind in POINT_KINDS and o.offer_id not in presenting]
        #: upgrade challenges and retention nudges with bonus points to pay
        self.promotion_offers = [o.offer_id for o in setup.catalog.offers if o.kind in PROMOTION_KINDS and o.value > 0]
        self.promotions = bool(self.promotion_offers)
        fc = setup.features
        self.category = {str(p): str(fc.category_levels[c]) for p, c in zip(fc.product_ids, fc.product_category,
                                                                             strict=True)
                         if str(fc.category_levels[c]) != UNKNOWN}

    def facts(self, profile: object | None) -> MemberFacts:
        """Join time (epoch) and birth month from a stored profile, for the signup and birthday bonuses."""
        if profile is None:
            return MemberFacts()
        joined = getattr(profile, "joined_at", None)
        return MemberFacts(None if joined is None else self.pipeline.setup.epoch(pd.Timestamp(joined, unit="s")),
                           getattr(profile, "birth_month", None))

    def read(self, member_ids: Sequence[str], when: datetime | None) -> dict[str, MemberRead]:
        """Each member's earn context (tier, offers that reached them), facts, state and purchase
        lines, in one store read."""
        out = {}
        for member_id, (inputs, bundle, hist) in zip(member_ids, self.pipeline.read_inputs(member_ids, when),
                                                     strict=True):
            offered: dict[str, list[int]] = {}
            if bundle is not None:
                for (subject, offer_id), counter in bundle.state.counters.items():
                    if subject in REACHED:
                        offered.setdefault(offer_id, []).extend(counter.recent)
            tier = inputs.context.tier
            profile = bundle.profile if bundle is not None else None
            out[member_id] = MemberRead(
                EarnContext(tier.tier if tier is not None else self.program.tier_names[0], offered,
                            inputs.context.plans),
                self.facts(profile), bundle.state if bundle is not None else None,
                purchases_of(self.pipeline.setup, hist, 0), tier,
                profile.joined_at if profile is not None else None)
        return out

    def postings(self, events: Sequence[FeedbackEvent], exponent: int, when: datetime | None
                 ) -> tuple[dict[str, list[Posting]], dict[str, MemberFacts]]:
        """The postings of the transaction events (by member, in event order) and the members' facts."""
        lines = [e for e in events if e.type == "transaction"]
        members = list(dict.fromkeys(e.member_id for e in lines))
        if not members:
            return {}, {}
        contexts = self.read(members, when)
        out: dict[str, list[Posting]] = {m: [] for m in members}
        baskets = basket_totals(lines, exponent)
        for ev in lines:
            refund_of = getattr(ev, "refund_of", None)
            amount = ev.amount(exponent)
            line = PurchaseLine(ev.event_id, ev.member_id, int(ev.ts.timestamp()),
                                -amount if refund_of is not None else amount,
                                self.category.get(str(ev.product_id)) if ev.product_id is not None else None,
                                ev.basket_id, refund_of,
                                None if ev.basket_id is None else baskets[(ev.member_id, ev.basket_id)])
            out[ev.member_id] += earn_postings(self.program, self.offers, line, contexts[ev.member_id].context,
                                               self.zone)
        for m in members:
            mine = [e for e in lines if e.member_id == m]
            if self.program.points.challenges:
                out[m] += self.completed(mine, contexts[m], exponent)
            if self.promotions:
                out[m] += self.promoted(mine, contexts[m], exponent)
        if self.program.points.referrals is not None:
            links = dict(zip(members, self.pipeline.store.referrals(members), strict=True))
            for m, extra in referral_postings(self.program, self.zone, links, lines, exponent).items():
                out.setdefault(m, []).extend(extra)
        return out, {m: contexts[m].facts for m in members}

    def promoted(self, events: Sequence[FeedbackEvent], member: MemberRead, exponent: int) -> list[Posting]:
        """The tier-promotion bonuses these purchases earn (:mod:`runtime.points.tier_bonus`); the
        tier engine runs again only for a member a promotion with points reached."""
        setup = self.pipeline.setup
        if not any(member.context.offered.get(o) for o in self.promotion_offers):
            return []
        new = event_purchases(setup, events, exponent, self.category)
        if not len(new.time):
            return []
        at = max(int(new.time.max()) + 1, setup.seconds(setup.moment().local))
        after = tier_after(setup, member.lines.plus(new), member.joined_local, at)
        return tier_bonus_postings(setup, member.tier, after, member.context.offered,
                                   max(int(e.ts.timestamp()) for e in events))

    def completed(self, events: Sequence[FeedbackEvent], member: MemberRead, exponent: int) -> list[Posting]:
        """The rewards of the challenge runs these purchases complete (each run pays once: its cause)."""
        state, lines = member.state, member.lines
        now = lines.plus(event_purchases(self.pipeline.setup, events, exponent, self.category))
        ts = max(int(e.ts.timestamp()) for e in events)
        rewards = {c.id: c for c in self.program.points.challenges}
        return [Posting(run.cause, "earn", rewards[run.challenge_id].reward_points * UNIT, ts,
                        expiry_at(self.program.points, ts, self.zone), available_at(self.program.points, ts, self.zone),
                        meta={"rule": "challenge", "challenge_id": run.challenge_id, "progress": run.progress})
                for run in runs(self.pipeline.setup, state, now) if run.completed]
