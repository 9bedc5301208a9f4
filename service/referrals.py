"""The referral endpoints (programs with ``points.referrals``; docs/points.md).

``POST /v1/members/<member_id>/referral-code`` (scope ``events``): the member's referral code,
drawn the first time and the same ever after, with how many members they referred.

``POST /v1/referrals`` (scope ``events``): body ``{"member_id": "<new member>", "code": "..."}``.
Links the new member to the code's holder once. 422 for an unknown code or a self-referral
(pointer ``/code``); 409 ``referral-refused`` with ``reason`` ``loop``, ``already_referred``,
``not_new`` (the member has bought before) or ``limit`` (the referrer's ``max_per_member``).
Both earn when the new member makes a first qualifying purchase (``POST /v1/events``).
404 when the program has no referral program; 503 while it loads or Redis is down.
"""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from runtime.points.referrals import ReferralRefused, UnknownReferralCode
from runtime.points.service import PointsService
from service.admin import checked_member
from service.auth import require_scope
from service.decisions.bodies import parse_body
from service.errors import (
    FieldError,
    NotFound,
    ReferralRefusedProblem,
    ValidationFailed,
)
from service.http import read_json
from service.idempotency import idempotent
from service.points import ledger_errors, points_service
from service.validation import MemberId

bp = Blueprint("referrals", __name__)


class ReferralBody(BaseModel):
    """``POST /v1/referrals``: the new member and the code they quoted."""

    model_config = ConfigDict(extra="forbid", strict=True)

    member_id: MemberId = Field(description="The new member (the referee).")
    code: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")] = Field(
        description="The referrer's referral code, as typed.")


def _program() -> PointsService:
    ledger = points_service()
    if ledger.program.points.referrals is None:
        raise NotFound("this program has no referral program (points.referrals in the program config)")
    return ledger


@bp.post("/v1/members/<member_id>/referral-code")
@require_scope("events")
def referral_code(member_id: str) -> tuple[Response, int]:
    """The member's referral code (see the module docstring)."""
    member_id = checked_member(member_id)
    ledger = _program()
    with ledger_errors("retry shortly"):
        info = ledger.referral_code(member_id)
    return jsonify({"member_id": info.member_id, "code": info.code, "referrals_made": info.referrals_made,
                    "referred_by": info.referred_by}), 200


@bp.post("/v1/referrals")
@require_scope("events")
@idempotent
def refer() -> tuple[Response, int]:
    """Link a new member to the referrer whose code they quoted (see the module docstring)."""
    body: ReferralBody = parse_body(ReferralBody, read_json())
    ledger = _program()
    code = body.code.replace("-", "").upper()
    try:
        with ledger_errors("retry shortly"):
            ledger.refer(body.member_id, code)
    except UnknownReferralCode:
        raise ValidationFailed("unknown referral code", [FieldError(
            code="unknown_referral_code", pointer="/code", message="no member holds this code")]) from None
    except ReferralRefused as exc:
        if exc.reason == "self":
            raise ValidationFailed("a member cannot refer themselves", [FieldError(
                code="self_referral", pointer="/code", message="this is the member's own code")]) from None
        problem = ReferralRefusedProblem(_WHY.get(exc.reason, exc.reason))
        problem.extensions["reason"] = exc.reason
        raise problem from None
    return jsonify({"status": "linked", "member_id": body.member_id}), 200


_WHY = {"loop": "the referrer was referred by this member (a referral loop)",
        "already_referred": "this member was already referred",
        "not_new": "this member has bought before: referrals are for new members",
        "limit": "the referrer has made as many referrals as the program allows"}
