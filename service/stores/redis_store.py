"""The :class:`~service.stores.base.Store` on Redis.

Round trips: :meth:`RedisStore.fetch_member` is one pipeline (HGETALL state, HGET the
cached vector, MGET budgets); :meth:`~RedisStore.fetch_members` and
:meth:`~RedisStore.put_scores_many` are one pipeline for any number of members;
:meth:`~RedisStore.apply_events`, :meth:`~RedisStore.reserve` and
:meth:`~RedisStore.release` are one Lua script call each (atomic), whatever the batch.

Failure: connection errors, timeouts and "the server cannot write now" replies
(LOADING, READONLY, MISCONF, OOM) raise :class:`StoreUnavailable` after one immediate
retry (which heals a pooled connection that the server closed); timeouts are short
(``OFFERS_REDIS_TIMEOUT_MS``), there is no back-off sleep, and the next call simply
connects again, so the service recovers by itself when Redis comes back. The layout
needs one Redis primary (scripts touch several members' and budgets' keys at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import cast

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.stores import codec, lua
from service.stores.base import (
    RECENT_LIMIT,
    SUBJECT_CODES,
    BudgetCounter,
    BudgetRef,
    CapRequest,
    CapResult,
    MemberBundle,
    NullObserver,
    StateEvent,
    Store,
    StoredResponse,
    StoreError,
    StoreObserver,
    StoreUnavailable,
    TTLs,
)
from service.stores.keys import KeySpace

_UNAVAILABLE_REPLIES = ("LOADING", "READONLY", "MISCONF", "OOM", "MASTERDOWN", "TRYAGAIN")


#: Longest wait for a free pooled connection (only reached with more concurrent callers
#: than OFFERS_REDIS_MAX_CONNECTIONS, e.g. threaded workers).
POOL_WAIT_SECONDS = 0.5


def connect(url: str, timeout_ms: int = 100, connect_timeout_ms: int = 100,
            max_connections: int = 16) -> redis.Redis:
    """A client with short timeouts and a single immediate retry on connection errors."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        socket_timeout=timeout_ms / 1000,
        socket_connect_timeout=connect_timeout_ms / 1000,
        # One retry, no sleep, only for connection errors: it heals a pooled connection the
        # server closed (a restart) without hiding an outage. Timeouts are not retried, so
        # a script that may have run is never run twice.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )
    return redis.Redis.from_pool(pool)


def _or_minus(value: int | None) -> int:
    return -1 if value is None else value


def _budget(reply: Sequence[bytes | None]) -> BudgetCounter:
    n, m = reply
    return BudgetCounter(int(n or 0), int(m or 0))


