"""The values the online stores trade in: a member's state, profile and history bundle,
the writes a decision or an event makes, reservations and their results, coupon claims
and stored responses. Plain frozen dataclasses; :mod:`runtime.stores.interfaces` says which
store capability reads or writes each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

#: How many recent timestamps each (subject, offer) counter keeps. Windowed counts up to
#: this are exact; beyond it they are a conservative upper bound (OfferCounter.count_since).
RECENT_LIMIT = 8
#: Months of spend counters kept (enough for an annual tier window plus the previous one).
MONTHS_KEPT = 25

Subject = Literal["impression", "click", "issue", "redeem", "dismiss"]
#: Subject -> the one-letter code that starts its counters' field names (``<code><offer id>``;
#: upper case, so never confused with the lower-case scalar and month fields).
SUBJECT_CODES: dict[str, str] = {
    "impression": "I", "click": "C", "issue": "S", "redeem": "R", "dismiss": "D"}
CODE_SUBJECTS: dict[str, str] = {v: k for k, v in SUBJECT_CODES.items()}
#: Subject codes in the order an offer's counters are kept in its one state field (``o<offer>``).
SUBJECT_ORDER: tuple[str, ...] = tuple(SUBJECT_CODES.values())
#: Longest ``o<offer>`` value: a counter that would make it longer gets a field of its own,
#: so no value reaches Redis' ``hash-max-listpack-value`` (64) and the hash stays a listpack.
OFFER_VALUE_MAX = 63

MEMBER_CAP_REACHED = "MEMBER_CAP_REACHED"
BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
#: refused by a budget's pacing only (the period's limit would still allow it)
BUDGET_PACED = "BUDGET_PACED"
#: refused by the member's contact policy (offers or contacts per period)
CONTACT_CAPPED = "CONTACT_CAPPED"


@dataclass(frozen=True)
class OfferCounter:
    """How often something happened to one offer for one member.

    ``total`` counts every occurrence while the member's state lives; ``recent`` holds
    the epoch seconds of the last :data:`RECENT_LIMIT` occurrences, oldest first.
    """

    total: int = 0
    recent: tuple[int, ...] = ()

    def count_since(self, since: int | None) -> int:
        """Occurrences at or after ``since`` (epoch s; None: ever).

        Exact up to :data:`RECENT_LIMIT` occurrences in the window. When every kept
        timestamp is inside the window there may have been more than were kept, and the
        count is ``total``: an upper bound, so a cap above RECENT_LIMIT errs towards
        "reached", never towards over-exposure. The Lua scripts count the same way.
        """
        if since is None:
            return self.total
        n = sum(1 for t in self.recent if t >= since)
        if len(self.recent) >= RECENT_LIMIT and self.recent[0] >= since:
            return max(n, self.total)
        return n

    def reached(self, limit: int, since: int | None = None) -> bool:
        """Whether ``limit`` occurrences happened since ``since`` (or ever)."""
        return self.count_since(since) >= limit


@dataclass(frozen=True)
class MemberState:
    """A member's online state: what events told the service since the state was created.

    The state expires ``OFFERS_STATE_TTL_SECONDS`` after its last write; a member never
    seen has an empty state (``exists`` False). Months are ``YYYYMM`` in the program's
    time zone.
    """

    member_id: str
    last_seen: int | None = None
    last_purchase: int | None = None
    spend_minor: int = 0
    purchases: int = 0
    monthly_spend: Mapping[str, int] = field(default_factory=dict)
    monthly_purchases: Mapping[str, int] = field(default_factory=dict)
    counters: Mapping[tuple[str, str], OfferCounter] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.last_seen is not None or bool(self.counters)

    def counter(self, subject: str, offer_id: str) -> OfferCounter:
        """The (subject, offer) counter; zero when nothing happened."""
        return self.counters.get((subject, offer_id), OfferCounter())

    def counts(self, subject: str, now: int,
               windows: Mapping[str, int | None]) -> dict[str, int]:
        """Per offer, occurrences of ``subject`` within its window (seconds; None: ever).

        ``windows`` names the offers to count; offers with nothing to count are left out.
        This is what the decision core's cap counters want, e.g.
        ``CapCounters(impressions=state.counts("impression", now, windows), ...)``.
        """
        out = {}
        for offer_id, window in windows.items():
            c = self.counters.get((subject, offer_id))
            if c is not None:
                n = c.count_since(None if window is None else now - window)
                if n:
                    out[offer_id] = n
        return out

    def spend_in_months(self, first: str, last: str) -> int:
        """Spend in minor units over the months ``first``..``last`` inclusive (``YYYYMM``)."""
        return sum(v for m, v in self.monthly_spend.items() if first <= m <= last)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view (for the admin endpoint and logs)."""
        return {
            "member_id": self.member_id,
            "last_seen": self.last_seen,
            "last_purchase": self.last_purchase,
            "spend_minor": self.spend_minor,
            "purchases": self.purchases,
            "monthly_spend": dict(sorted(self.monthly_spend.items())),
            "monthly_purchases": dict(sorted(self.monthly_purchases.items())),
            "counters": [
                {"subject": s, "offer_id": o, "total": c.total, "recent": list(c.recent)}
                for (s, o), c in sorted(self.counters.items())
            ],
        }


