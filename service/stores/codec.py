"""Compact encodings shared by both stores, and the state updates the in-process store runs.

Member state hash fields (values are ASCII integers unless noted)::

    ls               last event of any type, epoch seconds
    lp               last purchase, epoch seconds
    sp               spend in minor units since the state was created
    np               number of purchases since the state was created
    s:YYYYMM         spend in that month (program time zone); the last MONTHS_KEPT months
    p:YYYYMM         purchases in that month
    <code><offer>    counter (codes I C S R D: impression, click, issue, redeem, dismiss):
                     unsigned LEB128 varints: the total, then up to RECENT_LIMIT epoch
                     seconds, the oldest as is and each next as its gap to the previous
                     (:func:`encode_counter`)

Member profile hash fields (all optional but ``fp``)::

    fp               catalog fingerprint the member's history records were written under
    j                joined_at, local program seconds
    sg               segment
    bm               birth month 1-12
    ch               channels opted in to, ``|``-separated ("" = none; absent = unknown)

The history itself is a compressed base plus appended fixed-width records (:mod:`models.features.online`).

Score vectors are one layout byte, then 3-byte log-scale codes of probabilities
(:func:`encode_scores`; 3 bytes per offer) or float32; the order is the one the cache
slot defines (model version, channel and candidate offers), and the hash field is a
digest of the slot (:func:`cache_field`). The Lua scripts in :mod:`.lua` apply the
same updates inside Redis; :func:`apply_event` and :func:`reserve_one` are their
in-process twins, and the shared test suite keeps them in agreement.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import UTC, datetime

import numpy as np

from service.stores.base import (
    BUDGET_EXHAUSTED,
    CODE_SUBJECTS,
    MEMBER_CAP_REACHED,
    MONTHS_KEPT,
    RECENT_LIMIT,
    SUBJECT_CODES,
    BudgetCounter,
    CacheWrite,
    CapRequest,
    CapResult,
    CouponWrite,
    MemberProfile,
    MemberState,
    OfferCounter,
    StateEvent,
    StoredResponse,
)

Fields = MutableMapping[bytes, bytes]


# -- counters ----------------------------------------------------------------
def _varints(values: Sequence[int]) -> bytes:
    """Unsigned LEB128: 7 bits a byte, low bits first, the high bit set on all but the last."""
    out = bytearray()
    for v in values:
        if v < 0:
            raise ValueError(f"counters hold non-negative integers (got {v})")
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def _unvarints(blob: bytes) -> list[int]:
    """The integers :func:`_varints` wrote (an unfinished last one is dropped)."""
    out, value, shift = [], 0, 0
    for byte in blob:
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            out.append(value)
            value, shift = 0, 0
    return out


def encode_counter(total: int, recent: Sequence[int]) -> bytes:
    """Varints: the total, then the oldest kept timestamp, then each next one's gap to it.

    A year-old timestamp takes 5 bytes, gaps of minutes to days 1-3, a total under 128
    one: an impression counter with three timestamps is ~11 bytes instead of 16.
    """
    gaps = [b - a for a, b in zip((0, *recent), recent, strict=False)]
    return _varints([total, *gaps])


def decode_counter(blob: bytes | None) -> OfferCounter:
    """An :class:`OfferCounter` from :func:`encode_counter` bytes (empty: zero)."""
    if not blob:
        return OfferCounter()
    values = _unvarints(blob)
    recent, t = [], 0
    for gap in values[1:]:
        t += gap
        recent.append(t)
    return OfferCounter(total=values[0], recent=tuple(recent))


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


# -- member state --------------------------------------------------------------
def _int(v: bytes | None) -> int | None:
    return int(v) if v is not None else None


def decode_state(member_id: str, fields: Mapping[bytes, bytes]) -> MemberState:
    """A :class:`MemberState` from the raw hash (HGETALL) of a member."""
    monthly_spend: dict[str, int] = {}
    monthly_purchases: dict[str, int] = {}
    counters: dict[tuple[str, str], OfferCounter] = {}
    for raw_name, value in fields.items():
        name = raw_name.decode()
        if name[:1] in CODE_SUBJECTS:
            counters[(CODE_SUBJECTS[name[:1]], name[1:])] = decode_counter(value)
            continue
        head, sep, rest = name.partition(":")
        if head == "s" and sep:
            monthly_spend[rest] = int(value)
        elif head == "p" and sep:
            monthly_purchases[rest] = int(value)
    return MemberState(
        member_id=member_id,
        last_seen=_int(fields.get(b"ls")),
        last_purchase=_int(fields.get(b"lp")),
        spend_minor=int(fields.get(b"sp", b"0")),
        purchases=int(fields.get(b"np", b"0")),
        monthly_spend=monthly_spend,
        monthly_purchases=monthly_purchases,
        counters=counters,
    )


def _incr(fields: Fields, name: bytes, by: int) -> None:
    fields[name] = str(int(fields.get(name, b"0")) + by).encode()


def _max(fields: Fields, name: bytes, ts: int) -> None:
    if ts > int(fields.get(name, b"0")):
        fields[name] = str(ts).encode()


def apply_event(fields: Fields, ev: StateEvent, month_cutoff: str) -> None:
    """Apply one (new) event to a member's hash; the twin of the Lua ``APPLY_EVENTS``."""
    _max(fields, b"ls", ev.ts)
    if ev.type == "transaction":
        _incr(fields, b"sp", ev.amount_minor)
        _incr(fields, b"np", 1)
        _max(fields, b"lp", ev.ts)
        if ev.month >= month_cutoff:
            spend_field = f"s:{ev.month}".encode()
            if spend_field not in fields:
                trim_months(fields, month_cutoff)
            _incr(fields, spend_field, ev.amount_minor)
            _incr(fields, f"p:{ev.month}".encode(), 1)
    elif ev.offer_id:
        name = f"{SUBJECT_CODES[ev.type]}{ev.offer_id}".encode()
        fields[name] = bump_counter(fields.get(name), ev.ts, RECENT_LIMIT)


