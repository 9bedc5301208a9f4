"""The online store, one interface per capability.

A decision, an event or a job needs only some of what the store keeps, so the store is
described capability by capability; each is an abstract class a caller can type against:

* :class:`MemberStore` - a member's state, history records and profile (``fetch_member``
  reads state, cached scores and budget counters in one round trip), events applied
  atomically with de-duplication, histories rewritten under a new catalog;
* :class:`ScoreCache` - propensity vectors per member and cache slot;
* :class:`Reservations` - member caps, contact caps and global budgets, checked and
  reserved atomically (budgets in their own slot first, :mod:`runtime.stores.two_phase`),
  and a decision's whole write (reservations, coupons, score cache);
* :class:`CouponStore` - coupon records and their atomic, all-or-none redemption;
* :class:`PointsStore` - members' points accounts, posted to atomically and idempotently
  by cause (:mod:`models.points_account`);
* :class:`IdempotencyStore` - claimed idempotency keys, stored responses and side records;
* :class:`StoreHousekeeping` - the catalog ids of earlier catalogs, the generation marker
  that tells a store that lost its data, and the connection itself.

:class:`Store` is all of them: :class:`~runtime.stores.redis_store.RedisStore` implements
it on Redis (the atomic parts as Lua scripts, :mod:`runtime.stores.rules_lua`) and
:class:`~runtime.stores.memory.MemoryStore` in the worker's memory (the same rules in
Python, :mod:`runtime.stores.rules_python`); ``tests/test_service_stores.py`` runs one
behavioural suite against both. Every key a store writes has a TTL (:class:`TTLs`).

Errors::

    StoreError            a store operation failed for a reason that is a bug (wrong type...)
    └── StoreUnavailable  the backend is unreachable or timed out: catch it and carry on
                          without the cache (scores computed fresh), or answer 503
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from runtime.errors import OffersRuntimeError
from runtime.stores.keys import KeySpace
from runtime.stores.values import (
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


class StoreError(OffersRuntimeError):
    """A store operation failed for a reason other than availability."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or did not answer in time; the caller may carry on without it."""


class StoreObserver(Protocol):
    """What a store reports as it works (the service's metrics implement this)."""

    def store_error(self, operation: str) -> None: ...

    def cache_lookup(self, hit: bool) -> None: ...


class NullObserver:
    """An observer that records nothing."""

    def store_error(self, operation: str) -> None:
        pass

    def cache_lookup(self, hit: bool) -> None:
        pass


@dataclass(frozen=True)
class TTLs:
    """Lifetimes (seconds) of everything a store writes; every key gets one."""

    state: int = 400 * 86400
    cache: int = 3600
    event_dedup: int = 7 * 86400
    idempotency: int = 48 * 3600
    budget: int = 400 * 86400


class MemberStore(ABC):
    """A member's state, history records and profile; events applied to them."""

    # -- reads for decisions -------------------------------------------------
    @abstractmethod
    def fetch_member(self, member_id: str, model_version: str | None = None,
                     budgets: Sequence[BudgetRef] = (), points: bool = False) -> MemberBundle:
        """State + cached scores for ``model_version`` + budget counters (+ the points account
        with ``points``), in one round trip."""

    @abstractmethod
    def fetch_members(self, member_ids: Sequence[str], model_version: str | None = None,
                      points: bool = False) -> list[MemberBundle]:
        """Bundles (without budgets; with ``points``, their points accounts) for many members, in one round trip."""

    # -- history and profile ---------------------------------------------------
    @abstractmethod
    def put_members(self, members: Sequence[MemberWrite]) -> None:
        """Replace members' history and profile (and drop their cached scores), one round trip."""

    # -- events ---------------------------------------------------------------
    @abstractmethod
    def events_seen(self, event_ids: Sequence[str], member_ids: Sequence[str] | None = None) -> list[bool]:
        """Whether each event id was already applied (read-only, one round trip).

        ``member_ids`` (each event's member) is needed by the Redis Cluster layout, whose
        event markers live in their member's slot; the other layouts ignore it."""

    @abstractmethod
    def apply_events(self, events: Sequence[StateEvent]) -> list[bool]:
        """Apply events atomically: de-duplicate by event_id, update state, invalidate the
        member's cache. Returns per event True when applied, False when a duplicate."""

    # -- catalog changes ---------------------------------------------------------------
    @abstractmethod
    def upgrade_member(self, write: MemberWrite, history_length: int, fingerprint: str) -> bool:
        """Replace a member's history and profile with ``write`` only if the stored history still
        has ``history_length`` bytes under profile ``fingerprint`` (atomic; no event is lost to a
        race). Returns whether it was replaced. Cached scores are left alone."""


