"""The contact policy's counting rules in Python (twins of :mod:`.contact_lua`), for the in-process store.

:class:`ContactTally` loads a member's contact counters from their state hash fields, tells
whether one more offer passes every cap (one more contact too when the slate has not counted
yet), counts a granted offer and writes the counters back, exactly as the Lua helpers do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runtime.stores.encoding import Fields
from runtime.stores.values import ContactLimit


def parse(value: bytes | None, period: str) -> tuple[int, int]:
    """(offers, contacts) counted in ``period`` by a ``<period>|<offers>|<contacts>`` field (0, 0 otherwise)."""
    if not value:
        return 0, 0
    parts = value.decode().split("|")
    if len(parts) != 3 or parts[0] != period:
        return 0, 0
    return int(parts[1]), int(parts[2])


class ContactTally:
    """One commit's view of the member's contact caps (the Lua ``contact_*`` helpers)."""

    def __init__(self, fields: Mapping[bytes, bytes], limits: Sequence[ContactLimit]):
        self.limits = list(limits)
        self.counts = [list(parse(fields.get(b"x" + c.name.encode()), c.period)) for c in self.limits]
        #: whether the slate was counted as a contact already
        self.counted = False

    def refused(self) -> bool:
        """Whether one more offer (and one more contact, before the first) passes a cap."""
        for c, (offers, contacts) in zip(self.limits, self.counts, strict=True):
            if c.max_offers is not None and offers + 1 > c.max_offers:
                return True
            if not self.counted and c.max_contacts is not None and contacts + 1 > c.max_contacts:
                return True
        return False

    def count(self) -> None:
        """Count one granted offer (and the contact, once per slate)."""
        for n in self.counts:
            n[0] += 1
            if not self.counted:
                n[1] += 1
        self.counted = True

    def save(self, fields: Fields) -> None:
        """Write the counters back into the member's state fields (when the slate counted)."""
        if not self.counted:
            return
        for c, (offers, contacts) in zip(self.limits, self.counts, strict=True):
            fields[b"x" + c.name.encode()] = f"{c.period}|{offers}|{contacts}".encode()
