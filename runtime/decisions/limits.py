"""What a decision reserves, and what it may return when the store cannot be trusted.

:class:`DecisionLimits` turns the decision core's slate into store reservations (member
issue caps and windows, budget limits and charges, coupon lifetimes), reads the write's
answers back into the offers kept (re-ranked) and refused, and supplies the counters that
make limits count as reached when the store could not be read (``store_unavailable``:
issue caps) or lost its data (``store_data_lost``: every member cap), so nothing is ever
over-issued. :class:`~runtime.decisions.pipeline.DecisionPipeline` calls it at its
decide and commit steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from models.caps import BudgetUsage, CapCounters
from models.catalog import Offer
from models.decision import Decision, Excluded
from models.units import CAP_REACHED, DAY_SECONDS
from runtime.coupons.issuance import CouponSpec, Issued
from runtime.decisions import campaign_limits
from runtime.decisions.outcome import UNKNOWN_MEMBER, IssuedOffer
from runtime.decisions.setup import DecisionSetup
from runtime.stores import BudgetCounter, BudgetRef, CapRequest, CapResult, MemberBundle

#: Why every offer of a decision on a channel in its quiet hours was refused.
QUIET_HOURS = "QUIET_HOURS"

#: Lifetime of a coupon for an offer without an end date.
COUPON_DAYS = 30


class DecisionLimits:
    """The caps, budgets and coupon rules of one decision setup (see the module docstring)."""

    def __init__(self, setup: DecisionSetup):
        self.setup = setup

    def usage(self, budgets: Mapping[BudgetRef, BudgetCounter] | None, local: pd.Timestamp) -> BudgetUsage:
        """Budget use in the current periods as the core wants it; unknown (store down) counts as exhausted."""
        return campaign_limits.usage(self.setup.catalog, budgets, local)

    def request_for(self, offer: Offer, now: int, local: pd.Timestamp) -> tuple[CapRequest, CouponSpec | None]:
        """What to reserve for one returned offer at ``now`` (``local`` in program time): its member
        issue cap and window, each of its budgets' current-period counter, limits, pacing
        allowances and charge, and a coupon living until the offer ends (else :data:`COUPON_DAYS`)."""
        caps = offer.caps
        request = CapRequest(
            offer.offer_id, member_limit=caps.issues or None,
            member_window_seconds=None if caps.window_days is None else int(caps.window_days) * DAY_SECONDS,
            charge_minor=offer.charge_minor, budgets=campaign_limits.claims(self.setup.catalog, offer, local))
        spec = None
        if offer.requires_coupon:
            ends = self.setup.epoch(offer.ends_at) if offer.ends_at is not None else now + COUPON_DAYS * DAY_SECONDS
            spec = CouponSpec(ttl_seconds=max(ends - now, 60))
        return request, spec

    def requests(self, decision: Decision, now: int, local: pd.Timestamp,
                 withheld: bool = False) -> list[tuple[CapRequest, CouponSpec | None]]:
        """What to reserve for the returned offers (the withheld coupon offers left out)."""
        return [self.request_for(self.setup.catalog[o.offer_id], now, local) for o in decision.offers
                if not (withheld and o.requires_coupon)]

    def withheld(self, bundle: MemberBundle | None) -> bool:
        """Whether coupon offers are withheld from this member: the store knows nothing of them
        (no event, history nor profile: a typo, or a member not materialized yet; the issue
        counters of earlier decisions do not count) and the program's
        ``coupons.unknown_members`` is off, so such ids never get real codes."""
        return (bundle is not None and not self.setup.program.coupons.unknown_members
                and bundle.profile is None and not bundle.history and bundle.state.last_seen is None)

    def unchecked(self, counters: CapCounters) -> CapCounters:
        """Counters for a decision without the store: every member issue cap counts as reached."""
        issues = {o: CAP_REACHED for o in self.setup.cap_windows["issue"]}
        return CapCounters(impressions=counters.impressions, issues=issues, redemptions=counters.redemptions)

    def untrusted(self) -> CapCounters:
        """Counters for a store that lost its data: every member cap of every offer counts as reached."""
        caps = self.setup.cap_windows
        return CapCounters(impressions=dict.fromkeys(caps["impression"], CAP_REACHED),
                           issues=dict.fromkeys(caps["issue"], CAP_REACHED),
                           redemptions=dict.fromkeys(caps["redeem"], CAP_REACHED))

    def limited(self, offer_id: str) -> str | None:
        """The reason an offer cannot be returned unreserved (it has a budget or an issue cap)."""
        offer = self.setup.catalog[offer_id]
        if offer.budget_keys:
            return "BUDGET_EXHAUSTED"
        if offer.caps.issues:
            return "MEMBER_CAP_REACHED"
        return None

    def apply(self, decision: Decision, issued: Sequence[Issued] | None,
              withheld: bool = False, quiet: bool = False) -> tuple[tuple[IssuedOffer, ...], tuple[Excluded, ...]]:
        """Offers whose reservation was granted (re-ranked), and the refused ones.

        ``issued`` None means nothing could be reserved: limited offers are refused.
        ``withheld``: coupon offers are refused as ``UNKNOWN_MEMBER`` (``issued`` has no
        entry for them). ``quiet``: the channel is in quiet hours, every offer is refused as
        ``QUIET_HOURS`` (nothing was reserved for them).
        """
        if quiet:
            return (), tuple(Excluded(o.offer_id, QUIET_HOURS) for o in decision.offers)
        kept: list[IssuedOffer] = []
        refused: list[Excluded] = []
        results = iter(issued or ())
        for offer in decision.offers:
            reason = None
            coupon = None
            if withheld and offer.requires_coupon:
                reason = UNKNOWN_MEMBER
            elif issued is None:
                reason = self.limited(offer.offer_id)
            elif not (result := next(results)).granted:
                reason = result.cap.reason or "MEMBER_CAP_REACHED"
            else:
                coupon = result.coupon
            if reason is None:
                kept.append(IssuedOffer(offer, len(kept) + 1, coupon))
            else:
                refused.append(Excluded(offer.offer_id, reason))
        return tuple(kept), tuple(refused)

    @staticmethod
    def granted_unreserved(requests: Sequence[tuple[CapRequest, CouponSpec | None]], now: int) -> list[Issued]:
        """Every reservation of a decision as granted without touching the store and without a
        coupon: the decision core already excluded the offers whose caps or budgets the read
        showed reached, so this is what a commit grants unless another request races it."""
        return [Issued(CapResult(request, granted=True, reason=None, issued_at=now)) for request, _ in requests]

