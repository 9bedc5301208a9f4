"""Compact encodings shared by both stores, and the state updates the in-process store runs.

Member state hash fields (values are ASCII integers unless noted)::

    ls               last event of any type, epoch seconds
    lp               last purchase, epoch seconds
    sp               spend in minor units since the state was created
    np               number of purchases since the state was created
    mYYYYMM          one month (program time zone; the last MONTHS_KEPT months): unsigned
                     LEB128 varints of the zigzag-coded spend in minor units, then the
                     number of purchases (:func:`encode_month`)
    o<offer>         all counters of one offer (:func:`join_offer`): per subject, in the
                     order I C S R D (impression, click, issue, redeem, dismiss), a tag byte
                     16 * subject index + number of varints, then the counter
                     (:func:`encode_counter`: unsigned LEB128 varints, the total, then up to
                     RECENT_LIMIT epoch seconds, the oldest as is and each next as its gap
                     to the previous)
    <code><offer>    one counter (codes I C S R D) that did not fit: a subject whose record
                     would make ``o<offer>`` longer than OFFER_VALUE_MAX bytes (so the hash
                     stays a listpack) is kept alone in the counter encoding; also where the
                     previous layout kept every counter, so its data reads on
    s:YYYYMM, p:YYYYMM  spend and purchases of a month in the previous layout: read (added
                     to the month's) and trimmed, never written

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

from runtime.stores.base import (
    BUDGET_EXHAUSTED,
    CODE_SUBJECTS,
    MEMBER_CAP_REACHED,
    MONTHS_KEPT,
    OFFER_VALUE_MAX,
    RECENT_LIMIT,
    SUBJECT_CODES,
    SUBJECT_ORDER,
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


def split_offer(blob: bytes | None) -> dict[str, bytes]:
    """Subject code -> counter bytes of an ``o<offer>`` value (:func:`join_offer`)."""
    out: dict[str, bytes] = {}
    pos = 0
    data = blob or b""
    while pos < len(data):
        tag = data[pos]
        start = pos = pos + 1
        left = tag % 16
        while left and pos < len(data):
            if data[pos] < 0x80:
                left -= 1
            pos += 1
        out[SUBJECT_ORDER[tag // 16]] = data[start:pos]
    return out


def join_offer(parts: Mapping[str, bytes]) -> bytes:
    """One offer's counters in one value: per subject present, in :data:`SUBJECT_ORDER`, a tag
    byte (16 * index + number of varints, at most 1 + RECENT_LIMIT) and the counter bytes.

    One field per offer instead of one per (subject, offer) saves a field name (the offer
    id again) and the listpack entry headers for every subject after the first."""
    out = bytearray()
    for i, code in enumerate(SUBJECT_ORDER):
        blob = parts.get(code)
        if blob is not None:
            out.append(16 * i + sum(1 for b in blob if b < 0x80))
            out += blob
    return bytes(out)


def get_counter(fields: Mapping[bytes, bytes], code: str, offer_id: str) -> bytes | None:
    """The counter bytes of (subject code, offer): in ``o<offer>``, else in its own field."""
    found = split_offer(fields.get(f"o{offer_id}".encode())).get(code)
    return found if found is not None else fields.get(f"{code}{offer_id}".encode())


def put_counter(fields: Fields, code: str, offer_id: str, blob: bytes | None) -> None:
    """Store (or, with None, drop) the counter of (subject code, offer).

    It goes into ``o<offer>`` while that value stays within :data:`OFFER_VALUE_MAX` bytes
    (so the hash keeps its listpack encoding), else into its own field ``<code><offer>``;
    the other place is cleared. The Lua ``put`` makes the same choice."""
    name, alone = f"o{offer_id}".encode(), f"{code}{offer_id}".encode()
    parts = split_offer(fields.get(name))
    parts.pop(code, None)
    spilled = None
    if blob is not None:
        if len(join_offer({**parts, code: blob})) <= OFFER_VALUE_MAX:
            parts[code] = blob
        else:
            spilled = blob
    joined = join_offer(parts)
    if joined:
        fields[name] = joined
    else:
        fields.pop(name, None)
    if spilled is not None:
        fields[alone] = spilled
    else:
        fields.pop(alone, None)


def _zigzag(n: int) -> int:
    return n << 1 if n >= 0 else ((-n) << 1) - 1


def _unzigzag(z: int) -> int:
    return z >> 1 if z % 2 == 0 else -((z + 1) >> 1)


def encode_month(spend: int, purchases: int) -> bytes:
    """A month's value: varints of the zigzag-coded spend (may be negative) and the purchases."""
    return _varints([_zigzag(spend), purchases])


def decode_month(blob: bytes | None) -> tuple[int, int]:
    """(spend, purchases) of an :func:`encode_month` value (absent: zero)."""
    values = [*_unvarints(blob or b""), 0, 0]
    return _unzigzag(values[0]), values[1]


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
        head = name[:1]
        if head == "o":
            for code, blob in split_offer(value).items():
                counters[(CODE_SUBJECTS[code], name[1:])] = decode_counter(blob)
        elif head in CODE_SUBJECTS:
            counters[(CODE_SUBJECTS[head], name[1:])] = decode_counter(value)
        elif head == "m":
            spend, purchases = decode_month(value)
            monthly_spend[name[1:]] = monthly_spend.get(name[1:], 0) + spend
            monthly_purchases[name[1:]] = monthly_purchases.get(name[1:], 0) + purchases
        elif name[1:2] == ":" and head in "sp":  # the previous layout's month fields
            months = monthly_spend if head == "s" else monthly_purchases
            months[name[2:]] = months.get(name[2:], 0) + int(value)
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


def reserve_one(fields: Fields, budget: BudgetCounter | None, req: CapRequest,
                now: int) -> tuple[bool, str | None, BudgetCounter | None]:
    """Check-and-increment one request against a member hash and its budget's counter.

    ``budget`` is the budget's current consumption (None when the request has no
    budget). Returns (granted, reason, budget after, or as found when the budget
    refused; None when the member cap refused first); the twin of the Lua ``RESERVE``.
    ``fields`` is updated in place when granted.
    """
    if cap_reached(fields, req, now):
        return False, MEMBER_CAP_REACHED, None
    after = budget
    if req.budget_key is not None:
        current = budget or BudgetCounter()
        if ((req.budget_count_limit is not None and current.count + 1 > req.budget_count_limit)
                or (req.budget_minor_limit is not None
                    and current.minor + req.charge_minor > req.budget_minor_limit)):
            return False, BUDGET_EXHAUSTED, current
        after = BudgetCounter(current.count + 1, current.minor + req.charge_minor)
    bump(fields, "issue", req.offer_id, now)
    if req.count_impression:
        bump(fields, "impression", req.offer_id, now)
    return True, None, after


def release_one(fields: Fields, req: CapRequest, issued_at: int) -> None:
    """Undo a granted reservation's member counters; the twin of the Lua ``RELEASE``."""
    subjects = ("issue", "impression") if req.count_impression else ("issue",)
    for subject in subjects:
        code = SUBJECT_CODES[subject]
        put_counter(fields, code, req.offer_id,
                    unbump_counter(get_counter(fields, code, req.offer_id), issued_at))


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
