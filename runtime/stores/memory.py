"""The :class:`~runtime.stores.interfaces.Store` in the worker's memory, for REDIS_URL unset.

Same keys, same TTLs, same encodings as Redis (it reuses :mod:`.rules_python`); one lock makes
every operation atomic, as a Lua script is in Redis. Each gunicorn worker has its own
copy, so with several workers state, caps and de-duplication are per worker: fine for a
demo or for tests, not for production (use Redis there). Expired entries are dropped
when touched and by a sweep every few thousand writes, so memory stays bounded by what
is alive.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from models import points_account
from runtime.stores import (
    budget_rules,
    coupon_records,
    encoding,
    referral_rules,
    rules_python,
)
from runtime.stores.contact_rules import ContactTally
from runtime.stores.interfaces import NullObserver, Store, StoreObserver, TTLs
from runtime.stores.keys import KeySpace
from runtime.stores.two_phase import TwoPhaseReservations
from runtime.stores.values import (
    CLAIM_AGAIN,
    CLAIM_OK,
    MEMBER_CAP_REACHED,
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

_SWEEP_EVERY = 4096


class MemoryStore(TwoPhaseReservations, Store):
    """Store in a dict guarded by a lock; see the module docstring."""

    kind = "memory"

    def __init__(self, keys: KeySpace | None = None, ttls: TTLs | None = None,
                 observer: StoreObserver | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time):
        self.keys = keys or KeySpace()
        self.ttls = ttls or TTLs()
        self.observer: StoreObserver = observer or NullObserver()
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        #: key -> (expires at, by self._clock; value)
        self._data: dict[str, tuple[float, Any]] = {}
        self._writes = 0

    # -- primitive operations (call with the lock held) ------------------------------
    def _get(self, key: str) -> Any:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._data[key]
            return None
        return entry[1]

    def _set(self, key: str, value: Any, ttl: float) -> None:
        self._data[key] = (self._clock() + ttl, value)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            now = self._clock()
            for k in [k for k, (exp, _) in self._data.items() if exp <= now]:
                del self._data[k]

    def _keep(self, key: str, value: Any) -> None:
        """Replace a value without touching its expiry (like HSET on an existing key)."""
        expires = self._data[key][0]
        self._data[key] = (expires, value)

    def ttl(self, key: str) -> float | None:
        """Seconds left for ``key``, None when absent (for tests and the admin view)."""
        with self._lock:
            if self._get(key) is None:
                return None
            return self._data[key][0] - self._clock()

    def keys_alive(self) -> list[str]:
        """Every live key (for tests)."""
        with self._lock:
            return [k for k in list(self._data) if self._get(k) is not None]

    # -- reads --------------------------------------------------------------------
    def _bundle(self, member_id: str, model_version: str | None,
                budgets: Sequence[BudgetRef] = (), points: bool = False) -> MemberBundle:
        fields = self._get(self.keys.state(member_id)) or {}
        scores = None
        if model_version is not None:
            scores = encoding.decode_scores((self._get(self.keys.cache(member_id)) or {}).get(encoding.cache_field(model_version)))
            self.observer.cache_lookup(scores is not None)
        history = self._get(self.keys.history(member_id))
        return MemberBundle(
            state=encoding.decode_state(member_id, fields), model_version=model_version,
            scores=scores,
            budgets={ref: self._budget(ref) for ref in budgets},
            history=None if history is None else bytes(history),
            profile=encoding.decode_profile(self._get(self.keys.profile(member_id))),
            generation=self._get(self.keys.generation()),
            points=dict(self._get(self.keys.points(member_id)[0]) or {}) if points else None)

    def _budget(self, ref: BudgetRef) -> BudgetCounter:
        return self._get(self.keys.budget(*ref)) or BudgetCounter()

    def fetch_member(self, member_id: str, model_version: str | None = None,
                     budgets: Sequence[BudgetRef] = (), points: bool = False) -> MemberBundle:
        with self._lock:
            return self._bundle(member_id, model_version, budgets, points)

    def fetch_members(self, member_ids: Sequence[str], model_version: str | None = None,
                      points: bool = False) -> list[MemberBundle]:
        with self._lock:
            return [self._bundle(m, model_version, points=points) for m in member_ids]

    # -- history and profile -------------------------------------------------------
    def put_members(self, members: Sequence[MemberWrite]) -> None:
        with self._lock:
            for m in members:
                self._set(self.keys.history(m.member_id), bytes(m.records), self.ttls.state)
                self._set(self.keys.profile(m.member_id), encoding.encode_profile(m.profile), self.ttls.state)
                self._data.pop(self.keys.cache(m.member_id), None)

    def _append(self, ev: StateEvent) -> None:
        """Append an event's history record (call with the lock held); see the Lua twin."""
        pkey, hkey = self.keys.profile(ev.member_id), self.keys.history(ev.member_id)
        profile = self._get(pkey)
        if not rules_python.append_allowed(profile, ev.fingerprint):
            self._set(pkey, profile, self.ttls.state)
            return
        if profile is None:
            profile = {b"fp": ev.fingerprint.encode()}
        self._set(hkey, (self._get(hkey) or b"") + ev.record, self.ttls.state)
        self._set(pkey, profile, self.ttls.state)

    # -- score cache ---------------------------------------------------------------
    def put_scores(self, member_id: str, model_version: str,
                   scores: Sequence[float] | np.ndarray) -> None:
        self.put_scores_many(model_version, {member_id: scores})

    def put_scores_many(self, model_version: str,
                        items: Mapping[str, Sequence[float] | np.ndarray]) -> None:
        encoded = {m: encoding.encode_scores(s) for m, s in items.items()}
        with self._lock:
            for member_id, blob in encoded.items():
                key = self.keys.cache(member_id)
                current = dict(self._get(key) or {})
                current[encoding.cache_field(model_version)] = blob
                self._set(key, current, self.ttls.cache)

    def invalidate(self, member_id: str) -> None:
        with self._lock:
            self._data.pop(self.keys.cache(member_id), None)

    # -- events ------------------------------------------------------------------------
    def events_seen(self, event_ids: Sequence[str], member_ids: Sequence[str] | None = None) -> list[bool]:
        with self._lock:
            return [self._get(self.keys.event(e)) is not None for e in event_ids]

    def apply_events(self, events: Sequence[StateEvent]) -> list[bool]:
        cutoff = rules_python.month_cutoff(self._wall_clock())
        out = []
        with self._lock:
            for ev in events:
                dedup = self.keys.event(ev.event_id)
                if self._get(dedup) is not None:
                    out.append(False)
                    continue
                self._set(dedup, b"1", self.ttls.event_dedup)
                if ev.record:
                    self._append(ev)
                key = self.keys.state(ev.member_id)
                fields = dict(self._get(key) or {})
                rules_python.apply_event(fields, ev, cutoff)
                self._set(key, fields, self.ttls.state)
                self._data.pop(self.keys.cache(ev.member_id), None)
                out.append(True)
        return out

    # -- caps and budgets (the primitives of two_phase) ----------------------------------------
    def _reserve_budgets(self, requests: Sequence[CapRequest]) -> list[tuple[bool, str | None, BudgetCounter | None]]:
        out: list[tuple[bool, str | None, BudgetCounter | None]] = []
        with self._lock:
            for req in requests:
                claims = req.claims
                current = [self._budget(c.ref) for c in claims]
                reason = budget_rules.refusal(claims, current)
                if reason is None:
                    current = [budget_rules.charged(c, cur) for c, cur in zip(claims, current, strict=True)]
                    for c, cur in zip(claims, current, strict=True):
                        self._set(self.keys.budget(*c.ref), cur, c.ttl_seconds or self.ttls.budget)
                out.append((reason is None, reason, current[0] if current else None))
        return out

    def _release_budgets(self, claims: Sequence[BudgetClaim]) -> None:
        with self._lock:
            for c in claims:
                key = self.keys.budget(*c.ref)
                cur = self._get(key)
                if cur is not None:
                    self._keep(key, budget_rules.released(c, cur))

    def _member_reserve(self, member_id: str, requests: Sequence[CapRequest], now: int) -> list[CapResult]:
        out = []
        with self._lock:
            key = self.keys.state(member_id)
            fields = dict(self._get(key) or {})
            granted_any = False
            for req in requests:
                granted, reason = rules_python.reserve_one(fields, req, now)
                granted_any |= granted
                out.append(CapResult(request=req, granted=granted, reason=reason, issued_at=now))
            if granted_any:
                self._set(key, fields, self.ttls.state)
        return out

    def _member_release(self, member_id: str, results: Sequence[CapResult]) -> None:
        with self._lock:
            fields = self._get(self.keys.state(member_id))
            if fields is not None:
                for r in results:
                    rules_python.release_one(fields, r.request, r.issued_at)

    def budget_usage(self, refs: Sequence[BudgetRef]) -> dict[BudgetRef, BudgetCounter]:
        with self._lock:
            return {ref: self._budget(ref) for ref in refs}

    def _member_commit_many(self, commits: Sequence[tuple[str, Sequence[CapRequest], Sequence[CouponWrite | None],
                                                          CacheWrite | None]],
                            now: int, contacts: Sequence[Sequence[ContactLimit]]) -> list[CommitResult]:
        return [self._member_commit(m, r, c, now, cache, contact)
                for (m, r, c, cache), contact in zip(commits, contacts, strict=True)]

    def _member_commit(self, member_id: str, requests: Sequence[CapRequest],
                       coupons: Sequence[CouponWrite | None], now: int,
                       cache: CacheWrite | None, contact: Sequence[ContactLimit]) -> CommitResult:
        """One member's side of a commit under the lock (the twin of the Lua ``COMMIT``)."""
        caps: list[CapResult] = []
        stored: list[bool] = []
        reused: list[bytes | None] = []
        with self._lock:
            key, wkey = self.keys.state(member_id), self.keys.wallet(member_id)
            fields = dict(self._get(key) or {})
            tally = ContactTally(fields, contact)
            granted_any = False
            for req, coupon in zip(requests, coupons, strict=True):
                held = (self._get(wkey) or {}).get(req.offer_id) if coupon is not None else None
                again = coupon_records.live_unredeemed(held, now)
                if again and not tally.refused() and rules_python.cap_reached(fields, req, now):
                    caps.append(CapResult(request=req, granted=False, reason=MEMBER_CAP_REACHED, issued_at=now))
                    stored.append(False)
                    reused.append(None)
                    continue
                if again and not tally.refused():
                    tally.count()
                    caps.append(CapResult(request=req, granted=True, reason=None, issued_at=now, reserved=False))
                    stored.append(False)
                    reused.append(held)
                    continue
                taken = coupon is not None and self._get(self.keys.coupon(coupon.code)) is not None
                result, store_coupon = rules_python.commit_one(fields, req, now, coupon, taken, tally)
                if store_coupon and coupon is not None:
                    self._set(self.keys.coupon(coupon.code), bytes(coupon.record), max(coupon.ttl_seconds, 1))
                    self._hold(wkey, req.offer_id, bytes(coupon.record), max(coupon.ttl_seconds, 1))
                granted_any |= result.granted
                caps.append(result)
                stored.append(store_coupon)
                reused.append(None)
            tally.save(fields)
            if granted_any or tally.counted:
                self._set(key, fields, self.ttls.state)
            cached = rules_python.cache_allowed(cache, self._get(self.keys.history(member_id)))
            if cached and cache is not None:
                ckey = self.keys.cache(member_id)
                current = dict(self._get(ckey) or {})
                current[encoding.cache_field(cache.slot)] = encoding.encode_scores(cache.scores)
                self._set(ckey, current, self.ttls.cache)
        return CommitResult(caps=caps, coupons_stored=stored, cache_written=cached, coupons_reused=reused)

    def _hold(self, wkey: str, offer_id: str, record: bytes, ttl: float) -> None:
        """Put a coupon in a member's wallet (lock held); the wallet lives as long as its
        longest-lived coupon, like the Lua ``EXPIRE`` when the TTL is shorter."""
        wallet = dict(self._get(wkey) or {})
        wallet[offer_id] = record
        left = self._data[wkey][0] - self._clock() if wkey in self._data else 0.0
        self._set(wkey, wallet, max(ttl, left))

    # -- coupons ---------------------------------------------------------------------------
    def put_coupon(self, code: str, record: bytes, ttl_seconds: int) -> bool:
        with self._lock:
            key = self.keys.coupon(code)
            if self._get(key) is not None:
                return False
            self._set(key, bytes(record), max(ttl_seconds, 1))
            return True

    def get_coupon(self, code: str) -> bytes | None:
        with self._lock:
            value = self._get(self.keys.coupon(code))
            return None if value is None else bytes(value)

    def redeem_coupons(self, claims: Sequence[CouponClaim]) -> list[ClaimResult]:
        with self._lock:
            claimed: dict[str, tuple[str, int]] = {}
            records = [self._get(self.keys.coupon(c.code)) for c in claims]
            statuses = [coupon_records.check_claim(r, c, claimed) for r, c in zip(records, claims, strict=True)]
            if all(s in (CLAIM_OK, CLAIM_AGAIN) for s in statuses):
                for i, (c, status) in enumerate(zip(claims, statuses, strict=True)):
                    if status == CLAIM_OK:
                        records[i] = coupon_records.redeemed(records[i], c)
                        self._keep(self.keys.coupon(c.code), records[i])
                        wallet = self._get(self.keys.wallet(c.member_id))
                        if wallet is not None:
                            self._keep(self.keys.wallet(c.member_id),
                                       {k: v for k, v in wallet.items() if k != c.offer_id})
            return [ClaimResult(s, None if r is None else bytes(r)) for s, r in zip(statuses, records, strict=True)]

    def unredeem_coupons(self, claims: Sequence[CouponClaim]) -> None:
        with self._lock:
            for c in claims:
                key = self.keys.coupon(c.code)
                record = self._get(key)
                undone = None if record is None else coupon_records.unredeemed(record, c.event_id)
                if undone is not None:
                    self._keep(key, undone)
                    left = self._data[key][0] - self._clock()
                    self._hold(self.keys.wallet(c.member_id), coupon_records.offer_of(undone), undone, left)

    # -- idempotency -------------------------------------------------------------------------
    # -- points -----------------------------------------------------------------
    def post_points(self, member_id: str, postings: Sequence[Mapping[str, object]], now: int,
                    keep: int = 20) -> dict[str, object]:
        account_key, entries_key, causes_key = self.keys.points(member_id)
        with self._lock:
            causes = dict(self._get(causes_key) or {})
            fields, reply = points_account.post(self._get(account_key) or {}, causes, member_id, postings, now)
            entries = reply["entries"]
            if fields:  # as the script: the account is written (and its TTL renewed) at every call
                self._set(account_key, fields, self.ttls.state)
            if entries:
                self._set(entries_key, [*reversed(entries), *(self._get(entries_key) or [])][:keep],
                          self.ttls.state)
            if causes:
                self._set(causes_key, causes, self.ttls.state)
        return json.loads(json.dumps(reply))

    def subscribe_plan(self, member_id: str, plan: str, term_seconds: int, now: int, cause: str) -> dict[str, object]:
        account_key, _, causes_key = self.keys.points(member_id)
        with self._lock:
            fields = dict(self._get(account_key) or {})
            causes = dict(self._get(causes_key) or {})
            reply = points_account.subscribe(fields, causes, plan, term_seconds, now, cause)
            self._set(account_key, fields, self.ttls.state)
            self._set(causes_key, causes, self.ttls.state)
            return reply

    def points_account(self, member_id: str) -> dict[str, int]:
        with self._lock:
            return dict(self._get(self.keys.points(member_id)[0]) or {})

    def points_entries(self, member_id: str, limit: int = 20) -> list[dict[str, object]]:
        with self._lock:
            return json.loads(json.dumps((self._get(self.keys.points(member_id)[1]) or [])[:limit]))

    # -- referrals -------------------------------------------------------------
    def claim_referral_code(self, member_id: str, candidate: str) -> str:
        key = self.keys.referral(member_id)
        with self._lock:
            fields = dict(self._get(key) or {})
            owner = self._get(self.keys.referral_code(candidate))
            codes = {} if owner is None else {candidate: owner}
            code = referral_rules.claim_code(fields, codes, member_id, candidate)
            if code == candidate and owner is None:
                self._set(self.keys.referral_code(candidate), member_id, self.ttls.state)
                self._set(key, fields, self.ttls.state)
            return code

    def referral_owner(self, code: str) -> str | None:
        with self._lock:
            owner = self._get(self.keys.referral_code(code))
            return None if owner is None else str(owner)

    def referrals(self, member_ids: Sequence[str]) -> list[dict[str, str]]:
        with self._lock:
            return [{k: str(v) for k, v in (self._get(self.keys.referral(m)) or {}).items()} for m in member_ids]

    def link_referral(self, referee_id: str, referrer_id: str, now: int, limit: int) -> str:
        with self._lock:
            referee = dict(self._get(self.keys.referral(referee_id)) or {})
            referrer = dict(self._get(self.keys.referral(referrer_id)) or {})
            status = referral_rules.link(referee, referrer, referee_id, referrer_id, now, limit)
            if status == "linked":
                self._set(self.keys.referral(referee_id), referee, self.ttls.state)
                self._set(self.keys.referral(referrer_id), referrer, self.ttls.state)
            return status

    def idempotency_begin(self, key: str, request_hash: str, lock_seconds: int) -> StoredResponse | None:
        with self._lock:
            k = self.keys.idempotency(key)
            old = self._get(k)
            if old is not None:
                return encoding.decode_response(old)
            self._set(k, encoding.encode_response(StoredResponse(request_hash=request_hash)),
                      max(lock_seconds, 1))
            return None

    def idempotency_finish(self, key: str, response: StoredResponse) -> None:
        with self._lock:
            self._set(self.keys.idempotency(key), encoding.encode_response(response),
                      self.ttls.idempotency)

    def idempotency_abort(self, key: str) -> None:
        with self._lock:
            self._data.pop(self.keys.idempotency(key), None)

    def records_get(self, keys: Sequence[str]) -> list[bytes | None]:
        with self._lock:
            return [self._get(self.keys.idempotency(k)) for k in keys]

    def records_put(self, items: Mapping[str, bytes]) -> None:
        with self._lock:
            for key, value in items.items():
                self._set(self.keys.idempotency(key), bytes(value), self.ttls.idempotency)

    # -- operations ------------------------------------------------------------------------------
    # -- catalog changes ----------------------------------------------------------------
    def put_catalog(self, fingerprint: str, ids: bytes) -> None:
        with self._lock:
            self._set(self.keys.catalog(fingerprint), bytes(ids), self.ttls.state)

    def get_catalog(self, fingerprint: str) -> bytes | None:
        with self._lock:
            value = self._get(self.keys.catalog(fingerprint))
        return None if value is None else bytes(value)

    def upgrade_member(self, write: MemberWrite, history_length: int, fingerprint: str) -> bool:
        with self._lock:
            hkey, pkey = self.keys.history(write.member_id), self.keys.profile(write.member_id)
            profile = self._get(pkey) or {}
            if len(self._get(hkey) or b"") != history_length or profile.get(b"fp") != fingerprint.encode():
                return False
            self._set(hkey, bytes(write.records), self.ttls.state)
            self._set(pkey, encoding.encode_profile(write.profile), self.ttls.state)
            return True

    # -- generation marker -------------------------------------------------------------
    def put_generation(self, generation: str) -> None:
        with self._lock:
            self._set(self.keys.generation(), generation, self.ttls.state)

    def generation(self, renew: bool = False) -> str | None:
        with self._lock:
            value = self._get(self.keys.generation())
            if value is not None and renew:
                self._set(self.keys.generation(), value, self.ttls.state)
            return None if value is None else str(value)

    def ping(self) -> None:
        """Always answers: the store is this process."""
