"""The real-time decision endpoints (scope ``decisions``).

``POST /v1/decisions``
    One member's next best offers: body :class:`~service.decisions.bodies.DecisionBody`,
    answer :func:`~runtime.decisions.outcome_json.outcome_json`. Idempotent under an
    ``Idempotency-Key`` (a retry gets the same decision and the same coupon codes).
``GET /v1/members/{member_id}/offers``
    The same decision for apps, with query parameters (``channel`` default ``app``,
    ``n``, ``placement``, ``explain``, ``as_of``, ``exclude_offer_ids`` comma-separated).

An unknown member gets a cold-start decision, never an error. When Redis is away the
decision is still made (``degraded: "store_unavailable"``: no history, cache or
counters read, nothing reserved, no coupon issued). When Redis answers but lost its data
(``degraded: "store_data_lost"``), offers with a cap or a budget are withheld.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, request

from models.program import Program
from runtime.decisions.outcome import DecisionRequest, Outcome
from runtime.decisions.outcome_json import outcome_json
from service.auth import require_scope
from service.decisions.bodies import DecisionBody, parse_body, parse_query
from service.decisions.context import request_context
from service.errors import FieldError, ValidationFailed
from service.http import read_json
from service.idempotency import idempotent
from service.state import current_decisions
from service.validation import describe, is_valid

bp = Blueprint("decisions", __name__)


def new_decision_id() -> str:
    """A unique, unguessable decision id (feedback events refer to it)."""
    return "d-" + uuid.uuid4().hex


def to_request(body: DecisionBody, program: Program) -> DecisionRequest:
    """The pipeline's request for ``body``; 400 for context keys ``program`` does not declare."""
    return DecisionRequest(member_id=body.member_id, channel=body.channel, n=body.n, placement=body.placement,
                           as_of=body.context.as_of if body.context is not None else None,
                           exclude=tuple(body.exclude_offer_ids), explain=body.explain,
                           context=request_context(body.context, program))


def run(body: DecisionBody) -> Response:
    """Decide and render one decision (503 while the model or catalog is loading)."""
    service = current_decisions()
    decider = service.require()
    outcome: Outcome = decider.decide(to_request(body, decider.setup.program), new_decision_id())  # NotReady: 503 (service.errors)
    return jsonify(outcome_json(decider.setup.program, outcome))


@bp.post("/v1/decisions")
@require_scope("decisions")
@idempotent
def post_decision() -> Response:
    """One member's next best offers (see the module docstring)."""
    return run(parse_body(DecisionBody, read_json()))


@bp.get("/v1/members/<member_id>/offers")
@require_scope("decisions")
def member_offers(member_id: str) -> Response:
    """The same decision as POST /v1/decisions, for apps (query parameters)."""
    if not is_valid("member_id", member_id):
        raise ValidationFailed("member_id is not valid", [FieldError(
            code="invalid_member_id", parameter="member_id",
            message=f"member_id must be {describe('member_id')}")])
    return run(parse_query(member_id, request.args))
