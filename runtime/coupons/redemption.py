"""Redeeming coupons: which events redeem one, the atomic claim, and what a refusal says.

A ``redeem`` event that quotes a ``coupon_code`` (through ``POST /v1/events`` or the
checkout endpoint ``POST /v1/coupons/{code}/redeem``) redeems that coupon. Before the
event is logged or applied, every such event of the request is claimed in one atomic
store call (:meth:`~runtime.stores.Store.redeem_coupons`), all or none: the code must
exist, belong to the event's member and offer, not be expired at the event's time, and
not be redeemed by another event. A retry of the event that redeemed it (same
``event_id``) is not a second use. If the log cannot be written afterwards, the claims
are undone, so a 503 leaves the coupons as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from runtime.coupons.codes import Coupon, normalise
from runtime.errors import OffersRuntimeError
from runtime.events.event import FeedbackEvent
from runtime.stores import (
    CLAIM_OK,
    ClaimResult,
    CouponClaim,
    StoreUnavailable,
)
from runtime.stores.interfaces import CouponStore


@dataclass(frozen=True)
class Refusal:
    """One refused claim: the event's index in the request, why, and the coupon as found."""

    index: int
    status: str
    coupon: Coupon | None


class CouponsRefused(OffersRuntimeError):
    """Some coupons of a request cannot be redeemed; nothing was claimed, logged or applied."""

    def __init__(self, refusals: Sequence[Refusal]):
        super().__init__(f"{len(refusals)} coupon(s) cannot be redeemed")
        self.refusals = tuple(refusals)


def claims_for(events: Sequence[tuple[int, FeedbackEvent]]) -> list[tuple[int, CouponClaim]]:
    """The coupon claims of ``(index, event)`` pairs: every ``redeem`` event with a code."""
    return [(i, CouponClaim(code=normalise(ev.coupon_code), member_id=ev.member_id, offer_id=str(ev.offer_id),
                            at=int(ev.ts.timestamp()), event_id=ev.event_id))
            for i, ev in events if ev.type == "redeem" and ev.coupon_code is not None]


def claim(store: CouponStore, claims: Sequence[tuple[int, CouponClaim]]) -> list[CouponClaim]:
    """Redeem the coupons of ``claims`` at once; the claims newly made (to undo on failure).

    Raises
    ------
    CouponsRefused
        When any claim is refused (then none is made).
    StoreUnavailable
        When the store cannot be reached.
    """
    if not claims:
        return []
    results = store.redeem_coupons([c for _, c in claims])
    refused = [Refusal(i, r.status, _coupon(r)) for (i, _), r in zip(claims, results, strict=True) if not r.ok]
    if refused:
        raise CouponsRefused(refused)
    return [c for (_, c), r in zip(claims, results, strict=True) if r.status == CLAIM_OK]


def undo(store: CouponStore, made: Sequence[CouponClaim]) -> None:
    """Undo claims after a later step failed (best effort: the store may be down too)."""
    with contextlib.suppress(StoreUnavailable):
        store.unredeem_coupons(made)


def _coupon(result: ClaimResult) -> Coupon | None:
    return None if result.record is None else Coupon.from_bytes(result.record)


def rfc3339(epoch: int) -> str:
    """Epoch seconds as RFC 3339 UTC text."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
