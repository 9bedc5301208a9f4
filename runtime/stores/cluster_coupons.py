"""Coupon redemptions on a Redis Cluster when one call's claims live in several slots.

A coupon record sits in its holder's slot (the code's marker: :mod:`runtime.stores.slots`),
beside the holder's wallet, so one member's claims are one ``REDEEM`` script, as on a single
Redis. A call can still span slots:

* an event batch with redemptions by several members;
* a claim by a member who is not the coupon's holder (the member's wallet is elsewhere), which
  can never succeed.

Such a call keeps the single-Redis contract (all claims made, or none) in three steps:

1. **Check** - every claim's record is read (one pipelined ``GET`` per record) and checked with
   the script's own rule (:func:`runtime.stores.coupon_records.check_claim`), writing nothing.
   If any claim is refused, those statuses are the answer and nothing is written: the common
   case of a wrong member or an unknown code costs one read.
2. **Redeem per slot** - otherwise each slot's claims are one atomic ``REDEEM`` call, slot after
   slot.
3. **Undo** - if a later slot refuses (another request redeemed a code between steps 1 and 2),
   the slots already redeemed are undone with ``UNREDEEM`` and the refusal is the answer.

Between steps 2 and 3 an earlier slot's coupons are briefly marked redeemed, so a concurrent
redemption of one of those codes may be refused although the first call ends with none made;
a code is never redeemed twice, because each marking happens inside one atomic script.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from redis.crc import key_slot

from runtime.stores import coupon_records
from runtime.stores.values import CLAIM_AGAIN, CLAIM_OK, ClaimResult, CouponClaim

#: (claims of one slot) -> their results, through one atomic REDEEM script
RedeemSlot = Callable[[Sequence[CouponClaim]], list[ClaimResult]]
#: claims of one slot -> undone through one UNREDEEM script
UnredeemSlot = Callable[[Sequence[CouponClaim]], None]


def slots_of(claims: Sequence[CouponClaim], keys: Callable[[CouponClaim], Sequence[str]]) -> dict[int, list[int]]:
    """Slot -> indices of the claims whose keys (``keys(claim)``: record and wallet) are in it;
    a claim whose keys span two slots gets slot -1 (it cannot be one script)."""
    out: dict[int, list[int]] = {}
    for i, c in enumerate(claims):
        slots = {int(key_slot(k.encode())) for k in keys(c)}
        out.setdefault(slots.pop() if len(slots) == 1 else -1, []).append(i)
    return out


def redeem_across_slots(claims: Sequence[CouponClaim], records: Sequence[bytes | None],
                        groups: dict[int, list[int]], redeem: RedeemSlot, unredeem: UnredeemSlot) -> list[ClaimResult]:
    """The three steps of the module docstring: ``records`` are the claims' records just read
    (step 1), ``groups`` the claims by slot (:func:`slots_of`)."""
    claimed: dict[str, tuple[str, int]] = {}
    statuses = [coupon_records.check_claim(r, c, claimed) for r, c in zip(records, claims, strict=True)]
    checked = [ClaimResult(s, None if r is None else bytes(r)) for s, r in zip(statuses, records, strict=True)]
    if any(s not in (CLAIM_OK, CLAIM_AGAIN) for s in statuses) or -1 in groups:
        return checked  # refused (a claim spanning two slots is one by another member): nothing written
    out = list(checked)
    done: list[list[int]] = []
    for idx in groups.values():
        results = redeem([claims[i] for i in idx])
        for i, r in zip(idx, results, strict=True):
            out[i] = r
        if not all(r.ok for r in results):
            for made in done:
                unredeem([claims[i] for i in made if out[i].status == CLAIM_OK])
            return out
        done.append(idx)
    return out
