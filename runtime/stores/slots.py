"""Redis Cluster hash slots for keys found by something other than a member id: coupon codes.

A coupon is issued and redeemed by scripts that also touch its holder's keys (the wallet, the
state, the cap counters), and a cluster script may only touch keys of one slot. A coupon is
looked up by its code alone (at the till, in the console), so the code itself must say where
its record lives. In the cluster layout (:class:`runtime.stores.keys.KeySpace` with
``cluster=True``):

* a code carries a **slot marker**: three characters of the code alphabet, just before the
  check character, that spell the hash slot of its holder's member keys (0..16383 in base 32;
  :func:`marker_for`), so codes issued on a cluster are three characters longer;
* its record's key carries a **slot tag**: a short string whose CRC16 falls in that slot
  (:func:`slot_tag`), as ``ofr:k:{<tag>}:<code>``; the key is then in the same slot as
  ``ofr:s:{<member_id>}``, ``ofr:w:{<member_id>}`` and the member's other keys.

The tags are found once per process by trying short alphanumeric strings until every slot has
one (a fraction of a second, only in the cluster layout). The single-Redis layout is
unchanged: no marker, ``ofr:k:<code>``.
"""

from __future__ import annotations

import itertools
import string
from functools import lru_cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

#: The code alphabet (Crockford base32), the same as :data:`runtime.coupons.codes.ALPHABET`.
MARKER_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MARKER_LENGTH = 3
_TAG_CHARS = string.ascii_letters + string.digits


def member_slot(member_id: str) -> int:
    """The hash slot of a member's keys in the cluster layout (their tag is the member id)."""
    return int(key_slot(member_id.encode()))


def marker_for(slot: int) -> str:
    """The three-character marker spelling ``slot`` in the code alphabet."""
    if not 0 <= slot < REDIS_CLUSTER_HASH_SLOTS:
        raise ValueError(f"a hash slot is 0..{REDIS_CLUSTER_HASH_SLOTS - 1} (got {slot})")
    return "".join(MARKER_ALPHABET[(slot >> shift) & 31] for shift in (10, 5, 0))


def marker_slot(marker: str) -> int | None:
    """The slot a marker spells, or None when it spells none (a code not issued on a cluster)."""
    if len(marker) != MARKER_LENGTH or any(c not in MARKER_ALPHABET for c in marker):
        return None
    value = 0
    for c in marker:
        value = value * 32 + MARKER_ALPHABET.index(c)
    return value if value < REDIS_CLUSTER_HASH_SLOTS else None


@lru_cache(maxsize=1)
def _tags() -> tuple[str, ...]:
    """A tag per slot: the first short alphanumeric string found in each slot."""
    found: dict[int, str] = {}
    for size in itertools.count(1):
        for chars in itertools.product(_TAG_CHARS, repeat=size):
            tag = "".join(chars)
            found.setdefault(int(key_slot(tag.encode())), tag)
        if len(found) == REDIS_CLUSTER_HASH_SLOTS:
            return tuple(found[s] for s in range(REDIS_CLUSTER_HASH_SLOTS))
    raise AssertionError("unreachable")  # pragma: no cover


def slot_tag(slot: int) -> str:
    """A hash tag whose keys fall in ``slot``."""
    return _tags()[slot]
