"""``POST /v1/coupons/{code}/redeem``: redeem a coupon at checkout (scope ``events``).

Body ``{"member_id", "offer_id", "event_id"?, "decision_id"?, "channel"?}``. The code
(as typed: normalised first) must exist, belong to ``member_id`` and ``offer_id`` and not
have expired at the service's present moment; it is then redeemed exactly once, and the
redemption is recorded as the ``redeem`` event ``POST /v1/events`` would record (durable
log, member state, history), stamped with the service clock. ``event_id`` defaults to a
new unique id.

Answers 200 ``{"status": "redeemed", "event_id", "redeemed_at", "coupon"}``. A second
redemption is 409 ``coupon-already-redeemed`` whose ``redeemed_at`` is the first one's
time; retrying with the ``event_id`` that redeemed it answers 200 again, and so does an
``Idempotency-Key`` retry (replayed). An expired coupon is 409 ``coupon-expired``, an
unknown code 404, an ``event_id`` another event already used 409, a code of another member or offer 422 (pointer ``/member_id`` or
``/offer_id``), a malformed code 422 (parameter ``code``).
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify

from runtime.coupons import redemption
from runtime.coupons.codes import Coupon, InvalidCouponCode, find_coupon, normalise
from runtime.events.ingest import ingest
from runtime.events.log import EventLogError
from runtime.stores import StoreUnavailable
from service import coupon_problems
from service.auth import require_scope
from service.decisions.bodies import parse_body
from service.errors import Conflict, FieldError, ServiceUnavailable, ValidationFailed
from service.events.bodies import Event, RedeemBody
from service.http import read_json
from service.idempotency import idempotent
from service.requestid import request_id
from service.state import current_state

bp = Blueprint("checkout", __name__)


def _code(text: str) -> str:
    """The canonical code of the path parameter; 422 naming it when malformed."""
    try:
        return normalise(text)
    except InvalidCouponCode as exc:
        raise ValidationFailed("the coupon code is not valid", [FieldError(
            code="invalid_coupon_code", parameter="code", message=str(exc))]) from None


def _error(index: int, name: str, code: str, message: str) -> FieldError:
    """Where a refusal points: the path's code, or the body's member_id / offer_id."""
    if name == "coupon_code":
        return FieldError(code=code, message=message, parameter="code")
    return FieldError(code=code, message=message, pointer=f"/{name}")


@bp.post("/v1/coupons/<code>/redeem")
@require_scope("events")
@idempotent
def redeem(code: str) -> tuple[Response, int]:
    """Check and redeem one coupon, and record the redeem event (see the module docstring)."""
    canonical = _code(code)
    body: RedeemBody = parse_body(RedeemBody, read_json())
    state = current_state()
    settings = state.settings
    now = state.now()
    # Built from validated parts: the body fields above and the service clock.
    event = Event.model_construct(
        event_id=body.event_id or "cr-" + uuid.uuid4().hex, member_id=body.member_id, type="redeem", ts=now,
        offer_id=body.offer_id, decision_id=body.decision_id, channel=body.channel, coupon_code=canonical)
    try:
        result = ingest([event], state.store, state.event_log, settings.zone, settings.currency_exponent,
                        request_id(), recorder=state.recorder)
        coupon = find_coupon(state.store, canonical)
    except redemption.CouponsRefused as exc:
        raise coupon_problems.problem(exc, _error, missing_is_not_found=True) from None
    except StoreUnavailable as exc:
        raise ServiceUnavailable("the online store is unavailable; retry with the same event_id") from exc
    except EventLogError as exc:
        raise ServiceUnavailable("the event log cannot be written; retry shortly") from exc
    if coupon is None or coupon.redeemed_event_id != event.event_id:
        # the event id was taken by an earlier event that did not redeem this coupon
        raise Conflict(f"event_id {event.event_id} was already used by another event", [FieldError(
            code="event_id_taken", pointer="/event_id", message="use a new event_id for this redemption")])
    state.metrics.record_event("redeem", result.statuses[0])
    return jsonify(_answer(event.event_id, coupon)), 200


def _answer(event_id: str, coupon: Coupon | None) -> dict[str, object]:
    """The 200 body: the redeeming event and the coupon as it now stands."""
    redeemed_at = coupon.redeemed_at if coupon is not None else None
    return {"status": "redeemed", "event_id": event_id,
            "redeemed_at": None if redeemed_at is None else redemption.rfc3339(redeemed_at),
            "coupon": None if coupon is None else coupon.to_dict()}
