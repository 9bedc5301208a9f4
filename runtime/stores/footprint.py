"""Measure what one member costs in Redis: ``python -m runtime.stores.footprint [REDIS_URL]``.

Writes members through the real store code, then asks Redis ``MEMORY USAGE`` for each of
their keys. Two profiles: ``active`` (a year of activity: 24 purchases over 12 months,
impressions of 30 offers, clicks on 8, issues of 10, 3 redemptions, 5 dismissals) and
``light`` (6 purchases over 3 months, impressions of 5 offers, one click, one issue);
both with a cached 100-offer score vector. docs/redis.md quotes the result; a test
re-measures it.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import redis

from runtime.stores.keys import KeySpace
from runtime.stores.redis_store import RedisStore, connect
from runtime.stores.values import CapRequest, StateEvent


@dataclass(frozen=True)
class Footprint:
    state_bytes: int
    cache_bytes: int
    state_fields: int
    state_encoding: str

    @property
    def total(self) -> int:
        return self.state_bytes + self.cache_bytes


#: The moment the footprint is measured at: a fixed date, so the figure never depends on
#: today's (spreading purchases back from the wall clock counted 13 months early in a month).
MEASURED_AT = datetime(2024, 6, 15, 12, tzinfo=UTC)


def _months_back(now: datetime, k: int, day: int) -> int:
    """Epoch seconds of ``day`` (1-28) at noon, ``k`` calendar months before ``now``'s month."""
    index = now.year * 12 + now.month - 1 - k
    return int(datetime(index // 12, index % 12 + 1, day, 12, tzinfo=UTC).timestamp())


def realistic_member(store: RedisStore, member_id: str, offers: int = 100,
                     profile: str = "active", now: datetime = MEASURED_AT) -> None:
    """Write a member's activity (see the module docstring) and a cached score vector.

    Purchases fall on the 1st and the 15th of each of the last 12 (or 3) calendar months
    up to ``now``'s month, so the member spans exactly that many spend months whatever
    day ``now`` is; the store must be built with a clock at ``now``.
    """
    events: list[StateEvent] = []
    at = int(now.timestamp())
    n = 0
    active = profile == "active"

    def add(kind: str, offer: str | None, ts: int, amount: int = 0) -> None:
        nonlocal n
        n += 1
        month = datetime.fromtimestamp(ts, UTC).strftime("%Y%m")
        events.append(StateEvent(f"{member_id}-{n}", member_id, kind, ts, offer, amount, month))

    for i in range(24 if active else 6):  # two purchases a month
        when = _months_back(now, i // 2, 1 + 14 * (i % 2))
        add("transaction", None, min(when, at), 2500 + 37 * i)
    for o in range(30 if active else 5):
        for k in range(3 if active else 2):
            add("impression", f"offer-{o:04d}", at - (o * 3 + k) * 3600)
    for o in range(8 if active else 1):
        add("click", f"offer-{o:04d}", at - o * 7200)
    if active:
        for o in range(3):
            add("redeem", f"offer-{o:04d}", at - o * 86400)
        for o in range(5):
            add("dismiss", f"offer-{o + 10:04d}", at - o * 86400)
    store.apply_events(events)
    store.reserve(member_id, [CapRequest(f"offer-{o:04d}") for o in range(10 if active else 1)], at)
    store.put_scores(member_id, "model-2024-06-01", np.random.default_rng(0).random(offers))


def measure(client: redis.Redis, profile: str = "active", now: datetime = MEASURED_AT) -> Footprint:
    """Write one member of ``profile`` as of ``now`` under a fresh prefix, measure it, delete it."""
    keys = KeySpace("fp" + uuid.uuid4().hex[:6])
    store = RedisStore(client, keys=keys, wall_clock=now.timestamp)
    member = "100234567"
    realistic_member(store, member, profile=profile, now=now)
    try:
        state_key, cache_key = keys.state(member), keys.cache(member)
        return Footprint(
            state_bytes=int(client.memory_usage(state_key, samples=0) or 0),
            cache_bytes=int(client.memory_usage(cache_key, samples=0) or 0),
            state_fields=int(client.hlen(state_key)),
            state_encoding=client.object("encoding", state_key).decode(),
        )
    finally:
        doomed = list(client.scan_iter(match=keys.pattern(), count=1000))
        if doomed:
            client.delete(*doomed)


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "redis://127.0.0.1:6379/15"
    client = connect(url, timeout_ms=2000, connect_timeout_ms=2000)
    for profile in ("active", "light"):
        fp = measure(client, profile)
        print(f"{profile}: state {fp.state_bytes} B ({fp.state_fields} fields, {fp.state_encoding}), "
              f"100-offer score vector {fp.cache_bytes} B, total {fp.total} B")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