def month_cutoff(now: float | None = None, months: int = MONTHS_KEPT) -> str:
    """``YYYYMM`` of the oldest month whose spend counters are kept (by the UTC clock;
    a few hours of zone difference do not matter two years back)."""
    d = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    index = d.year * 12 + d.month - 1 - (months - 1)
    return f"{index // 12:04d}{index % 12 + 1:02d}"


def trim_months(fields: Fields, month_cutoff: str) -> None:
    """Drop monthly counters older than ``month_cutoff`` (``YYYYMM``)."""
    for name in [n for n in fields if n[:2] in (b"s:", b"p:") and n[2:].decode() < month_cutoff]:
        del fields[name]


def reserve_one(fields: Fields, budget: BudgetCounter | None, req: CapRequest,
                now: int) -> tuple[bool, str | None, BudgetCounter | None]:
    """Check-and-increment one request against a member hash and its budget's counter.

    ``budget`` is the budget's current consumption (None when the request has no
    budget). Returns (granted, reason, budget after, or as found when the budget
    refused; None when the member cap refused first); the twin of the Lua ``RESERVE``.
    ``fields`` is updated in place when granted.
    """
    name = f"{SUBJECT_CODES['issue']}{req.offer_id}".encode()
    counter = decode_counter(fields.get(name))
    if req.member_limit is not None:
        since = None if req.member_window_seconds is None else now - req.member_window_seconds
        if counter.reached(req.member_limit, since):
            return False, MEMBER_CAP_REACHED, None
    after = budget
    if req.budget_key is not None:
        current = budget or BudgetCounter()
        if ((req.budget_count_limit is not None and current.count + 1 > req.budget_count_limit)
                or (req.budget_minor_limit is not None
                    and current.minor + req.charge_minor > req.budget_minor_limit)):
            return False, BUDGET_EXHAUSTED, current
        after = BudgetCounter(current.count + 1, current.minor + req.charge_minor)
    fields[name] = bump_counter(fields.get(name), now, RECENT_LIMIT)
    if req.count_impression:
        imp = f"{SUBJECT_CODES['impression']}{req.offer_id}".encode()
        fields[imp] = bump_counter(fields.get(imp), now, RECENT_LIMIT)
    return True, None, after


def release_one(fields: Fields, req: CapRequest, issued_at: int) -> None:
    """Undo a granted reservation's member counters; the twin of the Lua ``RELEASE``."""
    subjects = ("issue", "impression") if req.count_impression else ("issue",)
    for subject in subjects:
        name = f"{SUBJECT_CODES[subject]}{req.offer_id}".encode()
        blob = unbump_counter(fields.get(name), issued_at)
        if blob is None:
            fields.pop(name, None)
        else:
            fields[name] = blob


# -- member profile and history -------------------------------------------------
def encode_profile(profile: MemberProfile) -> dict[bytes, bytes]:
    """The profile hash fields of a :class:`MemberProfile` (absent values are left out)."""
    fields = {b"fp": profile.fingerprint.encode()}
    if profile.joined_at is not None:
        fields[b"j"] = str(int(profile.joined_at)).encode()
    if profile.segment is not None:
        fields[b"sg"] = profile.segment.encode()
    if profile.birth_month is not None:
        fields[b"bm"] = str(int(profile.birth_month)).encode()
    if profile.channels is not None:
        fields[b"ch"] = "|".join(profile.channels).encode()
    return fields


def decode_profile(fields: Mapping[bytes, bytes] | None) -> MemberProfile | None:
    """A :class:`MemberProfile` from the raw profile hash, None when it does not exist."""
    if not fields or b"fp" not in fields:
        return None
    channels = fields.get(b"ch")
    return MemberProfile(
        fingerprint=fields[b"fp"].decode(),
        joined_at=_int(fields.get(b"j")),
        segment=fields[b"sg"].decode() if b"sg" in fields else None,
        birth_month=_int(fields.get(b"bm")),
        channels=None if channels is None else tuple(c for c in channels.decode().split("|") if c),
    )


def append_allowed(profile_fields: Mapping[bytes, bytes] | None, fingerprint: str) -> bool:
    """Whether an event's record may be appended: the member's records are under the same
    catalog fingerprint, or the member has no profile yet (the twin of the Lua check)."""
    current = (profile_fields or {}).get(b"fp")
    return current is None or current.decode() == fingerprint


