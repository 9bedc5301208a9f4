"""Refused coupon redemptions as HTTP problems (the runtime's :class:`CouponsRefused`).

The runtime (:mod:`runtime.coupons.redemption`) decides whether coupons can be claimed;
this module says what the HTTP answer is: which field each refusal is about, and whether
the request gets 404, 409 or 422.
"""

from __future__ import annotations

from collections.abc import Callable

from runtime.coupons.redemption import CouponsRefused, Refusal, rfc3339
from runtime.stores import CLAIM_EXPIRED, CLAIM_MEMBER, CLAIM_MISSING, CLAIM_OFFER, CLAIM_REDEEMED
from service.errors import (
    CouponAlreadyRedeemed,
    CouponExpired,
    FieldError,
    NotFound,
    ServiceError,
    ValidationFailed,
)


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
