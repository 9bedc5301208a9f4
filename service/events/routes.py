"""``POST /v1/events``: feedback events, one or a batch (scope ``events``).

Answers 200 with ``{accepted, duplicates, results: [{event_id, status}]}`` where status
is ``accepted`` or ``duplicate`` (already received: ignored). Invalid events are 422
with a pointer per bad field and nothing is applied; so is a ``redeem`` event whose
``coupon_code`` is unknown or belongs to another member or offer (409 when the coupon is
expired or already redeemed: :mod:`runtime.coupons.redemption`); 503 when the store or the log is
unavailable (retry with the same ``event_id`` values: nothing is applied twice).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify

from offerdata.events import FUTURE_TOLERANCE_SECONDS
from runtime.coupons import redemption
from runtime.events.ingest import ingest
from runtime.events.log import EventLogError
from runtime.stores import StoreUnavailable
from service import coupon_problems
from service.auth import require_scope
from service.errors import FieldError, ServiceUnavailable, ValidationFailed, json_pointer
from service.events.bodies import Event, parse_events
from service.http import read_json
from service.idempotency import idempotent
from service.requestid import request_id
from service.state import ServiceState, current_state

log = logging.getLogger(__name__)
bp = Blueprint("events", __name__)


@bp.post("/v1/events")
@require_scope("events")
@idempotent
def post_events() -> tuple[Response, int]:
    """Validate, de-duplicate, log and apply feedback events."""
    state = current_state()
    settings = state.settings
    body = read_json()
    try:
        events = parse_events(body, settings.max_events_per_request, settings.currency_exponent,
                              now=state.now())
    except ValidationFailed as exc:  # data quality: which fields senders get wrong, by code
        for error in exc.errors:
            state.metrics.record_event_quality(f"rejected:{error.code}")
        raise
    _points_ready(state, events)
    try:
        result = ingest(events, state.store, state.event_log, settings.zone,
                        settings.currency_exponent, request_id(),
                        now=datetime.fromtimestamp(state.wall_clock(), UTC),  # received_at: the wall clock
                        recorder=state.recorder, points=state.points)
    except redemption.CouponsRefused as exc:
        raise coupon_problems.problem(exc, lambda i, name, code, message: FieldError(
            code=code, message=message, pointer=_pointer(body, i, name))) from None
    except StoreUnavailable as exc:
        raise ServiceUnavailable("the online store is unavailable; retry with the same "
                                 "event_id values (duplicates are ignored)") from exc
    except EventLogError as exc:
        log.error("event log write failed: %s", exc)
        raise ServiceUnavailable("the event log cannot be written; retry shortly") from exc
    for ev, status in zip(events, result.statuses, strict=True):
        state.metrics.record_event(ev.type, status)
    _count_unknown_ids(state, events)
    return jsonify(result.to_dict()), 200


def _points_ready(state: ServiceState, events: Sequence[Event]) -> None:
    """503 for transactions while a program with a points ledger is still loading: they must earn."""
    decisions = state.decisions
    if (state.points is None and decisions is not None and decisions.points_expected
            and any(ev.type == "transaction" for ev in events)):
        raise ServiceUnavailable("the points ledger is loading; retry shortly (transactions must earn)")


def _count_unknown_ids(state: ServiceState, events: Sequence[Event]) -> None:
    """Data quality: accepted events naming an offer the offer catalog does not know (contract
    and program offers alike) or a product the feature vocabulary does not know. They are
    kept (the log has them), but they add nothing to features, so a rising count means the
    sender and the catalog disagree. Also counted: events stamped more than
    :data:`FUTURE_TOLERANCE_SECONDS` after the service received them."""
    setup = state.decisions.setup if state.decisions is not None else None
    if setup is not None:
        index = setup.catalog.index
        state.metrics.record_event_quality(
            "unknown_offer", sum(ev.offer_id is not None and ev.offer_id not in index for ev in events))
    if state.recorder is not None:
        state.metrics.record_event_quality(
            "unknown_product", sum(not state.recorder.knows_product(ev.product_id) for ev in events))
    # stamped later than the service received them (beyond clock skew): a sender's clock or time zone is off
    horizon = state.wall_clock() + FUTURE_TOLERANCE_SECONDS
    state.metrics.record_event_quality("future_timestamp", sum(ev.ts.timestamp() > horizon for ev in events))


def _pointer(body: Any, index: int, name: str) -> str:
    """The JSON pointer of field ``name`` of the ``index``-th event in the body as sent."""
    if isinstance(body, list):
        return json_pointer([index, name])
    if isinstance(body, dict) and "events" in body:
        return json_pointer(["events", index, name])
    return json_pointer([name])
