"""Administration endpoints (scope ``admin``; refused to everyone when no admin key exists).

``GET /v1/admin/members/<member_id>/state``  the member's online state
``DELETE /v1/admin/members/<member_id>/cache``  drop the member's cached scores
``GET /v1/admin/coupons/<code>``  a coupon, looked up by its normalised code
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from runtime.coupons.codes import InvalidCouponCode, find_coupon
from service.auth import require_scope
from service.errors import FieldError, NotFound, ValidationFailed
from service.state import current_state
from service.validation import describe, is_valid

bp = Blueprint("admin", __name__, url_prefix="/v1/admin")


def checked_member(member_id: str) -> str:
    """The path's member id, or a 422 naming the parameter (every member endpoint checks it so)."""
    if not is_valid("member_id", member_id):
        raise ValidationFailed("member_id is not valid", [FieldError(
            code="invalid_member_id", parameter="member_id",
            message=f"member_id must be {describe('member_id')}")])
    return member_id


@bp.get("/members/<member_id>/state")
@require_scope("admin")
def member_state(member_id: str) -> Response:
    bundle = current_state().store.fetch_member(checked_member(member_id))  # StoreUnavailable: 503 (service.errors)
    return jsonify({"state": bundle.state.to_dict()})


@bp.delete("/members/<member_id>/cache")
@require_scope("admin")
def drop_cache(member_id: str) -> tuple[str, int]:
    current_state().store.invalidate(checked_member(member_id))  # StoreUnavailable: 503 (service.errors)
    return "", 204


@bp.get("/coupons/<code>")
@require_scope("admin")
def coupon(code: str) -> Response:
    try:
        found = find_coupon(current_state().store, code)
    except InvalidCouponCode as exc:
        raise ValidationFailed("the coupon code is not valid", [FieldError(
            code="invalid_coupon_code", parameter="code", message=str(exc))]) from None
    if found is None:
        raise NotFound("no coupon has this code (or it expired)")
    return jsonify(found.to_dict())