BudgetRef = tuple[str, str]
"""(budget_key, period): one budget, e.g. ("supplier-x", "2024-06") or ("welcome", "total")."""


@dataclass(frozen=True)
class BudgetCounter:
    """What a budget has consumed: issues reserved and money reserved (minor units)."""

    count: int = 0
    minor: int = 0


@dataclass(frozen=True)
class MemberProfile:
    """What a member's history records need beside them, stored in the profile hash.

    ``fingerprint`` is the :func:`models.features.online.catalog_fingerprint` of the
    catalog the records were written under (they are only valid with it); the others
    are the member attributes eligibility reads. ``joined_at`` is in local program
    seconds, like the records' times. ``channels`` None means unknown (no channel is
    ruled out), as in the data contract. ``attributes`` are the member's typed ``attr_*``
    columns as (name, value) pairs (numbers as floats, categories as strings; missing
    values left out), which uplift models score from; None when the data has none.
    """

    fingerprint: str
    joined_at: int | None = None
    segment: str | None = None
    birth_month: int | None = None
    channels: tuple[str, ...] | None = None
    attributes: tuple[tuple[str, str | float], ...] | None = None


@dataclass(frozen=True)
class MemberBundle:
    """Everything a real-time decision reads for one member, fetched in one round trip."""

    state: MemberState
    model_version: str | None
    #: Cached propensities for ``model_version`` (float32, read-only), None on a miss.
    scores: np.ndarray | None
    #: Consumption of each budget asked for (zero when the counter does not exist).
    budgets: Mapping[BudgetRef, BudgetCounter] = field(default_factory=dict)
    #: The member's history records (:mod:`models.features.online`), None when absent.
    history: bytes | None = None
    #: The member's profile, None when absent (a member never materialized nor seen).
    profile: MemberProfile | None = None
    #: The store's generation marker, read in the same round trip (:meth:`Store.generation`);
    #: None means the store lost its data (or was never materialized): caps and budgets in it
    #: cannot be trusted.
    generation: str | None = None
    #: The member's points account fields as stored (read when asked for: ``points=True``),
    #: None when not read; :func:`models.points_account.view_at` gives the balance.
    points: Mapping[str, int] | None = None

    @property
    def cache_hit(self) -> bool:
        return self.scores is not None

    @property
    def history_length(self) -> int:
        """Bytes of history read: a cache write is only valid while it is unchanged."""
        return len(self.history or b"")


