"""Coupon codes: unguessable, typo-resistant, and unique in the store.

Format. Uppercase Crockford base32 (``0-9`` and ``A-Z`` without ``I L O U``): an optional
campaign prefix (1-8 characters of the same alphabet), ``length`` random characters from
:mod:`secrets` (12 by default: 60 bits), then one check character (Luhn mod 32 over
everything before it, which catches every single mistyped character and most swaps of
neighbours). On a Redis Cluster, three characters naming the holder's hash slot come just
before the check character (:mod:`runtime.stores.slots`). The canonical form has no separators (``SPR7QK2M9XW4TAB3``); people see it
grouped by four (``SPR-7QK2-M9XW-4TAB-3``).

Normalisation before lookup: spaces, ``-``, ``_`` and ``.`` are dropped, letters are
upper-cased, and the look-alikes Crockford defines are mapped (``O`` -> ``0``,
``I``/``L`` -> ``1``). ``U`` and anything else outside the alphabet is an error; so is
a wrong check character, which is caught before any store lookup.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass

from runtime.errors import OffersRuntimeError
from runtime.stores import Store
from runtime.stores.interfaces import CouponStore

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = str.maketrans("", "", " -_.\t")
DEFAULT_LENGTH = 12
MAX_PREFIX = 8
#: Collisions are astronomically rare at 60 bits; this bounds the retry loop anyway.
MAX_ATTEMPTS = 8


class InvalidCouponCode(OffersRuntimeError, ValueError):
    """A coupon code is malformed or its check character is wrong."""


def _luhn_sum(code: str, first_factor: int) -> int:
    total, factor = 0, first_factor
    for ch in reversed(code):
        addend = factor * _INDEX[ch]
        total += addend // 32 + addend % 32
        factor = 1 if factor == 2 else 2
    return total


def check_character(payload: str) -> str:
    """The Luhn mod 32 check character of a canonical payload."""
    return ALPHABET[(32 - _luhn_sum(payload, 2) % 32) % 32]


def has_valid_check(code: str) -> bool:
    """True when a canonical code's last character checks the rest."""
    return len(code) >= 2 and all(c in _INDEX for c in code) and _luhn_sum(code, 1) % 32 == 0


def _check_prefix(prefix: str) -> str:
    if len(prefix) > MAX_PREFIX or any(c not in _INDEX for c in prefix):
        raise ValueError(f"a coupon prefix is 0-{MAX_PREFIX} characters of {ALPHABET} "
                         f"(got {prefix!r})")
    return prefix


def generate(prefix: str = "", length: int = DEFAULT_LENGTH, marker: str = "") -> str:
    """A new canonical code: prefix + ``length`` random characters + ``marker`` + check character.

    ``marker`` is the store's slot marker for the holder (empty except on a Redis Cluster:
    :meth:`runtime.stores.keys.KeySpace.code_marker`), so the code says where its record is."""
    _check_prefix(prefix)
    if not 10 <= length <= 32:
        raise ValueError("the random part is 10-32 characters (50-160 bits)")
    if any(c not in _INDEX for c in marker):
        raise ValueError(f"a slot marker is written in {ALPHABET} (got {marker!r})")
    # one read of the OS random source; 256 is a multiple of the 32 letters, so b & 31 is uniform
    payload = prefix + "".join([ALPHABET[b & 31] for b in secrets.token_bytes(length)]) + marker
    return payload + check_character(payload)


def display(code: str, prefix: str = "") -> str:
    """The code as people read it: the prefix, then groups of four, joined by '-'."""
    body = code[len(prefix):]
    groups = [body[i:i + 4] for i in range(0, len(body), 4)]
    return "-".join(([prefix] if prefix else []) + groups)


def normalise(text: str) -> str:
    """The canonical code for what someone typed; raise InvalidCouponCode when it is not one."""
    code = text.translate(_SEPARATORS).upper().translate(_LOOKALIKES)
    bad = sorted({c for c in code if c not in _INDEX})
    if bad:
        raise InvalidCouponCode(f"coupon codes use only {ALPHABET} (found {''.join(bad)!r})")
    if len(code) < 5:
        raise InvalidCouponCode("the coupon code is too short")
    if not has_valid_check(code):
        raise InvalidCouponCode("the coupon code's check character does not match (mistyped?)")
    return code


@dataclass(frozen=True)
class Coupon:
    """An issued coupon: the canonical code, who holds it, for which offer, until when,
    and (once redeemed) when and by which event."""

    code: str
    display: str
    member_id: str
    offer_id: str
    issued_at: int
    expires_at: int
    decision_id: str | None = None
    redeemed_at: int | None = None
    redeemed_event_id: str | None = None

    @property
    def redeemed(self) -> bool:
        return self.redeemed_event_id is not None

    def to_bytes(self) -> bytes:
        """The stored record: JSON, without the redemption fields while unredeemed."""
        fields = {k: v for k, v in asdict(self).items()
                  if v is not None or k not in ("redeemed_at", "redeemed_event_id")}
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Coupon:
        """A coupon from its record (Python's or the Lua scripts' JSON; numbers may be floats)."""
        fields = json.loads(blob)
        for name in ("issued_at", "expires_at", "redeemed_at"):
            if fields.get(name) is not None:
                fields[name] = int(fields[name])
        return cls(**fields)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def issue_coupon(store: Store, member_id: str, offer_id: str, now: int, expires_at: int,
                 prefix: str = "", decision_id: str | None = None,
                 length: int = DEFAULT_LENGTH) -> Coupon:
    """Create a unique code for ``member_id`` and ``offer_id`` and store it until it expires.

    Raises
    ------
    StoreUnavailable
        When the store cannot be written (no coupon exists then).
    RuntimeError
        When :data:`MAX_ATTEMPTS` random codes all collided (a broken random source).
    """
    if expires_at <= now:
        raise ValueError("a coupon must expire after it is issued")
    for _ in range(MAX_ATTEMPTS):
        code = generate(prefix, length, store.keys.code_marker(member_id))
        coupon = Coupon(code=code, display=display(code, prefix), member_id=member_id,
                        offer_id=offer_id, issued_at=now, expires_at=expires_at,
                        decision_id=decision_id)
        if store.put_coupon(code, coupon.to_bytes(), expires_at - now):
            return coupon
    raise RuntimeError(f"{MAX_ATTEMPTS} coupon codes in a row collided")


def find_coupon(store: CouponStore, text: str) -> Coupon | None:
    """The coupon for a typed code (normalised first), or None; InvalidCouponCode if malformed."""
    blob = store.get_coupon(normalise(text))
    return None if blob is None else Coupon.from_bytes(blob)
