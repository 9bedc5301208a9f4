"""Redis Cluster: the client, its URL scheme and the slot rules the store follows on it.

``REDIS_URL=redis+cluster://HOST:PORT`` (or a plain ``redis://`` URL with
``OFFERS_REDIS_CLUSTER=true``) names any node of a Redis Cluster; redis-py's
:class:`redis.cluster.RedisCluster` discovers the others and routes each command to the
master that owns its key's slot. On a cluster the store's keys change in one way only:
every key of a member carries the member id as a hash tag (``ofr:s:{1029}``, see
:class:`runtime.stores.keys.KeySpace`), so each per-member Lua script touches one slot;
commands over several members go through cluster pipelines, which redis-py splits per
node. docs/redis.md ("Redis Cluster") has the key table and what happens when a master dies.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.connection import Encoder
from redis.exceptions import RedisClusterException
from redis.retry import Retry

#: Seconds between two slot-map refreshes that failed commands ask for (redis-py's default is 1 s).
TOPOLOGY_REFRESH_SECONDS = 0.0

#: The URL scheme that asks for a cluster client (``rediss+cluster://`` for TLS).
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def is_cluster_url(url: str) -> bool:
    """True for a ``redis+cluster://`` (or ``rediss+cluster://``) URL."""
    return url.startswith(CLUSTER_SCHEMES)


def node_url(url: str) -> str:
    """The plain ``redis://``/``rediss://`` URL of the seed node a cluster URL names.

    >>> node_url("redis+cluster://10.0.0.5:7000")
    'redis://10.0.0.5:7000'
    """
    for scheme in CLUSTER_SCHEMES:
        if url.startswith(scheme):
            return scheme.replace("+cluster", "") + url[len(scheme):]
    return url


class LazyCluster:
    """A :class:`RedisCluster` made on first use, so building a store opens no connection.

    redis-py's cluster client asks a node for the slot map as soon as it is constructed; the
    service builds its store at start-up and must start (and answer 503 until the store
    answers) even while the cluster is away, as it does with one Redis. Until then, a
    failed construction is a ``redis.ConnectionError`` (the store's ``StoreUnavailable``) and
    is tried again by the next call. Every other attribute is the real client's.
    """

    def __init__(self, url: str, **options: object):
        self._url = node_url(url)
        self._options = options
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def get_encoder(self) -> Encoder:
        """The encoder redis-py's Script needs for a script's SHA (the client's defaults)."""
        return Encoder("utf-8", "strict", False)

    def register_script(self, script: str) -> Script:
        """A script bound to this client (loaded when first called, as redis-py does)."""
        return Script(self, script)  # type: ignore[arg-type]

    def connected(self) -> RedisCluster:
        """The cluster client, made now if it was not yet."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = RedisCluster.from_url(self._url, **self._options)
                    except (RedisClusterException, redis.RedisError) as exc:
                        raise redis.ConnectionError(f"no node of the Redis Cluster answers: {exc}") from exc
        return self._client

    def close(self) -> None:
        """Close the client's connections (nothing to do when it was never made)."""
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connected(), name)


def connect_cluster(url: str, timeout_ms: int = 100, connect_timeout_ms: int = 100,
                    max_connections: int = 16) -> LazyCluster:
    """A cluster client with the single-Redis client's short timeouts and no back-off sleep.

    ``max_connections`` bounds the pool of each node. No retry: redis-py's cluster client
    would retry a timed-out command too, and a script that may have run must never run
    twice. A command that fails on a dead master raises at once (``StoreUnavailable``,
    503) and asks redis-py for a new slot map, which the next command fetches first
    (``TOPOLOGY_REFRESH_SECONDS``), so after a failover at most one command per client
    fails before the promoted replica is used. Redirections (MOVED, ASK) are followed as usual.
    """
    return LazyCluster(
        url,
        socket_timeout=timeout_ms / 1000,
        socket_connect_timeout=connect_timeout_ms / 1000,
        max_connections=max_connections,
        retry=Retry(NoBackoff(), 0),
        # slots of a dead master fail; the other masters' members are still served
        require_full_coverage=False,
        # ask the cluster for its slot map again after a failed command at most this often
        topology_refresh_min_interval=TOPOLOGY_REFRESH_SECONDS,
    )


def load_scripts(client: RedisCluster | LazyCluster, scripts: Iterable[Script]) -> None:
    """SCRIPT LOAD every script on every master, so pipelined EVALSHA calls find them.

    A cluster pipeline cannot load a script itself (redis-py queues EVALSHA only), so the
    store loads them up front and again after a ``NOSCRIPT`` (a replica promoted after the
    load, or a master restarted empty).
    """
    for script in scripts:
        script.sha = client.script_load(script.script)


def is_noscript(exc: BaseException) -> bool:
    """True when a (cluster pipeline) error is Redis' NOSCRIPT reply."""
    return isinstance(exc, redis.exceptions.NoScriptError) or "NOSCRIPT" in str(exc)