@dataclass(frozen=True)
class StateEvent:
    """A feedback event reduced to what the online state needs."""

    event_id: str
    member_id: str
    #: impression, click, redeem, dismiss or transaction
    type: str
    ts: int
    offer_id: str | None = None
    amount_minor: int = 0
    #: ``YYYYMM`` of ``ts`` in the program's time zone
    month: str = ""
    #: History record bytes to append to the member's history (empty: none)
    record: bytes = b""
    #: Catalog fingerprint the record was encoded under; it is appended only when the
    #: member's profile has this fingerprint (or the member has no profile yet)
    fingerprint: str = ""


@dataclass(frozen=True)
class MemberWrite:
    """A member's materialized history and profile (``offers materialize``)."""

    member_id: str
    records: bytes
    profile: MemberProfile


@dataclass(frozen=True)
class CacheWrite:
    """Scores to cache with a decision's write, if the member's history is unchanged.

    ``history_length`` is the length of the history the scores were computed from; the
    store writes the vector only while the stored history still has that length, so an
    event that arrived in between (and dropped the cache) is never overwritten with
    scores that ignore it.
    """

    slot: str
    scores: np.ndarray
    history_length: int


@dataclass(frozen=True)
class CouponWrite:
    """A coupon record to store (SET NX) when its offer's reservation is granted."""

    code: str
    record: bytes
    ttl_seconds: int


@dataclass(frozen=True)
class CommitResult:
    """Outcome of :meth:`Store.commit_decision`: per request the reservation and whether
    its coupon was stored (False when none was asked for, refused, or the code collided).

    ``coupons_reused`` holds, per request, the record of the member's live, unredeemed
    coupon for the offer when one was handed out again instead of a new code (nothing
    was reserved for it then), else None.
    """

    caps: list[CapResult]
    coupons_stored: list[bool]
    cache_written: bool
    coupons_reused: list[bytes | None] = field(default_factory=list)


#: Outcomes of a coupon claim (:meth:`Store.redeem_coupons`).
CLAIM_OK = "ok"              # redeemed now
CLAIM_AGAIN = "again"        # already redeemed by this very event (a retry)
CLAIM_MISSING = "missing"    # no such code (never issued, or expired and dropped)
CLAIM_MEMBER = "member"      # the coupon belongs to another member
CLAIM_OFFER = "offer"        # the coupon is for another offer
CLAIM_EXPIRED = "expired"    # the claim's time is at or after the coupon's expiry
CLAIM_REDEEMED = "redeemed"  # already redeemed by another event


@dataclass(frozen=True)
class CouponClaim:
    """Redeem coupon ``code`` (normalised) for ``member_id`` and ``offer_id`` at ``at``
    (epoch s), as event ``event_id`` (a retry with the same event id is not a second use)."""

    code: str
    member_id: str
    offer_id: str
    at: int
    event_id: str


@dataclass(frozen=True)
class ClaimResult:
    """A claim's outcome (one of the ``CLAIM_*`` values) and the coupon record as it stands
    after the call (None when the code is unknown)."""

    status: str
    record: bytes | None = None

    @property
    def ok(self) -> bool:
        """The coupon is redeemed by this claim's event (now or by an earlier attempt)."""
        return self.status in (CLAIM_OK, CLAIM_AGAIN)


@dataclass(frozen=True)
class BudgetClaim:
    """One budget an issue draws on: its counter (key, period id), limits, pacing allowances,
    charge and the counter's lifetime.

    ``paced_count`` / ``paced_minor`` are what the budget's pacing allows spent so far
    (:func:`models.budgets.paced`; None: the limit). A claim that fits the limit but not the
    allowance is refused as ``BUDGET_PACED``, one that does not fit the limit ``BUDGET_EXHAUSTED``.
    """

    key: str
    period: str = "total"
    count_limit: int | None = None
    minor_limit: int | None = None
    charge_minor: int = 0
    ttl_seconds: int | None = None
    paced_count: int | None = None
    paced_minor: int | None = None

    @property
    def ref(self) -> BudgetRef:
        return (self.key, self.period)