class RedisStore(Store):
    """Store on a Redis server; see the module docstring for round trips and failures."""

    kind = "redis"

    def __init__(self, client: redis.Redis, keys: KeySpace | None = None, ttls: TTLs | None = None,
                 observer: StoreObserver | None = None,
                 wall_clock: Callable[[], float] = time.time):
        self.client = client
        self._wall_clock = wall_clock
        self.keys = keys or KeySpace()
        self.ttls = ttls or TTLs()
        self.observer: StoreObserver = observer or NullObserver()
        self._apply = client.register_script(lua.APPLY_EVENTS)
        self._reserve = client.register_script(lua.RESERVE)
        self._release = client.register_script(lua.RELEASE)

    @contextmanager
    def _guard(self, operation: str) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.observer.store_error(operation)
            raise StoreUnavailable(f"redis {operation}: {exc}") from exc
        except redis.ResponseError as exc:
            self.observer.store_error(operation)
            if str(exc).startswith(_UNAVAILABLE_REPLIES) or isinstance(exc, redis.ReadOnlyError):
                raise StoreUnavailable(f"redis {operation}: {exc}") from exc
            raise StoreError(f"redis {operation}: {exc}") from exc
        except redis.RedisError as exc:
            self.observer.store_error(operation)
            raise StoreError(f"redis {operation}: {exc}") from exc

    # -- reads ------------------------------------------------------------------
    def fetch_member(self, member_id: str, model_version: str | None = None,
                     budgets: Sequence[BudgetRef] = ()) -> MemberBundle:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.state(member_id))
        if model_version is not None:
            pipe.hget(self.keys.cache(member_id), model_version)
        for key, period in budgets:
            pipe.hmget(self.keys.budget(key, period), "n", "m")
        with self._guard("fetch_member"):
            replies = pipe.execute()
        fields = replies[0]
        scores = codec.decode_scores(replies[1]) if model_version is not None else None
        budget_replies = replies[len(replies) - len(budgets):]
        if model_version is not None:
            self.observer.cache_lookup(scores is not None)
        return MemberBundle(
            state=codec.decode_state(member_id, fields),
            model_version=model_version,
            scores=scores,
            budgets={ref: _budget(r) for ref, r in zip(budgets, budget_replies, strict=True)},
        )

    def fetch_members(self, member_ids: Sequence[str],
                      model_version: str | None = None) -> list[MemberBundle]:
        pipe = self.client.pipeline(transaction=False)
        for member_id in member_ids:
            pipe.hgetall(self.keys.state(member_id))
            if model_version is not None:
                pipe.hget(self.keys.cache(member_id), model_version)
        with self._guard("fetch_members"):
            replies = pipe.execute()
        step = 2 if model_version is not None else 1
        out = []
        for i, member_id in enumerate(member_ids):
            scores = codec.decode_scores(replies[i * step + 1]) if step == 2 else None
            if model_version is not None:
                self.observer.cache_lookup(scores is not None)
            out.append(MemberBundle(state=codec.decode_state(member_id, replies[i * step]),
                                    model_version=model_version, scores=scores))
        return out

    # -- score cache ------------------------------------------------------------------
    def put_scores(self, member_id: str, model_version: str,
                   scores: Sequence[float] | np.ndarray) -> None:
        self.put_scores_many(model_version, {member_id: scores})

    def put_scores_many(self, model_version: str,
                        items: Mapping[str, Sequence[float] | np.ndarray]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for member_id, scores in items.items():
            key = self.keys.cache(member_id)
            pipe.hset(key, model_version, codec.encode_scores(scores))
            pipe.expire(key, self.ttls.cache)
        with self._guard("put_scores"):
            pipe.execute()

    def invalidate(self, member_id: str) -> None:
        with self._guard("invalidate"):
            self.client.delete(self.keys.cache(member_id))

    # -- events --------------------------------------------------------------------
    def events_seen(self, event_ids: Sequence[str]) -> list[bool]:
        if not event_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.exists(self.keys.event(event_id))
        with self._guard("events_seen"):
            return [bool(n) for n in pipe.execute()]

    def apply_events(self, events: Sequence[StateEvent]) -> list[bool]:
        if not events:
            return []
        keys: list[str] = []
        args: list[str | int] = [self.ttls.event_dedup, self.ttls.state, RECENT_LIMIT,
                                 codec.month_cutoff(self._wall_clock())]
        for ev in events:
            keys += [self.keys.event(ev.event_id), self.keys.state(ev.member_id),
                     self.keys.cache(ev.member_id)]
            code = "txn" if ev.type == "transaction" else SUBJECT_CODES[ev.type]
            args += [code, ev.ts, ev.offer_id or "", ev.amount_minor, ev.month]
        with self._guard("apply_events"):
            result = self._apply(keys=keys, args=args)
        return [bool(n) for n in result]

    # -- caps and budgets ------------------------------------------------------------
    def reserve(self, member_id: str, requests: Sequence[CapRequest], now: int) -> list[CapResult]:
        if not requests:
            return []
        keys = [self.keys.state(member_id)]
        args: list[str | int] = [self.ttls.state, now, RECENT_LIMIT]
        for req in requests:
            bidx = 0
            if req.budget is not None:
                keys.append(self.keys.budget(*req.budget))
                bidx = len(keys)
            args += [req.offer_id, _or_minus(req.member_limit), _or_minus(req.member_window_seconds),
                     bidx, _or_minus(req.budget_count_limit), _or_minus(req.budget_minor_limit),
                     req.charge_minor, req.budget_ttl_seconds or self.ttls.budget,
                     int(req.count_impression)]
        with self._guard("reserve"):
            replies = self._reserve(keys=keys, args=args)
        out = []
        for req, (granted, reason, n, m) in zip(requests, replies, strict=True):
            if isinstance(reason, bytes):
                reason = reason.decode()
            out.append(CapResult(request=req, granted=bool(granted), reason=reason or None,
                                 issued_at=now,
                                 budget=None if n == -1 else BudgetCounter(int(n), int(m))))
        return out

    def release(self, member_id: str, results: Sequence[CapResult]) -> None:
        granted = [r for r in results if r.granted]
        if not granted:
            return
        keys = [self.keys.state(member_id)]
        args: list[str | int] = []
        for r in granted:
            bidx = 0
            if r.request.budget is not None:
                keys.append(self.keys.budget(*r.request.budget))
                bidx = len(keys)
            args += [r.request.offer_id, r.issued_at, bidx, r.request.charge_minor,
                     int(r.request.count_impression)]
        with self._guard("release"):
            self._release(keys=keys, args=args)

    def budget_usage(self, refs: Sequence[BudgetRef]) -> dict[BudgetRef, BudgetCounter]:
        if not refs:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for key, period in refs:
            pipe.hmget(self.keys.budget(key, period), "n", "m")
        with self._guard("budget_usage"):
            replies = pipe.execute()
        return {ref: _budget(r) for ref, r in zip(refs, replies, strict=True)}

    # -- coupons -----------------------------------------------------------------------
    def put_coupon(self, code: str, record: bytes, ttl_seconds: int) -> bool:
        with self._guard("put_coupon"):
            return bool(self.client.set(self.keys.coupon(code), record, nx=True, ex=max(ttl_seconds, 1)))

    def get_coupon(self, code: str) -> bytes | None:
        with self._guard("get_coupon"):
            value = self.client.get(self.keys.coupon(code))
        return None if value is None else cast(bytes, value)

    # -- idempotency -----------------------------------------------------------------------
    def idempotency_begin(self, key: str, request_hash: str, lock_seconds: int) -> StoredResponse | None:
        pending = codec.encode_response(StoredResponse(request_hash=request_hash))
        with self._guard("idempotency_begin"):
            # SET NX GET: claim the key, or read the record that holds it, atomically.
            old = self.client.set(self.keys.idempotency(key), pending, nx=True, get=True,
                                  ex=max(lock_seconds, 1))
        return None if old is None else codec.decode_response(cast(bytes, old))

    def idempotency_finish(self, key: str, response: StoredResponse) -> None:
        with self._guard("idempotency_finish"):
            self.client.set(self.keys.idempotency(key), codec.encode_response(response),
                            ex=self.ttls.idempotency)

    def idempotency_abort(self, key: str) -> None:
        with self._guard("idempotency_abort"):
            self.client.delete(self.keys.idempotency(key))

    # -- operations -----------------------------------------------------------------------
    def ping(self) -> None:
        with self._guard("ping"):
            self.client.ping()

    def close(self) -> None:
        self.client.close()
