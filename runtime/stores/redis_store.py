"""The :class:`~runtime.stores.interfaces.Store` on Redis (its atomic rules: :mod:`.rules_lua`).

Round trips: :meth:`RedisStore.fetch_member` is one pipeline (HGETALL state, HGET the
cached vector, HMGET budgets, GET history, HGETALL profile); :meth:`~RedisStore.fetch_members`,
:meth:`~RedisStore.put_members` and :meth:`~RedisStore.put_scores_many` are one pipeline
for any number of members; :meth:`~RedisStore.apply_events` is one Lua script call
(atomic), whatever the batch. Reservations (:meth:`~RedisStore.reserve`,
:meth:`~RedisStore.commit_decision`, :meth:`~RedisStore.commit_many`) follow
:mod:`.two_phase`: one budget script call in the ``{budgets}`` slot when a request has a
budget, then the member scripts (one pipeline for a batch), then a give-back call only when
something was refused.

Failure: connection errors, timeouts and "the server cannot write now" replies
(LOADING, READONLY, MISCONF, OOM) raise :class:`StoreUnavailable` after one immediate
retry (which heals a pooled connection that the server closed); timeouts are short
(``OFFERS_REDIS_TIMEOUT_MS``), there is no back-off sleep, and the next call simply
connects again, so the service recovers by itself when Redis comes back.

On a Redis Cluster (:mod:`.cluster`, the client a :class:`redis.cluster.RedisCluster`) the
keys carry each member's id as a hash tag (:class:`KeySpace` with ``cluster=True``), event
application runs one script per member (all of them in one cluster pipeline), and the
pipelines over several members are cluster pipelines that redis-py splits per node.

Why one module of about 460 lines: it is one class implementing every store capability
(:mod:`runtime.stores.interfaces`) on Redis; its methods share the pipelining, script
registration and error translation, and each is a few lines over a Lua script or a pipeline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import RedisClusterException, SlotNotCoveredError
from redis.retry import Retry

from runtime.stores import (
    budgets_lua,
    cluster_coupons,
    cluster_referrals,
    encoding,
    points_lua,
    referrals_lua,
    rules_lua,
    rules_python,
)
from runtime.stores import cluster as cluster_client
from runtime.stores.interfaces import (
    NullObserver,
    Store,
    StoreError,
    StoreObserver,
    StoreUnavailable,
    TTLs,
)
from runtime.stores.keys import KeySpace
from runtime.stores.two_phase import TwoPhaseReservations
from runtime.stores.values import (
    RECENT_LIMIT,
    SUBJECT_CODES,
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
    MemberWrite,
    StateEvent,
    StoredResponse,
)

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


def _text(value: object) -> str | None:
    """A Redis string reply as text (None stays None)."""
    return value.decode() if isinstance(value, bytes) else None if value is None else str(value)


def _budget(reply: Sequence[bytes | None]) -> BudgetCounter:
    n, m = reply
    return BudgetCounter(int(n or 0), int(m or 0))


def _entry(entry: dict[str, object]) -> dict[str, object]:
    """An entry as Lua's cjson wrote it, with an empty ``m`` as an object (cjson cannot tell)."""
    if entry.get("m") == []:
        entry["m"] = {}
    return entry


def _lists(reply: dict[str, object]) -> dict[str, object]:
    """A points reply with cjson's empty tables (``{}``) read back as the empty lists they are."""
    for name in ("results", "entries", "lots"):
        if reply.get(name) == {}:
            reply[name] = []
    reply["entries"] = [_entry(e) for e in reply["entries"]]  # type: ignore[attr-defined]
    return reply