def commit_one(fields: Fields, budget: BudgetCounter | None, req: CapRequest, now: int,
               coupon: CouponWrite | None, coupon_taken: bool) -> tuple[CapResult, bool]:
    """One request of a decision's commit: reserve, then whether its coupon may be stored.

    ``coupon_taken`` tells whether the coupon's code already exists; the twin of the Lua
    ``COMMIT``. Returns the reservation and whether the coupon is to be stored.
    """
    granted, reason, after = reserve_one(fields, budget, req, now)
    result = CapResult(request=req, granted=granted, reason=reason, issued_at=now, budget=after)
    return result, granted and coupon is not None and not coupon_taken


def cache_allowed(cache: CacheWrite | None, history: bytes | None) -> bool:
    """Whether a decision's scores may be cached: the history they read is unchanged."""
    return cache is not None and len(history or b"") == cache.history_length


# -- score vectors -------------------------------------------------------------
#: Score vector layouts (first byte): log-scale 24-bit codes for probabilities, float32 otherwise.
SCORES_LOG24, SCORES_FLOAT32 = b"L", b"F"
#: Smallest probability the log scale resolves; smaller ones are stored as 0 or as this.
LOG_FLOOR = 1e-7
_LOG_TOP = (1 << 24) - 1  # the code of probability 1
_LOG_STEP = float(np.log(1 / LOG_FLOOR)) / (_LOG_TOP - 1)  # codes 1.._LOG_TOP span [LOG_FLOOR, 1]
#: Largest relative error of a probability >= LOG_FLOOR after a round trip: half a step,
#: plus the float32 rounding of the decoded value (5.4e-7 in all).
LOG_MAX_RELATIVE_ERROR = float(np.expm1(_LOG_STEP / 2)) + 2.0**-24


def encode_scores(scores: Sequence[float] | np.ndarray) -> bytes:
    """A score vector as bytes: probabilities as 3-byte log-scale codes, anything else as float32.

    Probabilities (every value finite and in [0, 1]): code 0 is 0, code k >= 1 is
    ``exp((k - 2**24 + 1) * step)`` with 2**24 - 2 steps from :data:`LOG_FLOOR` (1e-7) to 1,
    so every probability >= 1e-7 comes back within :data:`LOG_MAX_RELATIVE_ERROR` (5.4e-7,
    a few float32 ulps) of itself, 0 and 1 exactly, values below 1e-7 within 1e-7
    absolute, and the order of values is kept (the scale is monotone). 3 bytes per offer
    instead of 4; a uint16 code would halve it but errs by 1.2e-4 relative, enough to tie
    offers whose propensities the model tells apart. Other vectors keep float32 exactly.
    """
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"a score vector is one-dimensional (got shape {arr.shape})")
    if not (np.all(np.isfinite(arr)) and np.all((arr >= 0) & (arr <= 1))):
        return SCORES_FLOAT32 + arr.astype("<f4").tobytes()
    p = arr.astype(np.float32).astype(np.float64)  # what the float32 vector held
    codes = np.zeros(len(p), dtype="<u4")
    positive = p > LOG_FLOOR / 2
    if positive.any():
        steps = np.log(np.maximum(p[positive], LOG_FLOOR)) / _LOG_STEP
        codes[positive] = np.clip(np.rint(steps) + _LOG_TOP, 1, _LOG_TOP).astype("<u4")
    return SCORES_LOG24 + codes.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def decode_scores(blob: bytes | None) -> np.ndarray | None:
    """A float32 array from :func:`encode_scores` bytes, or None (absent, or a layout not known)."""
    if not blob:
        return None
    head, body = blob[:1], blob[1:]
    if head == SCORES_FLOAT32 and len(body) % 4 == 0:
        return np.frombuffer(body, dtype="<f4")
    if head == SCORES_LOG24 and len(body) % 3 == 0:
        wide = np.zeros((len(body) // 3, 4), dtype=np.uint8)
        wide[:, :3] = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        codes = wide.view("<u4")[:, 0]
        out = np.exp((codes.astype(np.float64) - _LOG_TOP) * _LOG_STEP).astype(np.float32)
        out[codes == 0] = 0
        return out
    return None


def cache_field(slot: str) -> bytes:
    """The score-cache hash field of a cache slot: a 12-byte digest instead of the ~50-byte
    slot text (model version, channel, candidate digest), kept apart by 96 bits."""
    return hashlib.blake2b(slot.encode(), digest_size=12).digest()


# -- idempotency records ----------------------------------------------------------
def encode_response(r: StoredResponse) -> bytes:
    """A header line of JSON, then the raw body bytes."""
    head = json.dumps({"h": r.request_hash, "s": r.status, "t": r.content_type},
                      separators=(",", ":")).encode()
    return head + b"\n" + r.body


def decode_response(blob: bytes) -> StoredResponse:
    head, _, body = blob.partition(b"\n")
    meta = json.loads(head)
    return StoredResponse(request_hash=meta["h"], status=meta["s"], body=body,
                          content_type=meta["t"])
