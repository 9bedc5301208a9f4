"""Redeeming coupons: which events redeem one, the atomic claim, and what a refusal says.

A ``redeem`` event that quotes a ``coupon_code`` (through ``POST /v1/events`` or the
checkout endpoint ``POST /v1/coupons/{code}/redeem``) redeems that coupon. Before the
event is logged or applied, every such event of the request is claimed in one atomic
store call (:meth:`~service.stores.Store.redeem_coupons`), all or none: the code must
exist, belong to the event's member and offer, not be expired at the event's time, and
not be redeemed by another event. A retry of the event that redeemed it (same
``event_id``) is not a second use. If the log cannot be written afterwards, the claims
are undone, so a 503 leaves the coupons as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from service.coupons import Coupon, normalise
from service.errors import (
    CouponAlreadyRedeemed,
    CouponExpired,
    FieldError,
    NotFound,
    ServiceError,
    ValidationFailed,
)
from service.events.schema import Event
from service.stores import (
    CLAIM_EXPIRED,
    CLAIM_MEMBER,
    CLAIM_MISSING,
    CLAIM_OFFER,
    CLAIM_OK,
    CLAIM_REDEEMED,
    ClaimResult,
    CouponClaim,
    Store,
    StoreUnavailable,
)


@dataclass(frozen=True)
class Refusal:
    """One refused claim: the event's index in the request, why, and the coupon as found."""

    index: int
    status: str
    coupon: Coupon | None


class CouponsRefused(Exception):
    """Some coupons of a request cannot be redeemed; nothing was claimed, logged or applied."""

    def __init__(self, refusals: Sequence[Refusal]):
        super().__init__(f"{len(refusals)} coupon(s) cannot be redeemed")
        self.refusals = tuple(refusals)


def claims_for(events: Sequence[tuple[int, Event]]) -> list[tuple[int, CouponClaim]]:
    """The coupon claims of ``(index, event)`` pairs: every ``redeem`` event with a code."""
    return [(i, CouponClaim(code=normalise(ev.coupon_code), member_id=ev.member_id, offer_id=str(ev.offer_id),
                            at=int(ev.ts.timestamp()), event_id=ev.event_id))
            for i, ev in events if ev.type == "redeem" and ev.coupon_code is not None]


def claim(store: Store, claims: Sequence[tuple[int, CouponClaim]]) -> list[CouponClaim]:
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


def undo(store: Store, made: Sequence[CouponClaim]) -> None:
    """Undo claims after a later step failed (best effort: the store may be down too)."""
    with contextlib.suppress(StoreUnavailable):
        store.unredeem_coupons(made)


def _coupon(result: ClaimResult) -> Coupon | None:
    return None if result.record is None else Coupon.from_bytes(result.record)


def rfc3339(epoch: int) -> str:
    """Epoch seconds as RFC 3339 UTC text."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _message(r: Refusal) -> tuple[str, str, str]:
    """(field the refusal is about, code, sentence) for one refusal."""
    c = r.coupon
    if r.status == CLAIM_MEMBER:
        return "member_id", "coupon_member_mismatch", "this coupon was issued to another member"
    if r.status == CLAIM_OFFER:
        return "offer_id", "coupon_offer_mismatch", f"this coupon is for offer {c.offer_id if c else '?'}"
    if r.status == CLAIM_EXPIRED and c is not None:
        return "coupon_code", "coupon_expired", f"the coupon expired at {rfc3339(c.expires_at)}"
    if r.status == CLAIM_REDEEMED:
        if c is not None and c.redeemed_at is not None:
            return "coupon_code", "coupon_already_redeemed", \
                f"the coupon was already redeemed at {rfc3339(c.redeemed_at)}"
        return "coupon_code", "coupon_already_redeemed", "another event of this request redeems this coupon"
    return "coupon_code", "coupon_not_found", "no coupon has this code (or it expired)"


def problem(refused: CouponsRefused, error_for: Callable[[int, str, str, str], FieldError],
            missing_is_not_found: bool = False) -> ServiceError:
    """The problem to answer for refused coupons.

    ``error_for(index, field, code, message)`` places one refusal in the request (a body
    pointer or a parameter). A mismatch or an unknown code is 422 (404 for an unknown
    code with ``missing_is_not_found``: the checkout endpoint names the code in its path);
    otherwise an already redeemed coupon is 409 ``coupon-already-redeemed`` with
    ``redeemed_at`` (the first redemption's time), and an expired one 409 ``coupon-expired``.
    """
    rs = refused.refusals
    errors = [error_for(r.index, *_message(r)) for r in rs]
    statuses = {r.status for r in rs}
    if missing_is_not_found and statuses == {CLAIM_MISSING}:
        return NotFound("no coupon has this code (or it expired)", errors)
    if statuses & {CLAIM_MEMBER, CLAIM_OFFER, CLAIM_MISSING}:
        return ValidationFailed("some coupons do not match their redemption", errors)
    if CLAIM_REDEEMED not in statuses:
        return CouponExpired("the coupon expired before this redemption", errors)
    times = [r.coupon.redeemed_at for r in rs
             if r.status == CLAIM_REDEEMED and r.coupon is not None and r.coupon.redeemed_at is not None]
    if not times:
        return CouponAlreadyRedeemed("a coupon is redeemed twice in this request", errors)
    first = times[0]
    err = CouponAlreadyRedeemed(f"the coupon was already redeemed at {rfc3339(first)}", errors)
    err.extensions["redeemed_at"] = rfc3339(first)
    return err
