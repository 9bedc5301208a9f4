"""The points endpoints: a member's balance, redeeming rewards, admin adjustments.

``GET /v1/members/<member_id>/points`` (scope ``decisions``): balance, pending, expiring soon,
lifetime totals and the last entries (``?entries=N``, 1-20, default 10; the log keeps every entry). Due expiry and the
signup and birthday bonuses are applied first, so the figures are exact now.

``POST /v1/members/<member_id>/points/redeem`` (scope ``events``, ``Idempotency-Key``
required): body ``{"reward_id": "free_drink", "channel": "app"}``. Burns the reward's points
once per key: a retry answers the first response (``Idempotent-Replayed``), and even after
the key's record expired the burn is never applied twice. 409 ``points-insufficient`` when the
balance does not cover it (``balance`` and ``needed`` in the problem; the balance never goes
negative), 422 for an unknown reward. A voucher reward issues a coupon code.

``POST /v1/admin/members/<member_id>/points/adjust`` (scope ``admin``, ``Idempotency-Key``
required): body ``{"points": -40, "reason": "goodwill"}``; the reason is required and the
entry records which key made it.

All answer 404 when the program has no points ledger (``points.enabled``) and 503 while it
loads or the store or log is unavailable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints

from runtime.coupons.codes import Coupon
from runtime.events.log import EventLogError
from runtime.points.ledger import KEEP
from runtime.points.service import InsufficientPoints, PointsService, UnknownPlan, UnknownReward
from runtime.stores import StoreUnavailable
from service.admin import checked_member
from service.auth import require_scope
from service.decisions.bodies import parse_body
from service.errors import (
    FieldError,
    NotFound,
    PointsInsufficient,
    ServiceUnavailable,
    ValidationFailed,
)
from service.events.bodies import Channel, json_integer
from service.http import read_json
from service.idempotency import HEADER, idempotent
from service.state import current_state

bp = Blueprint("points", __name__)


class PointsRedeemBody(BaseModel):
    """``POST .../points/redeem``: which reward, and where."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reward_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="A reward of the program's points.rewards.")
    channel: Channel | None = Field(None, description="Where the member redeemed.")


#: Whole points, signed and non-zero (an integral JSON number such as 40.0 is an integer).
SignedPoints = Annotated[int, Field(ge=-10_000_000, le=10_000_000, json_schema_extra={"not": {"const": 0}}),
                         Strict(False), BeforeValidator(json_integer)]


class PointsAdjustBody(BaseModel):
    """``POST /v1/admin/.../points/adjust``: signed whole points and why."""

    model_config = ConfigDict(extra="forbid", strict=True)

    points: SignedPoints = Field(description="Points to add (positive) or take (negative); not 0.")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)] = Field(
        description="Why (kept in the ledger entry).")


def points_service() -> PointsService:
    state = current_state()
    if state.points is not None:
        return state.points
    decisions = state.decisions
    if decisions is not None and decisions.points_expected:
        raise ServiceUnavailable("the points ledger is loading; retry shortly")
    raise NotFound("this program has no points ledger (points.enabled in the program config)")


@contextmanager
def ledger_errors(retry: str = "retry with the same Idempotency-Key") -> Iterator[None]:
    """Translate the ledger's failures into problems: not enough points (409 with ``balance`` and
    ``needed``), the store or the points log unavailable (503, saying how to retry)."""
    try:
        yield
    except InsufficientPoints as exc:
        problem = PointsInsufficient(f"the balance ({exc.balance}) does not cover {exc.needed} points")
        problem.extensions.update(balance=exc.balance, needed=exc.needed)
        raise problem from None
    except StoreUnavailable as exc:
        raise ServiceUnavailable(f"the online store is unavailable; {retry}") from exc
    except EventLogError as exc:
        raise ServiceUnavailable(f"the points log cannot be written; {retry}") from exc


def _caller() -> str:
    """The short id of the caller's API key (``anonymous`` on an open demo service)."""
    api_key = g.get("api_key")
    return api_key.key_id if api_key is not None else "anonymous"