class ScoreCache(ABC):
    """Cached propensity vectors per member and cache slot (read with the member)."""

    # -- score cache -----------------------------------------------------------
    @abstractmethod
    def put_scores(self, member_id: str, model_version: str, scores: Sequence[float] | np.ndarray) -> None:
        """Cache a member's propensity vector for a model version (float32)."""

    @abstractmethod
    def put_scores_many(self, model_version: str,
                        items: Mapping[str, Sequence[float] | np.ndarray]) -> None:
        """Cache many members' vectors in one round trip."""

    @abstractmethod
    def invalidate(self, member_id: str) -> None:
        """Drop every cached vector of a member (all model versions)."""


class Reservations(ABC):
    """Member caps and global budgets, reserved atomically; a decision's whole write."""

    # -- caps and budgets -------------------------------------------------------
    @abstractmethod
    def reserve(self, member_id: str, requests: Sequence[CapRequest], now: int) -> list[CapResult]:
        """Atomically check-and-increment member caps and budgets, request by request."""

    @abstractmethod
    def release(self, member_id: str, results: Sequence[CapResult]) -> None:
        """Undo granted reservations (when the decision that made them fails)."""

    @abstractmethod
    def budget_usage(self, refs: Sequence[BudgetRef]) -> dict[BudgetRef, BudgetCounter]:
        """Current budget consumption (zero when absent)."""

    @abstractmethod
    def commit_decision(self, member_id: str, requests: Sequence[CapRequest],
                        coupons: Sequence[CouponWrite | None], now: int,
                        cache: CacheWrite | None = None, contact: Sequence[ContactLimit] = ()) -> CommitResult:
        """A decision's whole write: reserve each request as :meth:`reserve` does (budgets in
        their slot, then the member's caps and ``contact`` caps atomically,
        :mod:`runtime.stores.two_phase`), store the coupon of each granted request (SET NX), and
        cache the scores (see :class:`CacheWrite`). ``coupons`` is aligned with ``requests``."""

    @abstractmethod
    def commit_many(self, commits: Sequence[tuple[str, Sequence[CapRequest], Sequence[CouponWrite | None],
                                                  CacheWrite | None]],
                    now: int, contacts: Sequence[Sequence[ContactLimit]] | None = None) -> list[CommitResult]:
        """:meth:`commit_decision` for many members (batch decisions), ``contacts`` aligned with
        ``commits``; each member's commit is atomic on its own, the budgets of all of them are
        one atomic step. The Redis store sends the member steps in one pipeline."""


class CouponStore(ABC):
    """Coupon records and their atomic, all-or-none redemption."""

    # -- coupons ----------------------------------------------------------------
    @abstractmethod
    def put_coupon(self, code: str, record: bytes, ttl_seconds: int) -> bool:
        """Store a coupon record under its normalised code unless the code exists."""

    @abstractmethod
    def get_coupon(self, code: str) -> bytes | None:
        """The record of a normalised code, or None."""

    @abstractmethod
    def redeem_coupons(self, claims: Sequence[CouponClaim]) -> list[ClaimResult]:
        """Check and redeem coupons atomically, all or none, in one round trip.

        Each claim is checked (the code exists, belongs to the member and the offer, is
        not redeemed by another event, has not expired at the claim's time; a code claimed
        twice in the call by different events counts as redeemed the second time). Only
        when every claim passes are the new ones written: ``redeemed_at`` and
        ``redeemed_event_id`` in the record (its TTL kept) and the coupon dropped from the
        member's held coupons, so the next decision draws a new code.
        """

    @abstractmethod
    def unredeem_coupons(self, claims: Sequence[CouponClaim]) -> None:
        """Undo claims this call's events made (when what follows the claim failed)."""


