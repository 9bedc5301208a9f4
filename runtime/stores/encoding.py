"""Compact encodings shared by both stores: the bytes Redis and the in-process store hold.

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
    at               attr_* attributes as a compact JSON object (absent: none), for uplift models

The history itself is a compressed base plus appended fixed-width records (:mod:`models.features.online`).

Score vectors are one layout byte, then 3-byte log-scale codes of probabilities
(:func:`encode_scores`; 3 bytes per offer) or float32; the order is the one the cache
slot defines (model version, channel and candidate offers), and the hash field is a
digest of the slot (:func:`cache_field`). The rules that update these fields live in
:mod:`.rules_lua` (inside Redis) and :mod:`.rules_python` (the in-process store).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, MutableMapping, Sequence

import numpy as np

from runtime.stores.values import (
    CODE_SUBJECTS,
    OFFER_VALUE_MAX,
    SUBJECT_ORDER,
    MemberProfile,
    MemberState,
    OfferCounter,
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
    if profile.attributes:
        fields[b"at"] = json.dumps(dict(profile.attributes), separators=(",", ":"), allow_nan=False).encode()
    return fields


def _attributes(raw: bytes | None) -> tuple[tuple[str, str | float], ...] | None:
    """The (name, value) pairs of a profile's ``at`` field; None when absent or unreadable."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return tuple((str(k), v if isinstance(v, str) else float(v)) for k, v in data.items()
                 if isinstance(v, (str, int, float)) and not isinstance(v, bool))


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
        attributes=_attributes(fields.get(b"at")),
    )


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
