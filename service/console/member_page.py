"""The member page: look a member up by id or coupon code and show their current decision.

The decision is made by the same runtime call as ``POST /v1/decisions`` (same parsing of
channel and ``as_of``, ``explain`` on), through
:meth:`~runtime.decisions.pipeline.DecisionPipeline.decide_without_commit`: looking a member up reserves
no cap or budget and issues no coupon.
"""

from __future__ import annotations

import re
from typing import Any

from flask import g, render_template, request

from models.data_contract import CHANNELS
from runtime.coupons.codes import InvalidCouponCode, find_coupon
from runtime.decisions.outcome_json import outcome_json
from runtime.errors import NotReady
from runtime.stores import StoreUnavailable
from service.console.blueprint import bp
from service.console.session import signed_in
from service.decisions.bodies import parse_query
from service.decisions.routes import new_decision_id, to_request
from service.errors import ServiceUnavailable, ValidationFailed
from service.state import current_decisions, current_state
from service.validation import describe, is_valid

_LOCAL_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


def replay_moment(text: str) -> str:
    """The "replay at" field as RFC 3339: a browser's date-time without offset is UTC."""
    text = text.strip()
    if _LOCAL_MINUTE.match(text):
        return text + (":00" if len(text) == 16 else "") + "Z"
    return text


def resolve(query: str) -> tuple[str, str | None]:
    """(member id, coupon code found) for what was typed: a coupon code of a member, else a member id."""
    try:
        coupon = find_coupon(current_state().store, query)
    except InvalidCouponCode:
        coupon = None
    except StoreUnavailable as exc:
        raise ServiceUnavailable("the online store is unavailable; try again shortly") from exc
    if coupon is not None:
        return coupon.member_id, coupon.display
    if not is_valid("member_id", query):
        raise ValidationFailed(f"{query!r} is neither a known coupon code nor a member id "
                               f"(a member id is {describe('member_id')})")
    return query, None


def _state(member_id: str) -> dict[str, Any] | None:
    """The member's online state (counters, last seen), or None when the store is away."""
    try:
        return current_state().store.fetch_member(member_id).state.to_dict()
    except StoreUnavailable:
        return None


@bp.get("/members")
@signed_in()
def member() -> tuple[str, int] | str:
    """Search form; with ``q``, the member's tier, state and current decision."""
    query = request.args.get("q", "").strip()
    channel = request.args.get("channel", "app")
    as_of = request.args.get("as_of", "").strip()
    page: dict[str, Any] = {"session": g.console, "q": query, "channel": channel, "as_of": as_of,
                            "channels": CHANNELS}
    if not query:
        return render_template("console/member.html", **page)
    try:
        member_id, coupon = resolve(query)
        args = {"channel": channel, "explain": "true"}
        if as_of:
            args["as_of"] = replay_moment(as_of)
        body = parse_query(member_id, args)
        decider = current_decisions().require()
        outcome = decider.decide_without_commit(to_request(body, decider.setup.program), new_decision_id())
    except ValidationFailed as exc:
        problems = [f"{e.parameter or 'query'}: {e.message}" for e in exc.errors]
        return render_template("console/member.html", **page, error=exc.detail, problems=problems), 422
    except NotReady as exc:
        return render_template("console/member.html", **page, error=f"{exc}; retry shortly"), 503
    decision = outcome_json(decider.setup.program, outcome)
    return render_template("console/member.html", **page, member_id=member_id, coupon=coupon,
                           decision=decision, state=_state(member_id), points=_points(member_id))


def _points(member_id: str) -> dict[str, Any] | None:
    """The member's points, read-only, when the program keeps a ledger (None otherwise or when
    the store is away)."""
    ledger = current_state().points
    if ledger is None:
        return None
    try:
        return ledger.peek(member_id)
    except StoreUnavailable:
        return None