@dataclass(frozen=True)
class ContactLimit:
    """One contact cap a decision counts against (:class:`models.limits_config.ContactCap`):
    its ``name`` (``all.week``), the current period's id, and its limits (None: none)."""

    name: str
    period: str
    max_offers: int | None = None
    max_contacts: int | None = None


@dataclass(frozen=True)
class CapRequest:
    """Reserve one issue of an offer for a member, within a member cap and a budget.

    Parameters
    ----------
    offer_id
        The offer to issue.
    member_limit
        Most issues of this offer to this member (in the window); None for no member cap.
    member_window_seconds
        Rolling window of the member cap; None counts every issue while the state lives
        (see :meth:`OfferCounter.count_since` for limits above RECENT_LIMIT).
    budget_key
        The budget this issue draws on (offers may share one); None for no budget.
    budget_period
        Which period's counter of the budget (``"2024-06"``, ``"total"``).
    budget_count_limit, budget_minor_limit
        Most issues / most money (minor units) the budget may reserve; None: unlimited.
    charge_minor
        Money this issue reserves from the budget.
    budget_ttl_seconds
        Lifetime of the budget counter from its first use; None uses the store default.
    budgets
        Further budgets the issue draws on (a campaign's, a funder's...); all of them and the
        one above are reserved together or not at all (:attr:`claims`).
    count_impression
        Also count an impression of the offer when granted (the decision core counts a
        returned offer as an impression and an issue).
    """

    offer_id: str
    member_limit: int | None = None
    member_window_seconds: int | None = None
    budget_key: str | None = None
    budget_period: str = "total"
    budget_count_limit: int | None = None
    budget_minor_limit: int | None = None
    charge_minor: int = 0
    budget_ttl_seconds: int | None = None
    count_impression: bool = False
    budgets: tuple[BudgetClaim, ...] = ()

    def __post_init__(self) -> None:
        if self.member_limit is not None and self.member_limit < 0:
            raise ValueError("member_limit must be >= 0")
        if self.member_window_seconds is not None and self.member_window_seconds <= 0:
            raise ValueError("member_window_seconds must be > 0")
        if self.budget_key is None and (self.budget_count_limit is not None
                                        or self.budget_minor_limit is not None):
            raise ValueError("a budget limit needs a budget_key")
        if self.charge_minor < 0:
            raise ValueError("charge_minor must be >= 0")

    @property
    def budget(self) -> BudgetRef | None:
        """The first budget's counter, None without a budget."""
        claims = self.claims
        return claims[0].ref if claims else None

    @property
    def claims(self) -> tuple[BudgetClaim, ...]:
        """Every budget this issue draws on: the one of the ``budget_*`` fields, then ``budgets``."""
        if self.budget_key is None:
            return self.budgets
        own = BudgetClaim(self.budget_key, self.budget_period, self.budget_count_limit, self.budget_minor_limit,
                          self.charge_minor, self.budget_ttl_seconds)
        return (own, *self.budgets)


@dataclass(frozen=True)
class CapResult:
    """Outcome of one :class:`CapRequest`."""

    request: CapRequest
    granted: bool
    #: None when granted, else MEMBER_CAP_REACHED, BUDGET_EXHAUSTED, BUDGET_PACED or CONTACT_CAPPED
    reason: str | None
    #: The issue time recorded (epoch s); needed to release the reservation.
    issued_at: int
    #: The first budget after the reservation, or as found when a budget refused;
    #: None without a budget or when the member cap refused first.
    budget: BudgetCounter | None = None
    #: False when granted without counting anything (a held coupon handed out again):
    #: there is nothing to release then.
    reserved: bool = True


@dataclass(frozen=True)
class StoredResponse:
    """An idempotent request's record: its hash and, once finished, its response."""

    request_hash: str
    #: None while the first request is still being handled
    status: int | None = None
    body: bytes = b""
    content_type: str = "application/json"

    @property
    def in_flight(self) -> bool:
        return self.status is None