def _key() -> str:
    key = request.headers.get(HEADER)
    if key is None:
        raise ValidationFailed("an Idempotency-Key header is required", [FieldError(
            code="missing", header=HEADER, message="send a unique key (a UUID) per redemption; "
                                                   "retry with the same key")])
    return key


def _coupon(coupon: Coupon | None) -> dict[str, object] | None:
    return None if coupon is None else coupon.to_dict()


@bp.get("/v1/members/<member_id>/points")
@require_scope("decisions")
def balance(member_id: str) -> Response:
    """The member's points now (see the module docstring)."""
    member_id = checked_member(member_id)
    raw = request.args.get("entries", "10")
    if not raw.isdigit() or not 1 <= int(raw) <= KEEP:
        raise ValidationFailed(f"entries must be an integer from 1 to {KEEP}", [FieldError(
            code="out_of_range", parameter="entries", message=f"an integer from 1 to {KEEP}")])
    ledger = points_service()
    with ledger_errors("retry shortly"):
        return jsonify(ledger.view(member_id, int(raw)))


@bp.post("/v1/members/<member_id>/points/redeem")
@require_scope("events")
@idempotent
def redeem(member_id: str) -> tuple[Response, int]:
    """Burn a reward's points once per Idempotency-Key (see the module docstring)."""
    member_id = checked_member(member_id)
    key = _key()
    body: PointsRedeemBody = parse_body(PointsRedeemBody, read_json())
    ledger = points_service()
    try:
        with ledger_errors():
            done = ledger.redeem(member_id, body.reward_id, _scoped(key), body.channel)
    except UnknownReward:
        raise ValidationFailed("unknown reward", [FieldError(
            code="unknown_reward", pointer="/reward_id",
            message=f"one of: {', '.join(sorted(ledger.ledger.rewards)) or '(none configured)'}")]) from None
    reward = done.reward
    return jsonify({"status": "redeemed" if done.status == "applied" else "already_redeemed",
                    "reward": {"id": reward.id, "title": reward.title, "points": reward.points, "kind": reward.kind,
                               **({"cause": reward.cause} if reward.cause else {})},
                    "balance": done.balance, "entry": done.entry, "coupon": _coupon(done.coupon)}), 200


@bp.post("/v1/admin/members/<member_id>/points/adjust")
@require_scope("admin")
@idempotent
def adjust(member_id: str) -> tuple[Response, int]:
    """Add or take points with a reason, once per Idempotency-Key (see the module docstring)."""
    member_id = checked_member(member_id)
    key = _key()
    body: PointsAdjustBody = parse_body(PointsAdjustBody, read_json())
    if body.points == 0:
        raise ValidationFailed("points must not be 0", [FieldError(
            code="out_of_range", pointer="/points", message="a non-zero number of points")])
    ledger = points_service()
    with ledger_errors():
        done = ledger.adjust(member_id, body.points, body.reason, _caller(), _scoped(key))
    return jsonify({"status": "adjusted" if done["status"] == "applied" else "already_adjusted",
                    "balance": done["balance"], "entry": done["entry"]}), 200


@bp.post("/v1/members/<member_id>/plans/<plan_id>")
@require_scope("events")
@idempotent
def subscribe(member_id: str, plan_id: str) -> tuple[Response, int]:
    """Start or renew a paid plan, once per Idempotency-Key (the fee is charged by the caller)."""
    member_id = checked_member(member_id)
    key = _key()
    ledger = points_service()
    try:
        with ledger_errors():
            done = ledger.subscribe(member_id, plan_id, _scoped(key))
    except UnknownPlan:
        raise NotFound(f"no paid plan {plan_id!r}; the program's plans: "
                       f"{', '.join(p.id for p in ledger.program.points.plans) or '(none)'}") from None
    return jsonify({"member_id": member_id, **done}), 200


def _scoped(key: str) -> str:
    """The ledger cause of a request: the Idempotency-Key scoped to the caller's API key."""
    return f"{_caller()}:{key}"
