"""The Lua scripts' rules in Python, for the in-process store: the same updates, the same bytes.

:class:`~runtime.stores.memory.MemoryStore` has no Redis to run :mod:`.rules_lua` in, so
it applies these functions to its dict-backed hashes instead. Each one mirrors a part of
a Lua script, field for field and encoding for encoding (:mod:`.encoding`):

* :func:`apply_event` (with :func:`bump`, :func:`trim_months`, :func:`month_cutoff`) -
  the ``APPLY_EVENTS`` script: de-duplicated events update recency, spend, months and
  per-offer counters;
* :func:`cap_reached`, :func:`reserve_one`, :func:`release_one` - ``RESERVE`` and
  ``RELEASE``: member caps in their windows, checked then counted (budgets are
  :mod:`.budget_rules`', reserved first by :mod:`.two_phase`);
* :func:`commit_one`, :func:`cache_allowed`, :func:`append_allowed` - ``COMMIT``: a
  decision's contact caps (:mod:`.contact_rules`), member caps, coupons and score cache
  in one atomic step, and the fingerprint check before history records are appended.

``tests/test_service_stores.py`` runs one behavioural suite against both stores, which
keeps the two copies in agreement; change them together.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime

from runtime.stores.contact_rules import ContactTally
from runtime.stores.encoding import (
    Fields,
    decode_counter,
    decode_month,
    encode_counter,
    encode_month,
    get_counter,
    put_counter,
)
from runtime.stores.values import (
    CONTACT_CAPPED,
    MEMBER_CAP_REACHED,
    MONTHS_KEPT,
    RECENT_LIMIT,
    SUBJECT_CODES,
    CacheWrite,
    CapRequest,
    CapResult,
    CouponWrite,
    StateEvent,
)


def bump_counter(blob: bytes | None, ts: int, limit: int) -> bytes:
    """Count one more occurrence at ``ts``, keeping the newest ``limit`` timestamps."""
    c = decode_counter(blob)
    recent = sorted((*c.recent, ts))[-limit:]
    return encode_counter(c.total + 1, recent)


def unbump_counter(blob: bytes | None, ts: int) -> bytes | None:
    """Undo one occurrence at ``ts``; None when nothing is left to keep."""
    c = decode_counter(blob)
    recent = list(c.recent)
    if ts in recent:
        recent.remove(ts)
    total = max(c.total - 1, 0)
    return encode_counter(total, recent) if total or recent else None


def _incr(fields: Fields, name: bytes, by: int) -> None:
    fields[name] = str(int(fields.get(name, b"0")) + by).encode()


def _max(fields: Fields, name: bytes, ts: int) -> None:
    if ts > int(fields.get(name, b"0")):
        fields[name] = str(ts).encode()


def bump(fields: Fields, subject: str, offer_id: str, ts: int) -> None:
    """Count one occurrence of ``subject`` (impression, click, ...) of ``offer_id`` at ``ts``."""
    code = SUBJECT_CODES[subject]
    put_counter(fields, code, offer_id, bump_counter(get_counter(fields, code, offer_id), ts, RECENT_LIMIT))


def apply_event(fields: Fields, ev: StateEvent, month_cutoff: str) -> None:
    """Apply one (new) event to a member's hash; the twin of the Lua ``APPLY_EVENTS``."""
    _max(fields, b"ls", ev.ts)
    if ev.type == "transaction":
        _incr(fields, b"sp", ev.amount_minor)
        _incr(fields, b"np", 1)
        _max(fields, b"lp", ev.ts)
        if ev.month >= month_cutoff:
            name = f"m{ev.month}".encode()
            if name not in fields:
                trim_months(fields, month_cutoff)
            spend, purchases = decode_month(fields.get(name))
            fields[name] = encode_month(spend + ev.amount_minor, purchases + 1)
    elif ev.offer_id:
        bump(fields, ev.type, ev.offer_id, ev.ts)


def month_cutoff(now: float | None = None, months: int = MONTHS_KEPT) -> str:
    """``YYYYMM`` of the oldest month whose spend counters are kept (by the UTC clock;
    a few hours of zone difference do not matter two years back)."""
    d = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    index = d.year * 12 + d.month - 1 - (months - 1)
    return f"{index // 12:04d}{index % 12 + 1:02d}"


def trim_months(fields: Fields, month_cutoff: str) -> None:
    """Drop month fields older than ``month_cutoff`` (``YYYYMM``), the previous layout's too."""
    old = [n for n in fields
           if (n[:1] == b"m" and n[1:].decode() < month_cutoff)
           or (n[:2] in (b"s:", b"p:") and n[2:].decode() < month_cutoff)]
    for name in old:
        del fields[name]


def cap_reached(fields: Mapping[bytes, bytes], req: CapRequest, now: int) -> bool:
    """Whether the member's issue cap of the request's offer is reached (the Lua ``cap_reached``)."""
    if req.member_limit is None:
        return False
    counter = decode_counter(get_counter(fields, SUBJECT_CODES["issue"], req.offer_id))
    since = None if req.member_window_seconds is None else now - req.member_window_seconds
    return counter.reached(req.member_limit, since)


def reserve_one(fields: Fields, req: CapRequest, now: int) -> tuple[bool, str | None]:
    """Check-and-increment one request's member issue cap in a member hash (the Lua ``reserve_one``).

    Returns (granted, reason); ``fields`` is updated in place when granted. Budgets are
    reserved apart, in their own slot (:mod:`.budget_rules`, :mod:`.two_phase`).
    """
    if cap_reached(fields, req, now):
        return False, MEMBER_CAP_REACHED
    bump(fields, "issue", req.offer_id, now)
    if req.count_impression:
        bump(fields, "impression", req.offer_id, now)
    return True, None


def release_one(fields: Fields, req: CapRequest, issued_at: int) -> None:
    """Undo a granted reservation's member counters; the twin of the Lua ``RELEASE``."""
    subjects = ("issue", "impression") if req.count_impression else ("issue",)
    for subject in subjects:
        code = SUBJECT_CODES[subject]
        put_counter(fields, code, req.offer_id,
                    unbump_counter(get_counter(fields, code, req.offer_id), issued_at))


def append_allowed(profile_fields: Mapping[bytes, bytes] | None, fingerprint: str) -> bool:
    """Whether an event's record may be appended: the member's records are under the same
    catalog fingerprint, or the member has no profile yet (the twin of the Lua check)."""
    current = (profile_fields or {}).get(b"fp")
    return current is None or current.decode() == fingerprint


def commit_one(fields: Fields, req: CapRequest, now: int, coupon: CouponWrite | None,
               coupon_taken: bool, contact: ContactTally) -> tuple[CapResult, bool]:
    """One request of a decision's member-side commit: the contact caps, then the member cap,
    then whether its coupon may be stored (the twin of the Lua ``COMMIT``).

    ``coupon_taken`` tells whether the coupon's code already exists. A granted request is
    counted into ``contact``. Returns the reservation and whether the coupon is to be stored.
    """
    if contact.refused():
        return CapResult(request=req, granted=False, reason=CONTACT_CAPPED, issued_at=now), False
    granted, reason = reserve_one(fields, req, now)
    if granted:
        contact.count()
    result = CapResult(request=req, granted=granted, reason=reason, issued_at=now)
    return result, granted and coupon is not None and not coupon_taken


def cache_allowed(cache: CacheWrite | None, history: bytes | None) -> bool:
    """Whether a decision's scores may be cached: the history they read is unchanged."""
    return cache is not None and len(history or b"") == cache.history_length


