"""What a caller asks the decision pipeline, and what it gets back (before rendering).

:class:`DecisionRequest` is the request in the runtime's terms (the HTTP layer validates
JSON into it); :class:`Outcome` is a committed decision with its issued offers, refusals
and how it was made (scores from the cache or computed, history status, degraded mode).
:mod:`runtime.decisions.outcome_json` renders an Outcome as the API's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from models.decision import Decision, Excluded, RankedOffer
from models.member import MemberContext
from models.request_context import RequestContext
from runtime.coupons.codes import Coupon

#: Why a coupon offer left an unknown member's slate (program ``coupons.unknown_members`` off).
UNKNOWN_MEMBER = "UNKNOWN_MEMBER"
#: ``Outcome.degraded``: the store could not be reached (cold-start decision, nothing reserved).
STORE_UNAVAILABLE = "store_unavailable"
#: ``Outcome.degraded``: the store answered without its generation marker (caps untrusted).
STORE_DATA_LOST = "store_data_lost"


@dataclass(frozen=True)
class DecisionRequest:
    """What a caller asks for (validated by the HTTP layer)."""

    member_id: str
    channel: str
    n: int | None = None
    placement: str | None = None
    #: ``context.as_of``: replay at this moment (no score cache then); None uses the clock
    as_of: datetime | None = None
    exclude: tuple[str, ...] = ()
    explain: bool = False
    #: who asked, for the decision log: ``realtime``, ``batch`` (the endpoint) or ``offers_batch``
    source: str = "realtime"
    #: the request's context (store, cart, device, location, custom keys) targeting rules read
    context: RequestContext | None = None


@dataclass(frozen=True)
class IssuedOffer:
    """A returned offer, its final rank and its coupon (when it needs one and was issued)."""

    offer: RankedOffer
    rank: int
    coupon: Coupon | None = None


@dataclass(frozen=True)
class Outcome:
    """A committed decision, ready to render.

    ``excluded`` (the decision's exclusions, then the offers whose reservation was refused)
    is built on first read: batch lines without ``include_excluded`` never build it.
    """

    decision_id: str
    member_id: str
    as_of: datetime
    model_version: str | None
    decision: Decision
    offers: tuple[IssuedOffer, ...]
    #: returned offers dropped because their reservation was refused (or could not be made)
    refused: tuple[Excluded, ...]
    member: MemberContext
    #: "cache", "computed", or "none" (no model, or a member without history)
    scores: str
    #: "ok", "none" (no records: a new member) or "stale" (records under another catalog)
    history: str
    degraded: str | None = None
    placement: str | None = None
    took_ms: float = 0.0

    @cached_property
    def excluded(self) -> tuple[Excluded, ...]:
        """Every candidate not returned, with its reason: the decision's, then the refused."""
        return (*self.decision.excluded, *self.refused)
