"""Online stores: member state, score cache, caps, coupons and idempotency records.

Use :func:`build_store` to get the store the settings ask for: Redis when
``REDIS_URL``/``OFFERS_REDIS_URL`` is set (a Redis Cluster with a ``redis+cluster://`` URL
or ``OFFERS_REDIS_CLUSTER=true``), otherwise the in-process store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime.stores.interfaces import Store, StoreError, StoreObserver, StoreUnavailable, TTLs
from runtime.stores.keys import KeySpace, build_key
from runtime.stores.values import (
    BUDGET_EXHAUSTED,
    BUDGET_PACED,
    CLAIM_AGAIN,
    CLAIM_EXPIRED,
    CLAIM_MEMBER,
    CLAIM_MISSING,
    CLAIM_OFFER,
    CLAIM_OK,
    CLAIM_REDEEMED,
    CONTACT_CAPPED,
    MEMBER_CAP_REACHED,
    RECENT_LIMIT,
    BudgetClaim,
    BudgetCounter,
    BudgetRef,
    CacheWrite,
    CapRequest,
    CapResult,
    ClaimResult,
    CommitResult,
    ContactLimit,
    CouponClaim,
    CouponWrite,
    MemberBundle,
    MemberProfile,
    MemberState,
    MemberWrite,
    OfferCounter,
    StateEvent,
    StoredResponse,
)

if TYPE_CHECKING:
    from runtime.settings import Settings

__all__ = [
    "BUDGET_EXHAUSTED", "BUDGET_PACED", "CLAIM_AGAIN", "CLAIM_EXPIRED", "CLAIM_MEMBER", "CLAIM_MISSING",
    "CLAIM_OFFER", "CLAIM_OK", "CLAIM_REDEEMED", "CONTACT_CAPPED", "MEMBER_CAP_REACHED", "RECENT_LIMIT",
    "BudgetClaim", "BudgetCounter", "BudgetRef", "CacheWrite",
    "CapRequest", "CapResult", "ClaimResult", "CommitResult", "ContactLimit", "CouponClaim", "CouponWrite", "KeySpace",
    "MemberBundle", "MemberProfile",
    "MemberState", "MemberWrite", "OfferCounter", "StateEvent",
    "Store", "StoreError", "StoreObserver", "StoreUnavailable", "StoredResponse", "TTLs",
    "build_key", "build_store",
]


def ttls_from(settings: Settings) -> TTLs:
    """The TTLs the settings ask for."""
    return TTLs(state=settings.state_ttl_seconds, cache=settings.cache_ttl_seconds,
                event_dedup=settings.event_dedup_ttl_seconds,
                idempotency=settings.idempotency_ttl_seconds, budget=settings.budget_ttl_seconds)


def build_store(settings: Settings, observer: StoreObserver | None = None,
                clock: Callable[[], float] = time.time) -> Store:
    """A RedisStore when a Redis URL is set, else a MemoryStore; no connection is opened yet.

    ``clock`` (epoch seconds) decides which spend months are old enough to drop.
    """
    keys = KeySpace(settings.redis_prefix, cluster=settings.redis_is_cluster)
    if settings.redis_url is None:
        from runtime.stores.memory import MemoryStore

        return MemoryStore(keys=keys, ttls=ttls_from(settings), observer=observer, wall_clock=clock)
    from runtime.stores.redis_store import RedisStore, connect

    if settings.redis_is_cluster:
        # a Redis Cluster: hash-tagged member keys, routed per slot (runtime/stores/cluster.py)
        from runtime.stores.cluster import connect_cluster

        cluster = connect_cluster(settings.redis_url, settings.redis_timeout_ms,
                                  settings.redis_connect_timeout_ms, settings.redis_max_connections)
        return RedisStore(cluster, keys=keys, ttls=ttls_from(settings), observer=observer, wall_clock=clock)
    client = connect(settings.redis_url, settings.redis_timeout_ms,
                     settings.redis_connect_timeout_ms, settings.redis_max_connections)
    return RedisStore(client, keys=keys, ttls=ttls_from(settings), observer=observer,
                      wall_clock=clock)
