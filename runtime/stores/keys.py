"""Every Redis key the service writes is built here, by :func:`build_key`.

Layout (``ofr`` is the default ``OFFERS_REDIS_PREFIX``)::

    ofr:s:<member_id>            hash    member online state            TTL state (400 d, refreshed on write)
    ofr:c:<member_id>            hash    cached score vectors, field = model version   TTL cache (1 h)
    ofr:e:<event_id>             string  event seen marker              TTL event dedup (7 d)
    ofr:b:{budgets}:<key>:<period>  hash budget use: n issues, m minor units  TTL to the period's end + 2 d
                                         (total: budget TTL, 400 d, from the last reservation)
    ofr:k:<coupon_code>          string  coupon record                  TTL until the coupon expires
    ofr:i:<digest>               string  idempotency record             TTL idempotency (48 h)
    ofr:h:<member_id>            string  history records (APPEND-only)  TTL state (400 d, refreshed on write)
    ofr:m:<member_id>            hash    member profile: catalog fingerprint, joined_at,
                                         segment, birth month, channels TTL state (400 d, refreshed on write)
    ofr:d:<fingerprint>          string  product and offer ids a history's indices refer to  TTL state
    ofr:g:data                   string  generation marker of the materialized data  TTL state (renewed by
                                         offers materialize and /readyz); absent = Redis lost its data
    ofr:w:<member_id>            hash    the member's held (issued, unredeemed) coupons:
                                         field = offer id, value = coupon record  TTL the longest coupon's

On a Redis Cluster (``KeySpace(prefix, cluster=True)``) every key of one member carries the
member id as a hash tag, so one script's keys share a slot: ``ofr:s:{<member_id>}``,
``ofr:c:{..}``, ``ofr:h:{..}``, ``ofr:m:{..}``, ``ofr:w:{..}``, ``ofr:rf:{..}`` and the event
marker ``ofr:e:{<member_id>}:<event_id>`` (event ids are de-duplicated per member there). The
points keys carry the tag in both layouts. A coupon record lives in its holder's slot:
``ofr:k:{<tag>}:<code>``, the code naming the slot (:mod:`runtime.stores.slots`). Global keys
(budgets, idempotency, catalog, generation) keep their names: each is one key, so its own slot.

docs/redis.md describes the values. Parts are checked so that no id can forge another
key: they must be non-empty and free of ``:``, braces, whitespace and control characters
(the id patterns in :mod:`service.validation` already guarantee this).
"""

from __future__ import annotations

import re

from runtime.stores.slots import MARKER_LENGTH, marker_for, marker_slot, member_slot, slot_tag

KINDS = {
    "state": "s",
    "cache": "c",
    "event": "e",
    "budget": "b",
    "coupon": "k",
    "idempotency": "i",
    "history": "h",
    "profile": "m",
    "generation": "g",
    "catalog": "d",
    "wallet": "w",
    "points": "p",
    "points_entries": "pe",
    "points_causes": "pc",
    "referral": "rf",
    "referral_code": "rc",
}
_PART = re.compile(r"[^\s:{}\x00-\x1f\x7f]{1,256}")


def build_key(prefix: str, kind: str, *parts: str) -> str:
    """The key of ``kind`` ("state", "cache"...) for ``parts`` under ``prefix``.

    >>> build_key("ofr", "budget", "o1", "2024-06")
    'ofr:b:o1:2024-06'
    """
    if kind not in KINDS:
        raise ValueError(f"unknown key kind {kind!r}")
    if not parts:
        raise ValueError(f"a {kind} key needs at least one part")
    for part in parts:
        if not isinstance(part, str) or not _PART.fullmatch(part):
            raise ValueError(f"invalid key part {part!r} for a {kind} key")
    return ":".join((prefix, KINDS[kind], *parts))