class PointsStore(ABC):
    """Members' points accounts: postings applied atomically, each cause at most once."""

    @abstractmethod
    def post_points(self, member_id: str, postings: Sequence[Mapping[str, object]], now: int,
                    keep: int = 20) -> dict[str, object]:
        """Apply ``postings`` (plain dicts, :func:`runtime.points.ledger.wire`) to the member's
        account at ``now`` in one atomic step (:mod:`models.points_account`): due lots
        expire, each posting is applied unless its cause was, burns that the balance does not
        cover are refused. With no postings it only applies expiry and returns the account.
        The reply: per posting a status, the new entries and the account."""

    def post_points_many(self, items: Sequence[tuple[str, Sequence[Mapping[str, object]]]], now: int,
                         keep: int = 20) -> list[dict[str, object]]:
        """:meth:`post_points` for several members (each atomic on its own); Redis sends them in one pipeline."""
        return [self.post_points(m, ps, now, keep) for m, ps in items]

    @abstractmethod
    def subscribe_plan(self, member_id: str, plan: str, term_seconds: int, now: int, cause: str) -> dict[str, object]:
        """Start or renew a paid plan atomically, once per ``cause``: ``{status, expires_at}``
        (status ``started``, ``renewed`` or ``duplicate``)."""

    @abstractmethod
    def points_account(self, member_id: str) -> dict[str, int]:
        """The member's stored account fields as they are (read-only: no expiry applied)."""

    @abstractmethod
    def points_entries(self, member_id: str, limit: int = 20) -> list[dict[str, object]]:
        """The member's most recent entries, newest first (at most ``keep`` are kept)."""


class ReferralStore(ABC):
    """Referral codes and the links between referrers and the members they brought."""

    @abstractmethod
    def claim_referral_code(self, member_id: str, candidate: str) -> str:
        """The member's referral code: theirs, else ``candidate`` if free ('' when taken: draw again)."""

    @abstractmethod
    def referral_owner(self, code: str) -> str | None:
        """The member who holds referral ``code``, None when no one does."""

    @abstractmethod
    def referrals(self, member_ids: Sequence[str]) -> list[dict[str, str]]:
        """Each member's referral fields (``code``, ``by``, ``at``, ``n``), one round trip."""

    @abstractmethod
    def link_referral(self, referee_id: str, referrer_id: str, now: int, limit: int) -> str:
        """Record a referral atomically: ``linked``, or why not (``self``, ``loop``,
        ``already_referred``, ``limit``; :mod:`runtime.stores.referrals_lua`)."""


class IdempotencyStore(ABC):
    """Claimed idempotency keys, stored responses and side records."""

    # -- idempotency --------------------------------------------------------------
    @abstractmethod
    def idempotency_begin(self, key: str, request_hash: str, lock_seconds: int) -> StoredResponse | None:
        """Claim ``key`` for a request: None when claimed (go ahead), else the existing record."""

    @abstractmethod
    def idempotency_finish(self, key: str, response: StoredResponse) -> None:
        """Store the response of a claimed key for the idempotency TTL."""

    @abstractmethod
    def idempotency_abort(self, key: str) -> None:
        """Release a claimed key without a response, so the client may retry."""

    @abstractmethod
    def records_get(self, keys: Sequence[str]) -> list[bytes | None]:
        """Idempotency side records (a batch's per-member lines) by digest, one round trip."""

    @abstractmethod
    def records_put(self, items: Mapping[str, bytes]) -> None:
        """Store side records for the idempotency TTL, one round trip."""


class StoreHousekeeping(ABC):
    """Catalog ids, the generation marker and the connection."""

    @abstractmethod
    def put_catalog(self, fingerprint: str, ids: bytes) -> None:
        """Store the ids of a catalog (:func:`models.features.online.catalog_ids`) under its fingerprint."""

    @abstractmethod
    def get_catalog(self, fingerprint: str) -> bytes | None:
        """The ids stored for ``fingerprint``, None when absent."""

    # -- generation marker ----------------------------------------------------------
    @abstractmethod
    def put_generation(self, generation: str) -> None:
        """Write the generation marker (``offers materialize`` does, after writing every member).

        Every read of a member returns the marker too (:attr:`MemberBundle.generation`), so a
        store that lost its data (a Redis restarted without persistence, a failover to an
        empty replica) is noticed by the next decision without an extra round trip.
        """

    @abstractmethod
    def generation(self, renew: bool = False) -> str | None:
        """The generation marker, None when absent; ``renew`` also restarts its TTL."""

    # -- operations -------------------------------------------------------------
    @abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable when the backend does not answer."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class Store(MemberStore, ScoreCache, Reservations, CouponStore, PointsStore, ReferralStore, IdempotencyStore,
            StoreHousekeeping):
    """Every capability at once: what a Redis or in-process store implements (module docstring)."""

    #: "redis" or "memory"
    kind: str
    #: the key layout (single Redis or cluster), which coupon codes depend on
    keys: KeySpace
