"""Issuing offers: reserve caps and budgets atomically, then attach coupon codes.

Two entry points:

* :func:`commit` (the decision endpoints) does a decision's whole write in one atomic
  store round trip: reservations, the coupons of granted offers (codes drawn before the
  call, stored with SET NX) and the score cache (:class:`~runtime.stores.CacheWrite`).
  A code that collides with an existing one (at 60 random bits, practically never) is
  drawn again with :func:`~runtime.coupons.codes.issue_coupon`. A member who still holds a
  live, unredeemed code for an offer gets that code again, and nothing is reserved for it
  (the same script checks the member's wallet). :func:`commit_many` does the
  same for a batch of members in one pipeline.
* :func:`issue` reserves first, then stores each coupon (one call per coupon).

The decision endpoint calls :func:`commit` with the offers it is about to return. Each
offer's member cap and budget are checked-and-incremented atomically in the store
(:meth:`~runtime.stores.Store.reserve`); refused offers come back with their reason code
(``MEMBER_CAP_REACHED``, ``BUDGET_EXHAUSTED``, ``BUDGET_PACED``, ``CONTACT_CAPPED``) for the
response's ``excluded`` list.
Granted offers that need a code get a unique coupon. When the store fails half-way,
every reservation already made is released before the error propagates, so a failed
decision consumes no cap or budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.coupons.codes import Coupon, display, generate, issue_coupon
from runtime.stores import (
    CacheWrite,
    CapRequest,
    CapResult,
    CommitResult,
    ContactLimit,
    CouponWrite,
    Store,
    StoreUnavailable,
)

Offers = Sequence[tuple[CapRequest, "CouponSpec | None"]]


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


def _draw(store: Store, member_id: str, request: CapRequest, spec: CouponSpec | None, now: int,
          decision_id: str | None) -> tuple[Coupon | None, CouponWrite | None]:
    """A new coupon for the offer (None without a coupon spec), its code marked with the
    holder's slot when the store is a cluster, and its record to write."""
    if spec is None:
        return None, None
    code = generate(spec.prefix, marker=store.keys.code_marker(member_id))
    coupon = Coupon(code=code, display=display(code, spec.prefix), member_id=member_id,
                    offer_id=request.offer_id, issued_at=now, expires_at=now + spec.ttl_seconds,
                    decision_id=decision_id)
    return coupon, CouponWrite(code, coupon.to_bytes(), spec.ttl_seconds)


def _finish(store: Store, member_id: str, offers: Offers, result: CommitResult,
            drawn: Sequence[Coupon | None], now: int, decision_id: str | None) -> list[Issued]:
    """Pair reservations with their coupons: the drawn one, the member's held one handed out
    again, or (for the rare codes that collided) one drawn again."""
    out = []
    caps = result.caps
    reused = result.coupons_reused or [None] * len(caps)
    try:
        for (req, spec), cap, ok, again, coupon in zip(offers, caps, result.coupons_stored, reused, drawn,
                                                        strict=True):
            if again is not None:
                coupon = Coupon.from_bytes(again)
            elif cap.granted and spec is not None and not ok:
                coupon = issue_coupon(store, member_id, req.offer_id, now, now + spec.ttl_seconds,
                                      spec.prefix, decision_id)
            out.append(Issued(cap=cap, coupon=coupon if cap.granted and spec is not None else None))
    except (StoreUnavailable, RuntimeError):
        with contextlib.suppress(StoreUnavailable):
            store.release(member_id, caps)
        raise
    return out


def commit(store: Store, member_id: str, offers: Offers, now: int, decision_id: str | None = None,
           cache: CacheWrite | None = None, contact: Sequence[ContactLimit] = ()) -> tuple[list[Issued], bool]:
    """Reserve (budgets, then member and ``contact`` caps: :mod:`runtime.stores.two_phase`),
    issue coupons and cache scores; one round trip without budgets.

    Returns the outcome per offer and whether the scores were cached.

    Raises
    ------
    StoreUnavailable
        When the store fails (nothing is reserved then, best effort).
    """
    drawn = [_draw(store, member_id, req, spec, now, decision_id) for req, spec in offers]
    result = store.commit_decision(member_id, [req for req, _ in offers], [w for _, w in drawn], now, cache,
                                   contact)
    issued = _finish(store, member_id, offers, result, [c for c, _ in drawn], now, decision_id)
    return issued, result.cache_written


def commit_many(store: Store, commits: Sequence[tuple[str, Offers, str | None, CacheWrite | None]],
                now: int, contact: Sequence[ContactLimit] = ()) -> list[list[Issued]]:
    """:func:`commit` for many members ``(member_id, offers, decision_id, cache)`` deciding on one
    channel (``contact``: its caps), one pipeline for the member steps."""
    drawn = [[_draw(store, m, req, spec, now, d) for req, spec in offers] for m, offers, d, _ in commits]
    results = store.commit_many([(m, [req for req, _ in offers], [w for _, w in dr], cache)
                                 for (m, offers, _, cache), dr in zip(commits, drawn, strict=True)], now,
                                [contact] * len(commits))
    return [_finish(store, m, offers, r, [c for c, _ in dr], now, d)
            for (m, offers, d, _), r, dr in zip(commits, results, drawn, strict=True)]
