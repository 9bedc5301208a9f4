"""Coupon records as the stores keep them, and the checks a redemption makes.

A coupon record is the JSON object :class:`runtime.coupons.codes.Coupon` writes (``code``,
``member_id``, ``offer_id``, ``issued_at``, ``expires_at``, ...); a redeemed one also has
``redeemed_at`` (epoch s) and ``redeemed_event_id``. The functions here are the in-process
twins of the Lua ``COMMIT`` (handing a held coupon out again) and ``REDEEM``/``UNREDEEM``
scripts in :mod:`.lua`; the shared store suite keeps them in agreement.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from runtime.stores.values import (
    CLAIM_AGAIN,
    CLAIM_EXPIRED,
    CLAIM_MEMBER,
    CLAIM_MISSING,
    CLAIM_OFFER,
    CLAIM_OK,
    CLAIM_REDEEMED,
    CouponClaim,
)


def _load(record: bytes) -> dict[str, Any]:
    """The record's fields (a dict), whatever produced the JSON (Python or Lua's cjson)."""
    value = json.loads(record)
    if not isinstance(value, dict):
        raise ValueError("a coupon record is a JSON object")
    return value


def _dump(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


def live_unredeemed(record: bytes | None, now: int) -> bool:
    """Whether a held coupon may be handed out again at ``now``: unredeemed and unexpired."""
    if record is None:
        return False
    fields = _load(record)
    return fields.get("redeemed_event_id") is None and int(fields["expires_at"]) > now


def check_claim(record: bytes | None, claim: CouponClaim,
                claimed: MutableMapping[str, tuple[str, int]]) -> str:
    """The status of one claim against the record (see :meth:`Store.redeem_coupons`).

    ``claimed`` maps codes already claimed earlier in the same call to (event id, time):
    a second claim of a code by another event is refused as redeemed.
    """
    if record is None:
        return CLAIM_MISSING
    fields = _load(record)
    if fields.get("member_id") != claim.member_id:
        return CLAIM_MEMBER
    if fields.get("offer_id") != claim.offer_id:
        return CLAIM_OFFER
    by = fields.get("redeemed_event_id")
    if by is not None:
        return CLAIM_AGAIN if by == claim.event_id else CLAIM_REDEEMED
    earlier = claimed.get(claim.code)
    if earlier is not None and earlier[0] != claim.event_id:
        return CLAIM_REDEEMED
    if claim.at >= int(fields["expires_at"]):
        return CLAIM_EXPIRED
    claimed[claim.code] = (claim.event_id, claim.at)
    return CLAIM_OK


def redeemed(record: bytes, claim: CouponClaim) -> bytes:
    """The record marked redeemed by the claim."""
    fields = _load(record)
    fields["redeemed_at"] = claim.at
    fields["redeemed_event_id"] = claim.event_id
    return _dump(fields)


def unredeemed(record: bytes, event_id: str) -> bytes | None:
    """The record without the redemption ``event_id`` made; None when that event did not
    redeem it (nothing to undo)."""
    fields = _load(record)
    if fields.get("redeemed_event_id") != event_id:
        return None
    fields.pop("redeemed_at", None)
    fields.pop("redeemed_event_id", None)
    return _dump(fields)


def redemption_time(record: bytes | None) -> int | None:
    """When the coupon was redeemed (epoch s), None when it is not (or unknown)."""
    if record is None:
        return None
    at = _load(record).get("redeemed_at")
    return None if at is None else int(at)


def offer_of(record: bytes) -> str:
    """The offer a coupon record is for."""
    return str(_load(record)["offer_id"])

