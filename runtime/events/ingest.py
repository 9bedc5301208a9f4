"""Accepting validated events: de-duplicate, log durably, update the online state.

Order of work for one request (a batch is handled as a whole):

1. duplicates inside the batch (same ``event_id`` twice) keep their first occurrence;
2. one store round trip asks which ids were already applied; those are duplicates;
3. the new events are appended to the durable log (and fsynced);
3a. before that, ``redeem`` events quoting a ``coupon_code`` claim their coupons in one
   atomic store call, all or none (:mod:`runtime.coupons.redemption`): a refusal raises
   :class:`~runtime.coupons.redemption.CouponsRefused` and nothing is logged or applied; a log
   failure undoes the claims;
4. one atomic store call marks them seen (SET NX with TTL), updates each member's state,
   appends each event's history record (when a decision engine is loaded: purchase
   lines, exposures, redemptions; see :mod:`runtime.events.history_records`) and drops each
   member's cached scores, so the next read sees the event. An id that a concurrent
   request applied in between comes back as a duplicate here.

If the store is down at 2 nothing is written and the caller answers 503; if it fails at
4 the events are already in the log (at-least-once) and the client's retry applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from runtime.coupons import redemption
from runtime.coupons.codes import normalise
from runtime.events.event import FeedbackEvent
from runtime.events.log import FORMAT_VERSION, EventLog, EventLogError
from runtime.stores import StateEvent, Store, StoreUnavailable


class PointsEarner(Protocol):
    """Posts what new events earn to the points ledger (:class:`runtime.points.service.PointsService`)."""

    def earn(self, events: Sequence[FeedbackEvent]) -> None: ...


class Recorder(Protocol):
    """Turns an event into history record bytes under a catalog fingerprint."""

    fingerprint: str

    def record(self, ev: FeedbackEvent, exponent: int) -> bytes: ...


ACCEPTED = "accepted"
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class IngestResult:
    """Per event (in request order) whether it was accepted or a duplicate."""

    event_ids: tuple[str, ...]
    statuses: tuple[str, ...]

    @property
    def accepted(self) -> int:
        return self.statuses.count(ACCEPTED)

    @property
    def duplicates(self) -> int:
        return self.statuses.count(DUPLICATE)

    def to_dict(self) -> dict[str, object]:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "results": [{"event_id": e, "status": s}
                            for e, s in zip(self.event_ids, self.statuses, strict=True)]}


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def signed_amount(ev: FeedbackEvent, exponent: int) -> int:
    """The event's money in minor units, negative for a return (a transaction with ``refund_of``)."""
    amount = ev.amount(exponent)
    return -amount if getattr(ev, "refund_of", None) is not None else amount


def to_state_event(ev: FeedbackEvent, zone: ZoneInfo, exponent: int, recorder: Recorder | None = None) -> StateEvent:
    """The part of an event the online state needs (epoch seconds, month in the program zone,
    and its history record when a recorder is given). A return counts as negative spend."""
    return StateEvent(event_id=ev.event_id, member_id=ev.member_id, type=ev.type,
                      ts=int(ev.ts.timestamp()), offer_id=ev.offer_id,
                      amount_minor=signed_amount(ev, exponent),
                      month=ev.ts.astimezone(zone).strftime("%Y%m"),
                      record=recorder.record(ev, exponent) if recorder is not None else b"",
                      fingerprint=recorder.fingerprint if recorder is not None else "")


def to_log_record(ev: FeedbackEvent, exponent: int, received_at: datetime,
                  request_id: str | None) -> dict[str, object]:
    """The event as one line of the durable log (docs/events.md)."""
    record: dict[str, object] = {
        "v": FORMAT_VERSION, "event_id": ev.event_id, "member_id": ev.member_id,
        "type": ev.type, "ts": _rfc3339(ev.ts)}
    if ev.offer_id is not None:
        record["offer_id"] = ev.offer_id
    if ev.decision_id is not None:
        record["decision_id"] = ev.decision_id
    if ev.amount_minor is not None or ev.value is not None:
        record["amount_minor"] = signed_amount(ev, exponent)
    for name in ("currency", "channel"):
        if getattr(ev, name) is not None:
            record[name] = getattr(ev, name)
    if ev.coupon_code is not None:
        record["coupon_code"] = normalise(ev.coupon_code)
    for name in ("product_id", "basket_id", "discount_minor", "coupon_discount_minor", "refund_of"):
        if getattr(ev, name, None) is not None:
            record[name] = getattr(ev, name)
    record["received_at"] = _rfc3339(received_at)
    if request_id:
        record["request_id"] = request_id
    return record


def ingest(events: Sequence[FeedbackEvent], store: Store, log: EventLog, zone: ZoneInfo, exponent: int,
           request_id: str | None = None, now: datetime | None = None,
           recorder: Recorder | None = None, points: PointsEarner | None = None) -> IngestResult:
    """Apply a validated batch (see the module for the order of work).

    ``recorder`` (the decision engine's, once loaded) encodes each event's history record.
    ``points`` (the points ledger, when the program has one) posts what the new transactions
    earn, after the log write and before the state update: its postings are idempotent by
    cause, so a retry after any failure earns exactly once.

    Raises
    ------
    CouponsRefused
        A redeem event's coupon cannot be redeemed (indices into ``events``); nothing done.
    StoreUnavailable
        The store cannot be reached (before or after the log write).
    EventLogError
        The log cannot be written; the state was not touched (coupon claims undone).
    """
    received_at = now or datetime.now(UTC)
    first: dict[str, int] = {}
    for i, ev in enumerate(events):
        first.setdefault(ev.event_id, i)
    unique = [events[i] for i in sorted(first.values())]
    seen = dict(zip((e.event_id for e in unique), store.events_seen([e.event_id for e in unique],
                                                                         [e.member_id for e in unique]),
                    strict=True))
    new = [e for e in unique if not seen[e.event_id]]
    made = redemption.claim(store, redemption.claims_for(
        [(i, events[i]) for i in sorted(first.values()) if not seen[events[i].event_id]]))
    try:
        log.append([to_log_record(e, exponent, received_at, request_id) for e in new])
        if points is not None and new:
            points.earn(new)
    except (EventLogError, StoreUnavailable):
        redemption.undo(store, made)
        raise
    applied = dict(zip((e.event_id for e in new),
                       store.apply_events([to_state_event(e, zone, exponent, recorder) for e in new]),
                       strict=True))
    statuses = tuple(
        ACCEPTED if first[ev.event_id] == i and applied.get(ev.event_id, False) else DUPLICATE
        for i, ev in enumerate(events))
    return IngestResult(event_ids=tuple(e.event_id for e in events), statuses=statuses)