class RedisStore(TwoPhaseReservations, Store):
    """Store on a Redis server; see the module docstring for round trips and failures."""

    kind = "redis"

    def __init__(self, client: redis.Redis | RedisCluster | cluster_client.LazyCluster, keys: KeySpace | None = None, ttls: TTLs | None = None,
                 observer: StoreObserver | None = None,
                 wall_clock: Callable[[], float] = time.time):
        # a RedisCluster (or LazyCluster, which makes one) answers the same commands
        self.client: redis.Redis = cast(redis.Redis, client)
        self._wall_clock = wall_clock
        #: True on a Redis Cluster: hash-tagged keys, per-member scripts, cluster pipelines
        self.cluster = isinstance(client, RedisCluster | cluster_client.LazyCluster)
        self.keys = keys or KeySpace(cluster=self.cluster)
        if self.keys.cluster != self.cluster:
            raise ValueError("a RedisCluster client needs KeySpace(cluster=True), and only it does")
        self._scripts_loaded = False
        #: cluster: the generation marker last read, used while its master is away
        self._generation_seen: object = None
        self.ttls = ttls or TTLs()
        self.observer: StoreObserver = observer or NullObserver()
        self._apply = client.register_script(rules_lua.APPLY_EVENTS)
        self._reserve = client.register_script(rules_lua.RESERVE)
        self._release = client.register_script(rules_lua.RELEASE)
        self._commit = client.register_script(rules_lua.COMMIT)
        self._budgets = client.register_script(budgets_lua.RESERVE_BUDGETS)
        self._budgets_back = client.register_script(budgets_lua.RELEASE_BUDGETS)
        self._upgrade = client.register_script(rules_lua.UPGRADE_MEMBER)
        self._redeem = client.register_script(rules_lua.REDEEM)
        self._unredeem = client.register_script(rules_lua.UNREDEEM)
        self._points = client.register_script(points_lua.POST_POINTS)
        self._subscribe = client.register_script(points_lua.SUBSCRIBE)
        self._claim_code = client.register_script(referrals_lua.CLAIM_CODE)
        self._link = client.register_script(referrals_lua.LINK)
        self._link_steps = {"reserve": client.register_script(referrals_lua.LINK_RESERVE),
                            "set": client.register_script(referrals_lua.LINK_SET),
                            "release": client.register_script(referrals_lua.LINK_RELEASE)}
        self._pipelined_scripts = (self._apply, self._commit, self._points)

    def _pipeline(self, scripts: bool = False) -> redis.client.Pipeline:
        """A non-transactional pipeline (a cluster pipeline on a cluster, split per node by redis-py).

        A cluster pipeline cannot load a script, so before the first one that queues scripts
        they are loaded on every master (:func:`.cluster.load_scripts`)."""
        if scripts and self.cluster and not self._scripts_loaded:
            with self._guard("script_load"):
                cluster_client.load_scripts(cast(RedisCluster, self.client), self._pipelined_scripts)
            self._scripts_loaded = True
        with self._guard("connect"):  # a cluster client connects on first use
            return cast(redis.client.Pipeline, self.client.pipeline(transaction=False))

    @contextmanager
    def _guard(self, operation: str) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError, SlotNotCoveredError, redis.exceptions.ClusterDownError) as exc:
            # a cluster master that died or whose slots nobody serves yet is an outage too
            self.observer.store_error(operation)
            raise StoreUnavailable(f"redis {operation}: {exc}") from exc
        except RedisClusterException as exc:
            self.observer.store_error(operation)
            raise StoreError(f"redis {operation}: {exc}") from exc
        except redis.ResponseError as exc:
            self.observer.store_error(operation)
            if cluster_client.is_noscript(exc):
                # a promoted replica or an emptied master lacks the scripts: load them again
                # on the next pipeline; this call failed before its script ran
                self._scripts_loaded = False
            if (str(exc).startswith(_UNAVAILABLE_REPLIES) or isinstance(exc, redis.ReadOnlyError)
                    or cluster_client.is_noscript(exc)):
                raise StoreUnavailable(f"redis {operation}: {exc}") from exc
            raise StoreError(f"redis {operation}: {exc}") from exc
        except redis.RedisError as exc:
            self.observer.store_error(operation)
            raise StoreError(f"redis {operation}: {exc}") from exc

    # -- reads ------------------------------------------------------------------
    def _queue_member(self, pipe: redis.client.Pipeline, member_id: str, slot: str | None,
                      points: bool = False) -> None:
        pipe.hgetall(self.keys.state(member_id))
        if slot is not None:
            pipe.hget(self.keys.cache(member_id), encoding.cache_field(slot))
        pipe.get(self.keys.history(member_id))
        pipe.hgetall(self.keys.profile(member_id))
        if points:
            pipe.hgetall(self.keys.points(member_id)[0])

    def _bundle(self, member_id: str, slot: str | None, replies: Sequence[object],
                budgets: Mapping[BudgetRef, BudgetCounter] | None = None,
                generation: object = None, points: bool = False) -> MemberBundle:
        it = iter(replies)
        fields = next(it)
        scores = encoding.decode_scores(next(it)) if slot is not None else None  # type: ignore[arg-type]
        history, profile = next(it), next(it)
        account = {_text(k) or "": int(v) for k, v in cast(dict[bytes, bytes], next(it)).items()} if points else None
        if slot is not None:
            self.observer.cache_lookup(scores is not None)
        return MemberBundle(
            state=encoding.decode_state(member_id, fields),  # type: ignore[arg-type]
            model_version=slot, scores=scores, budgets=dict(budgets or {}),
            history=None if history is None else cast(bytes, history),
            profile=encoding.decode_profile(profile),  # type: ignore[arg-type]
            generation=_text(generation), points=account)

    def _execute_with_marker(self, queue: Callable[[redis.client.Pipeline], None],
                             operation: str) -> tuple[object, list[object]]:
        """One read pipeline: GET the generation marker, then what ``queue`` adds; (marker, its replies).

        On a cluster the marker is one key on one master; when that master is away, the
        pipeline is sent again without it (a second round trip, only then), so the members
        on the other masters are still read, with the marker this store last read (None
        before any: the decision then withholds capped offers as for a lost store). The
        members' own commands still fail the call when their master is away."""
        def run(marker: bool) -> list[object]:
            pipe = self._pipeline()
            if marker:
                pipe.get(self.keys.generation())
            queue(pipe)
            return cast(list[object], pipe.execute(raise_on_error=not self.cluster))

        missing = object()
        with self._guard(operation):
            if not self.cluster:
                generation, *replies = run(True)
                return generation, replies
            try:
                generation, *replies = run(True)
            except (redis.ConnectionError, redis.TimeoutError, SlotNotCoveredError,
                    redis.exceptions.ClusterDownError):
                generation, replies = missing, run(False)
            failed = next((r for r in replies if isinstance(r, Exception)), None)
            if failed is not None:
                raise failed
        if generation is missing or isinstance(generation, Exception):
            self.observer.store_error(operation)
            return self._generation_seen, replies
        self._generation_seen = generation
        return generation, replies

    def fetch_member(self, member_id: str, model_version: str | None = None,
                     budgets: Sequence[BudgetRef] = (), points: bool = False) -> MemberBundle:
        def queue(pipe: redis.client.Pipeline) -> None:
            self._queue_member(pipe, member_id, model_version, points)
            for key, period in budgets:
                pipe.hmget(self.keys.budget(key, period), "n", "m")

        generation, replies = self._execute_with_marker(queue, "fetch_member")
        head = len(replies) - len(budgets)
        return self._bundle(member_id, model_version, replies[:head],
                            {ref: _budget(cast(Sequence[bytes | None], r)) for ref, r in zip(budgets, replies[head:], strict=True)},
                            generation, points)

    def fetch_members(self, member_ids: Sequence[str], model_version: str | None = None,
                      points: bool = False) -> list[MemberBundle]:
        def queue(pipe: redis.client.Pipeline) -> None:
            for member_id in member_ids:
                self._queue_member(pipe, member_id, model_version, points)

        generation, replies = self._execute_with_marker(queue, "fetch_members")
        step = 3 + (model_version is not None) + points
        return [self._bundle(member_id, model_version, replies[i * step:(i + 1) * step], generation=generation,
                             points=points)
                for i, member_id in enumerate(member_ids)]

    # -- history and profile ---------------------------------------------------
    def put_members(self, members: Sequence[MemberWrite]) -> None:
        if not members:
            return
        pipe = self._pipeline()
        ttl = self.ttls.state
        for m in members:
            profile_key = self.keys.profile(m.member_id)
            pipe.set(self.keys.history(m.member_id), m.records, ex=ttl)
            if self.cluster:  # a cluster pipeline's DEL takes one key
                pipe.delete(profile_key)
                pipe.delete(self.keys.cache(m.member_id))
            else:
                pipe.delete(profile_key, self.keys.cache(m.member_id))
            pipe.hset(profile_key, mapping=encoding.encode_profile(m.profile))  # type: ignore[arg-type]
            pipe.expire(profile_key, ttl)
        with self._guard("put_members"):
            pipe.execute()

    # -- score cache ------------------------------------------------------------------
    def put_scores(self, member_id: str, model_version: str,
                   scores: Sequence[float] | np.ndarray) -> None:
        self.put_scores_many(model_version, {member_id: scores})

    def put_scores_many(self, model_version: str,
                        items: Mapping[str, Sequence[float] | np.ndarray]) -> None:
        pipe = self._pipeline()
        for member_id, scores in items.items():
            key = self.keys.cache(member_id)
            pipe.hset(key, encoding.cache_field(model_version), encoding.encode_scores(scores))
            pipe.expire(key, self.ttls.cache)
        with self._guard("put_scores"):
            pipe.execute()

    def invalidate(self, member_id: str) -> None:
        with self._guard("invalidate"):
            self.client.delete(self.keys.cache(member_id))

    # -- events --------------------------------------------------------------------
    def events_seen(self, event_ids: Sequence[str], member_ids: Sequence[str] | None = None) -> list[bool]:
        if not event_ids:
            return []
        # one MGET (the markers are strings) instead of a pipeline of EXISTS: one command to
        # encode and parse however many events the request carries
        if self.cluster:
            if member_ids is None:
                raise ValueError("events_seen on a Redis Cluster needs each event's member id")
            keys = [self.keys.event(e, m) for e, m in zip(event_ids, member_ids, strict=True)]
            with self._guard("events_seen"):  # one MGET per slot, sent node by node
                values = cast(RedisCluster, self.client).mget_nonatomic(keys)
            return [v is not None for v in values]
        with self._guard("events_seen"):
            return [v is not None for v in self.client.mget([self.keys.event(e) for e in event_ids])]

    def apply_events(self, events: Sequence[StateEvent]) -> list[bool]:
        if not events:
            return []
        if self.cluster:
            return self._apply_events_per_member(events)
        keys, args = self._apply_call(events)
        with self._guard("apply_events"):
            result = self._apply(keys=keys, args=args)
        return [bool(n) for n in result]

    def _run_scripts(self, calls: Sequence[tuple[Script, list[str], list[str | int | bytes]]],
                     operation: str) -> list[Any]:
        """Run script calls in one pipeline; their replies in order.

        On a cluster a master may lack a script (a replica promoted since they were loaded):
        the calls it refused with NOSCRIPT never ran, so only those are sent again, once,
        after loading the scripts on every master; the others are not run twice."""
        def send(todo: Sequence[tuple[Script, list[str], list[str | int | bytes]]]) -> list[Any]:
            pipe = self._pipeline(scripts=True)
            for script, keys, args in todo:
                script(keys=keys, args=args, client=pipe)
            return cast(list[Any], pipe.execute(raise_on_error=not self.cluster))

        with self._guard(operation):
            replies = send(calls)
            if not self.cluster:
                return replies
            again = [i for i, r in enumerate(replies) if isinstance(r, Exception) and cluster_client.is_noscript(r)]
            if again:
                self._scripts_loaded = False
                for i, reply in zip(again, send([calls[i] for i in again]), strict=True):
                    replies[i] = reply
            failed = next((r for r in replies if isinstance(r, Exception)), None)
            if failed is not None:
                raise failed
        return replies

    def _apply_events_per_member(self, events: Sequence[StateEvent]) -> list[bool]:
        """Cluster: one APPLY script per member (its keys share a slot), all in one cluster pipeline.

        Each member's events keep their order; members are independent, so splitting the
        batch by member changes no outcome."""
        by_member: dict[str, list[int]] = {}
        for i, ev in enumerate(events):
            by_member.setdefault(ev.member_id, []).append(i)
        calls = [(self._apply, *self._apply_call([events[i] for i in positions])) for positions in by_member.values()]
        replies = self._run_scripts(calls, "apply_events")
        out = [False] * len(events)
        for positions, reply in zip(by_member.values(), replies, strict=True):
            for i, n in zip(positions, reply, strict=True):
                out[i] = bool(n)
        return out

    def _apply_call(self, events: Sequence[StateEvent]) -> tuple[list[str], list[str | int | bytes]]:
        """The APPLY script's keys and arguments for ``events``."""
        keys: list[str] = []
        args: list[str | int | bytes] = [self.ttls.event_dedup, self.ttls.state, RECENT_LIMIT,
                                 rules_python.month_cutoff(self._wall_clock())]
        for ev in events:
            keys += [self.keys.event(ev.event_id, ev.member_id), self.keys.state(ev.member_id),
                     self.keys.cache(ev.member_id)]
            keys += [self.keys.history(ev.member_id), self.keys.profile(ev.member_id)]
            code = "txn" if ev.type == "transaction" else SUBJECT_CODES[ev.type]
            args += [code, ev.ts, ev.offer_id or "", ev.amount_minor, ev.month, ev.record,
                     ev.fingerprint]
        return keys, args

    # -- caps and budgets (the primitives of two_phase) ---------------------------------------
    def _reserve_budgets(self, requests: Sequence[CapRequest]) -> list[tuple[bool, str | None, BudgetCounter | None]]:
        keys: list[str] = []
        index: dict[str, int] = {}
        args: list[str | int] = [0]
        for req in requests:
            claims = req.claims
            args.append(len(claims))
            for c in claims:
                key = self.keys.budget(c.key, c.period)
                if key not in index:
                    keys.append(key)
                    index[key] = len(keys)
                args += [index[key], _or_minus(c.count_limit), _or_minus(c.minor_limit), _or_minus(c.paced_count),
                         _or_minus(c.paced_minor), c.charge_minor, c.ttl_seconds or self.ttls.budget]
        with self._guard("reserve_budgets"):
            replies = self._budgets(keys=keys, args=args)
        return [(bool(g), _text(r) or None, None if n == -1 else BudgetCounter(int(n), int(m)))
                for g, r, n, m in replies]

    def _release_budgets(self, claims: Sequence[BudgetClaim]) -> None:
        keys: list[str] = []
        args: list[int] = []
        for c in claims:
            keys.append(self.keys.budget(c.key, c.period))
            args += [len(keys), c.charge_minor]
        with self._guard("release_budgets"):
            self._budgets_back(keys=keys, args=args)

    @staticmethod
    def _request_args(req: CapRequest) -> list[str | int | bytes]:
        """The 4 member-script arguments of one request."""
        return [req.offer_id, _or_minus(req.member_limit), _or_minus(req.member_window_seconds),
                int(req.count_impression)]

    def _member_reserve(self, member_id: str, requests: Sequence[CapRequest], now: int) -> list[CapResult]:
        if not requests:
            return []
        args: list[str | int | bytes] = [self.ttls.state, now, RECENT_LIMIT]
        for req in requests:
            args += self._request_args(req)
        with self._guard("reserve"):
            replies = self._reserve(keys=[self.keys.state(member_id)], args=args)
        return [CapResult(request=req, granted=bool(g), reason=_text(r) or None, issued_at=now)
                for req, (g, r) in zip(requests, replies, strict=True)]

    def _commit_call(self, member_id: str, requests: Sequence[CapRequest],
                     coupons: Sequence[CouponWrite | None], now: int,
                     cache: CacheWrite | None, contact: Sequence[ContactLimit]) -> tuple[list[str], list[str | int | bytes]]:
        keys = [self.keys.state(member_id), self.keys.cache(member_id), self.keys.history(member_id),
                self.keys.wallet(member_id)]
        args: list[str | int | bytes] = [
            self.ttls.state, now, RECENT_LIMIT, b"" if cache is None else encoding.cache_field(cache.slot),
            b"" if cache is None else encoding.encode_scores(cache.scores), self.ttls.cache,
            -1 if cache is None else cache.history_length, len(contact)]
        for c in contact:
            args += [c.name, c.period, _or_minus(c.max_offers), _or_minus(c.max_contacts)]
        for req, coupon in zip(requests, coupons, strict=True):
            args += self._request_args(req)
            if coupon is None:
                args += [0, b"", 0]
            else:
                keys.append(self.keys.coupon(coupon.code))
                args += [len(keys), coupon.record, max(coupon.ttl_seconds, 1)]
        return keys, args

    @staticmethod
    def _commit_result(requests: Sequence[CapRequest], reply: Sequence[object], now: int) -> CommitResult:
        cached, rows = reply
        rows = list(rows)  # type: ignore[call-overload]
        return CommitResult(caps=[CapResult(request=req, granted=bool(row[0]), reason=_text(row[1]) or None,
                                            issued_at=now, reserved=row[4] != 2)
                                  for req, row in zip(requests, rows, strict=True)],
                            coupons_stored=[row[4] == 1 for row in rows], cache_written=bool(cached),
                            coupons_reused=[bytes(row[5]) if row[4] == 2 else None for row in rows])

    def _member_commit_many(self, commits: Sequence[tuple[str, Sequence[CapRequest], Sequence[CouponWrite | None],
                                                          CacheWrite | None]],
                            now: int, contacts: Sequence[Sequence[ContactLimit]]) -> list[CommitResult]:
        todo = [(i, c) for i, c in enumerate(commits) if c[1] or c[3] is not None]
        out = [CommitResult([], [], False) for _ in commits]
        if not todo:
            return out
        if len(todo) == 1 and not self.cluster:  # one EVALSHA: a pipeline would add a SCRIPT EXISTS round trip
            i, (member_id, requests, coupons, cache) = todo[0]
            keys, args = self._commit_call(member_id, requests, coupons, now, cache, contacts[i])
            with self._guard("commit_decision"):
                out[i] = self._commit_result(requests, self._commit(keys=keys, args=args), now)
            return out
        calls = [(self._commit, *self._commit_call(member_id, requests, coupons, now, cache, contacts[i]))
                 for i, (member_id, requests, coupons, cache) in todo]
        replies = self._run_scripts(calls, "commit_many")
        for (i, (_, requests, _, _)), reply in zip(todo, replies, strict=True):
            out[i] = self._commit_result(requests, reply, now)
        return out

    def _member_release(self, member_id: str, results: Sequence[CapResult]) -> None:
        args: list[str | int] = []
        for r in results:
            args += [r.request.offer_id, r.issued_at, int(r.request.count_impression)]
        with self._guard("release"):
            self._release(keys=[self.keys.state(member_id)], args=args)

    def budget_usage(self, refs: Sequence[BudgetRef]) -> dict[BudgetRef, BudgetCounter]:
        if not refs:
            return {}
        pipe = self._pipeline()
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

    def _claim_keys(self, claim: CouponClaim) -> list[str]:
        """A claim's coupon record and its member's wallet (one slot when the member holds it)."""
        return [self.keys.coupon(claim.code), self.keys.wallet(claim.member_id)]

    def redeem_coupons(self, claims: Sequence[CouponClaim]) -> list[ClaimResult]:
        if not claims:
            return []
        if self.cluster:
            groups = cluster_coupons.slots_of(claims, self._claim_keys)
            if len(groups) > 1 or -1 in groups:  # several members, or a member who does not hold the code
                with self._guard("redeem_coupons"):
                    pipe = self._pipeline()
                    for c in claims:
                        pipe.get(self.keys.coupon(c.code))
                    records = pipe.execute()
                return cluster_coupons.redeem_across_slots(claims, records, groups, self._redeem_one_slot,
                                                           self.unredeem_coupons)
        return self._redeem_one_slot(claims)

    def _redeem_one_slot(self, claims: Sequence[CouponClaim]) -> list[ClaimResult]:
        """One atomic REDEEM script for ``claims`` (all of one slot on a cluster)."""
        keys: list[str] = []
        args: list[str | int] = []
        for c in claims:
            keys += self._claim_keys(c)
            args += [c.member_id, c.offer_id, c.at, c.event_id]
        with self._guard("redeem_coupons"):
            replies = self._redeem(keys=keys, args=args)
        return [ClaimResult(status=status.decode(), record=bytes(record) or None) for status, record in replies]

    def unredeem_coupons(self, claims: Sequence[CouponClaim]) -> None:
        if not claims:
            return
        groups = (cluster_coupons.slots_of(claims, self._claim_keys) if self.cluster
                  else {0: list(range(len(claims)))})
        groups.pop(-1, None)  # a claim by a member who does not hold the code was never made
        for idx in groups.values():  # undoing is per claim: one script per slot needs no atomicity across them
            keys: list[str] = []
            for i in idx:
                keys += self._claim_keys(claims[i])
            with self._guard("unredeem_coupons"):
                self._unredeem(keys=keys, args=[claims[i].event_id for i in idx])

    # -- idempotency -----------------------------------------------------------------------
    # -- points -----------------------------------------------------------------
    def post_points(self, member_id: str, postings: Sequence[Mapping[str, object]], now: int,
                    keep: int = 20) -> dict[str, object]:
        with self._guard("post_points"):
            reply = self._points(keys=list(self.keys.points(member_id)),
                                 args=[now, self.ttls.state, keep, member_id,
                                       json.dumps(list(postings), separators=(",", ":"))])
        return _lists(json.loads(reply))

    def subscribe_plan(self, member_id: str, plan: str, term_seconds: int, now: int, cause: str) -> dict[str, object]:
        account, _, causes = self.keys.points(member_id)
        with self._guard("subscribe_plan"):
            reply = self._subscribe(keys=[account, causes], args=[plan, term_seconds, now, cause, self.ttls.state])
        out: dict[str, object] = json.loads(reply)
        return out

    def points_account(self, member_id: str) -> dict[str, int]:
        with self._guard("points_account"):
            raw = self.client.hgetall(self.keys.points(member_id)[0])
        return {_text(k) or "": int(v) for k, v in cast(dict[bytes, bytes], raw).items()}

    def post_points_many(self, items: Sequence[tuple[str, Sequence[Mapping[str, object]]]], now: int,
                         keep: int = 20) -> list[dict[str, object]]:
        if len(items) <= 1:
            return [self.post_points(m, ps, now, keep) for m, ps in items]
        calls: list[tuple[Script, list[str], list[str | int | bytes]]] = [
            (self._points, list(self.keys.points(member_id)),
             [now, self.ttls.state, keep, member_id, json.dumps(list(postings), separators=(",", ":"))])
            for member_id, postings in items]
        replies = self._run_scripts(calls, "post_points_many")
        return [_lists(json.loads(r)) for r in replies]

    def points_entries(self, member_id: str, limit: int = 20) -> list[dict[str, object]]:
        with self._guard("points_entries"):
            raw = self.client.lrange(self.keys.points(member_id)[1], 0, limit - 1)
        return [_entry(json.loads(r)) for r in raw]

    # -- referrals -------------------------------------------------------------
    def claim_referral_code(self, member_id: str, candidate: str) -> str:
        with self._guard("claim_referral_code"):
            got = self._claim_code(keys=[self.keys.referral(member_id), self.keys.referral_code(candidate)],
                                   args=[member_id, candidate, self.ttls.state])
        return _text(got) or ""

    def referral_owner(self, code: str) -> str | None:
        with self._guard("referral_owner"):
            return _text(self.client.get(self.keys.referral_code(code)))

    def referrals(self, member_ids: Sequence[str]) -> list[dict[str, str]]:
        pipe = self._pipeline()
        for member_id in member_ids:
            pipe.hgetall(self.keys.referral(member_id))
        with self._guard("referrals"):
            replies = pipe.execute()
        return [{_text(k) or "": _text(v) or "" for k, v in r.items()} for r in replies]

    def link_referral(self, referee_id: str, referrer_id: str, now: int, limit: int) -> str:
        referee, referrer = self.keys.referral(referee_id), self.keys.referral(referrer_id)
        if self.cluster:  # two members' slots: three one-slot steps (runtime.stores.cluster_referrals)
            with self._guard("link_referral"):
                by = _text(self.client.hget(referee, "by"))

                def run(step: str, key: str, args: list[str | int]) -> str:
                    return _text(self._link_steps[step](keys=[key], args=args)) or ""

                return cluster_referrals.link_across_slots(referee_id, referrer_id, now, limit, self.ttls.state,
                                                           referee, referrer, by, run)
        with self._guard("link_referral"):
            status = self._link(keys=[referee, referrer], args=[referee_id, referrer_id, now, limit, self.ttls.state])
        return _text(status) or ""

    def idempotency_begin(self, key: str, request_hash: str, lock_seconds: int) -> StoredResponse | None:
        pending = encoding.encode_response(StoredResponse(request_hash=request_hash))
        with self._guard("idempotency_begin"):
            # SET NX GET: claim the key, or read the record that holds it, atomically.
            old = self.client.set(self.keys.idempotency(key), pending, nx=True, get=True,
                                  ex=max(lock_seconds, 1))
        return None if old is None else encoding.decode_response(cast(bytes, old))

    def idempotency_finish(self, key: str, response: StoredResponse) -> None:
        with self._guard("idempotency_finish"):
            self.client.set(self.keys.idempotency(key), encoding.encode_response(response),
                            ex=self.ttls.idempotency)

    def idempotency_abort(self, key: str) -> None:
        with self._guard("idempotency_abort"):
            self.client.delete(self.keys.idempotency(key))

    def records_get(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        names = [self.keys.idempotency(k) for k in keys]
        with self._guard("records_get"):
            values = (cast(RedisCluster, self.client).mget_nonatomic(names) if self.cluster
                      else self.client.mget(names))
        return [None if v is None else cast(bytes, v) for v in values]

    def records_put(self, items: Mapping[str, bytes]) -> None:
        if not items:
            return
        pipe = self._pipeline()
        for key, value in items.items():
            pipe.set(self.keys.idempotency(key), value, ex=self.ttls.idempotency)
        with self._guard("records_put"):
            pipe.execute()

    # -- catalog changes ----------------------------------------------------------------
    def put_catalog(self, fingerprint: str, ids: bytes) -> None:
        with self._guard("put_catalog"):
            self.client.set(self.keys.catalog(fingerprint), ids, ex=self.ttls.state)

    def get_catalog(self, fingerprint: str) -> bytes | None:
        with self._guard("get_catalog"):
            value = self.client.get(self.keys.catalog(fingerprint))
        return None if value is None else cast(bytes, value)

    def upgrade_member(self, write: MemberWrite, history_length: int, fingerprint: str) -> bool:
        args: list[str | int | bytes] = [history_length, fingerprint, write.records, self.ttls.state]
        for name, value in encoding.encode_profile(write.profile).items():
            args += [name, value]
        with self._guard("upgrade_member"):
            done = self._upgrade(keys=[self.keys.history(write.member_id), self.keys.profile(write.member_id)],
                                 args=args)
        return bool(done)

    # -- generation marker ---------------------------------------------------------------
    def put_generation(self, generation: str) -> None:
        with self._guard("put_generation"):
            self.client.set(self.keys.generation(), generation, ex=self.ttls.state)

    def generation(self, renew: bool = False) -> str | None:
        key = self.keys.generation()
        with self._guard("generation"):
            value = self.client.getex(key, ex=self.ttls.state) if renew else self.client.get(key)
        return _text(value)

    # -- operations -----------------------------------------------------------------------
    def ping(self) -> None:
        with self._guard("ping"):
            self.client.ping()

    def close(self) -> None:
        self.client.close()
