"""Issuing offers: reserve caps and budgets atomically, then attach coupon codes.

The decision endpoint calls :func:`issue` with the offers it is about to return. Each
offer's member cap and budget are checked-and-incremented atomically in the store
(:meth:`~service.stores.Store.reserve`); refused offers come back with their reason code
(``MEMBER_CAP_REACHED``, ``BUDGET_EXHAUSTED``) for the response's ``excluded`` list.
Granted offers that need a code get a unique coupon. When the store fails half-way,
every reservation already made is released before the error propagates, so a failed
decision consumes no cap or budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from service.coupons import Coupon, issue_coupon
from service.stores import CapRequest, CapResult, Store, StoreUnavailable


@dataclass(frozen=True)
class CouponSpec:
    """A coupon to attach: campaign prefix and lifetime."""

    ttl_seconds: int
    prefix: str = ""


@dataclass(frozen=True)
class Issued:
    """One offer's outcome: the reservation and, when granted and asked for, its coupon."""

    cap: CapResult
    coupon: Coupon | None = None

    @property
    def granted(self) -> bool:
        return self.cap.granted


def issue(store: Store, member_id: str, offers: Sequence[tuple[CapRequest, CouponSpec | None]],
          now: int, decision_id: str | None = None) -> list[Issued]:
    """Reserve every offer in one atomic store call, then create the coupons of granted ones.

    Raises
    ------
    StoreUnavailable
        When the store fails; nothing stays reserved (best effort when it fails again
        while releasing).
    """
    caps = store.reserve(member_id, [req for req, _ in offers], now)
    out: list[Issued] = []
    try:
        for cap, (_, spec) in zip(caps, offers, strict=True):
            coupon = None
            if cap.granted and spec is not None:
                coupon = issue_coupon(store, member_id, cap.request.offer_id, now,
                                      now + spec.ttl_seconds, spec.prefix, decision_id)
            out.append(Issued(cap=cap, coupon=coupon))
    except (StoreUnavailable, RuntimeError):
        with contextlib.suppress(StoreUnavailable):
            store.release(member_id, caps)
        raise
    return out
