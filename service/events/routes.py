"""``POST /v1/events``: feedback events, one or a batch (scope ``events``).

Answers 200 with ``{accepted, duplicates, results: [{event_id, status}]}`` where status
is ``accepted`` or ``duplicate`` (already received: ignored). Invalid events are 422
with a pointer per bad field and nothing is applied; 503 when the store or the log is
unavailable (retry with the same ``event_id`` values: nothing is applied twice).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from service.auth import require_scope
from service.errors import ServiceUnavailable
from service.events.ingest import ingest
from service.events.log import EventLogError
from service.events.schema import parse_events
from service.http import read_json
from service.idempotency import idempotent
from service.requestid import request_id
from service.state import current_state
from service.stores import StoreUnavailable

log = logging.getLogger(__name__)
bp = Blueprint("events", __name__)


@bp.post("/v1/events")
@require_scope("events")
@idempotent
def post_events() -> tuple[Response, int]:
    """Validate, de-duplicate, log and apply feedback events."""
    state = current_state()
    settings = state.settings
    events = parse_events(read_json(), settings.max_events_per_request, settings.currency_exponent,
                          now=state.now())
    try:
        result = ingest(events, state.store, state.event_log, settings.zone,
                        settings.currency_exponent, request_id(),
                        recorder=state.components.get("recorder"))
    except StoreUnavailable as exc:
        raise ServiceUnavailable("the online store is unavailable; retry with the same "
                                 "event_id values (duplicates are ignored)") from exc
    except EventLogError as exc:
        log.error("event log write failed: %s", exc)
        raise ServiceUnavailable("the event log cannot be written; retry shortly") from exc
    for ev, status in zip(events, result.statuses, strict=True):
        state.metrics.record_event(ev.type, status)
    return jsonify(result.to_dict()), 200