class KeySpace:
    """:func:`build_key` bound to one prefix, with a method per key kind."""

    def __init__(self, prefix: str = "ofr", cluster: bool = False):
        if not prefix or not _PART.fullmatch(prefix):
            raise ValueError(f"invalid key prefix {prefix!r}")
        self.prefix = prefix
        #: the Redis Cluster layout: member keys carry the member id as a hash tag
        self.cluster = cluster

    def _member(self, kind: str, member_id: str) -> str:
        """A member's key of ``kind``: ``ofr:s:1029``, or ``ofr:s:{1029}`` in the cluster layout."""
        key = build_key(self.prefix, kind, member_id)
        return key[:-len(member_id)] + "{" + member_id + "}" if self.cluster else key

    def state(self, member_id: str) -> str:
        return self._member("state", member_id)

    def cache(self, member_id: str) -> str:
        return self._member("cache", member_id)

    def event(self, event_id: str, member_id: str | None = None) -> str:
        """An event's seen marker; in the cluster layout in its member's slot (``member_id`` needed)."""
        if not self.cluster:
            return build_key(self.prefix, "event", event_id)
        if member_id is None:
            raise ValueError("the cluster key layout needs the member id of an event marker")
        return self._member("event", member_id) + ":" + build_key(self.prefix, "event", event_id)[
            len(self.prefix) + 3:]

    def budget(self, budget_key: str, period: str) -> str:
        """A budget's counter for one period. Every budget counter carries the Redis Cluster hash
        tag ``{budgets}`` (``ofr:b:{budgets}:welcome:m2024-06``): one slot, so one script reserves
        every budget a decision draws on (:mod:`runtime.stores.two_phase`)."""
        plain = build_key(self.prefix, "budget", budget_key, period)
        return plain.replace(f"{self.prefix}:b:", f"{self.prefix}:b:{{budgets}}:", 1)

    def coupon(self, code: str) -> str:
        """A coupon record's key: ``ofr:k:<code>``; in the cluster layout ``ofr:k:{<tag>}:<code>``,
        in the slot the code's marker names, its holder's (:mod:`runtime.stores.slots`)."""
        return self._coded("coupon", code)

    def _coded(self, kind: str, code: str) -> str:
        """The key of a record found by a code (a coupon, a referral code); in the cluster layout
        tagged into the slot the code's marker names."""
        key = build_key(self.prefix, kind, code)
        if not self.cluster:
            return key
        slot = marker_slot(code[-1 - MARKER_LENGTH:-1])
        if slot is None:  # not a code issued on a cluster: a key no record has
            return key
        return f"{self.prefix}:{KINDS[kind]}:{{{slot_tag(slot)}}}:{code}"

    def code_marker(self, member_id: str) -> str:
        """What a code issued to ``member_id`` (a coupon, a referral code) carries before its check
        character: nothing, or in the cluster layout the three characters naming the member's slot."""
        return marker_for(member_slot(member_id)) if self.cluster else ""

    def idempotency(self, digest: str) -> str:
        return build_key(self.prefix, "idempotency", digest)

    def history(self, member_id: str) -> str:
        return self._member("history", member_id)

    def profile(self, member_id: str) -> str:
        return self._member("profile", member_id)

    def generation(self) -> str:
        """The generation marker ``offers materialize`` writes (one key per prefix)."""
        return build_key(self.prefix, "generation", "data")

    def catalog(self, fingerprint: str) -> str:
        """The ids of the catalog with ``fingerprint`` (content-addressed: never rewritten differently)."""
        return build_key(self.prefix, "catalog", fingerprint)

    def wallet(self, member_id: str) -> str:
        return self._member("wallet", member_id)

    def referral(self, member_id: str) -> str:
        """The member's referral fields: their code, who referred them (``by``, ``at``), referrals made (``n``)."""
        return self._member("referral", member_id)

    def referral_code(self, code: str) -> str:
        """A referral code -> the member who holds it (in the holder's slot on a cluster)."""
        return self._coded("referral_code", code)

    def points(self, member_id: str) -> tuple[str, str, str]:
        """The member's points account, recent entries and applied causes. One script touches all
        three, so they carry the member id as a Redis Cluster hash tag (``ofr:p:{1029}``): one slot."""
        def tagged(kind: str) -> str:
            return build_key(self.prefix, kind, member_id)[:-len(member_id)] + "{" + member_id + "}"

        return tagged("points"), tagged("points_entries"), tagged("points_causes")

    def pattern(self) -> str:
        """A SCAN/KEYS pattern matching every key of this prefix."""
        return f"{self.prefix}:*"
