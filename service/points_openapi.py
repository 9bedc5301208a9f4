"""The points endpoints in the OpenAPI document (:mod:`service.points` serves them)."""

from __future__ import annotations

from typing import Any

from service.openapi import (
    IDEMPOTENCY_HEADER,
    JSON,
    PROBLEMS,
    ApiDocument,
    id_schema,
    problem_example,
)
from service.points import PointsAdjustBody, PointsRedeemBody
from service.referrals import ReferralBody

_INT = {"type": "integer"}

ENTRY_SCHEMA: dict[str, Any] = {"type": "object", "description": "One ledger movement.", "properties": {
    "seq": {**_INT, "description": "The member's entry number (1, 2, ...)."},
    "member_id": {"type": "string", "description": "The member."},
    "kind": {"type": "string", "enum": ["earn", "burn", "expire", "adjust", "reverse"],
             "description": "What moved the points."},
    "points": {**_INT, "description": "Whole points moved into (positive) or out of (negative) the balance."},
    "units": {**_INT, "description": "The exact amount in ten-thousandths of a point (earned fractions "
                                     "are kept until they make a whole point)."},
    "cause": {"type": "string", "description": "What caused it; each cause is applied once "
                                               "(earn:<event_id>, redeem:<key>, expire:<lot>...)."},
    "ts": {**_INT, "description": "When the movement happened (epoch seconds): the purchase, the expiry."},
    "at": {**_INT, "description": "When the ledger applied it (epoch seconds)."},
    "balance": {**_INT, "description": "The spendable balance after it."},
    "pending": {**_INT, "description": "Points earned but not spendable yet, after it."},
    "x": {**_INT, "description": "When the points earned expire (epoch seconds; 0: never)."},
    "a": {**_INT, "description": "When the points earned become spendable (epoch seconds; 0: at once)."},
    "m": {"type": "object", "description": "Details: rule, tier, factor, event_id, offer_id, reward_id, "
                                           "reason, actor."}}}

VIEW_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "member_id": {"type": "string", "description": "The member."},
    "balance": {**_INT, "description": "Spendable points now (due expiry applied). Below zero only when a "
                                       "refund took back points already spent."},
    "pending": {**_INT, "description": "Points earned but not spendable yet (points.pending_days)."},
    "fraction": {"type": "number", "description": "The earned fraction of a point not yet in the balance."},
    "debt": {**_INT, "description": "Points a refund took back after they were spent; the next earns repay it."},
    "expiring_soon": {"type": "array", "description": "Spendable points expiring within "
                                                     "points.expiring_soon_days, by expiry.",
                      "items": {"type": "object", "properties": {
                          "points": {**_INT, "description": "Points expiring then."},
                          "expires_at": {**_INT, "description": "When (epoch seconds)."}}}},
    "expiring_soon_total": {**_INT, "description": "The sum of expiring_soon."},
    "lifetime": {"type": "object", "description": "Totals since the account was created.", "properties": {
        name: {**_INT, "description": f"Points {name}."}
        for name in ("earned", "burned", "expired", "adjusted", "reversed")}},
    "entries": {"type": "array", "items": {"$ref": "#/components/schemas/PointsEntry"},
                "description": "The last entries, newest first."},
    "plans": {"type": "array", "description": "The member's paid plans (points.plans), active or lapsed.",
              "items": {"type": "object", "properties": {
                  "plan": {"type": "string", "description": "The plan."},
                  "title": {"type": "string", "description": "Its title."},
                  "expires_at": {"type": ["integer", "null"], "description": "When it lapses (epoch seconds)."},
                  "active": {"type": "boolean", "description": "Whether its benefits apply now."}}}},
    "challenges": {"type": "array", "description": "The member's current run of each challenge they were given.",
                   "items": {"type": "object", "properties": {
                       "challenge_id": {"type": "string", "description": "The challenge (points.challenges)."},
                       "title": {"type": "string", "description": "Its title."},
                       "progress": {"type": "number", "description": "Where the member stands (visits, "
                                                                     "categories, streak length or money)."},
                       "target": {"type": "number", "description": "The goal."},
                       "completed": {"type": "boolean", "description": "Reached (its reward is paid once)."},
                       "started_at": {**_INT, "description": "When the run started: the offer's issue (epoch s)."},
                       "ends_at": {**_INT, "description": "When the run's window closes (epoch s)."}}}}}}

_REDEEM_RESPONSE: dict[str, Any] = {"type": "object", "properties": {
    "status": {"type": "string", "enum": ["redeemed", "already_redeemed"],
               "description": "redeemed now, or by an earlier request with the same key."},
    "reward": {"type": "object", "description": "The reward (id, title, points, kind, cause)."},
    "balance": {**_INT, "description": "The balance after the burn."},
    "entry": {"oneOf": [{"$ref": "#/components/schemas/PointsEntry"}, {"type": "null"}],
              "description": "The burn's entry (null when it was applied by an earlier request)."},
    "coupon": {"oneOf": [{"$ref": "#/components/schemas/Coupon"}, {"type": "null"}],
               "description": "A voucher reward's coupon."}}}

_ADJUST_RESPONSE: dict[str, Any] = {"type": "object", "properties": {
    "status": {"type": "string", "enum": ["adjusted", "already_adjusted"], "description": "What happened."},
    "balance": {**_INT, "description": "The balance after it."},
    "entry": {"oneOf": [{"$ref": "#/components/schemas/PointsEntry"}, {"type": "null"}],
              "description": "The adjustment's entry (null when applied by an earlier request)."}}}

_INSUFFICIENT = problem_example("The balance does not cover it (points-insufficient; nothing burned).", {
    "type": "/docs#problem-points-insufficient", "title": "Not enough points", "status": 409,
    "detail": "the balance (120) does not cover this reward (150)", "instance": "/v1/members/1029/points/redeem",
    "request_id": "7f0c2b9e4a1d4f7e9c3b5a6d7e8f9012",
    "balance": 120, "needed": 150})


def add_points_paths(doc: ApiDocument) -> None:
    """Document the three points endpoints and their schemas."""

    doc.add_schema("PointsEntry", ENTRY_SCHEMA)
    doc.add_schema("PointsView", VIEW_SCHEMA)
    redeem_ref, adjust_ref = doc.add_model(PointsRedeemBody), doc.add_model(PointsAdjustBody)
    member = {"name": "member_id", "in": "path", "required": True, "schema": id_schema("member_id")}
    key = {**IDEMPOTENCY_HEADER, "required": True,
           "description": "Required: the ledger applies one burn or adjustment per key, ever."}

    def responses(ok: dict[str, Any], *codes: str, **extra: dict[str, Any]) -> dict[str, Any]:
        return dict(sorted({**ok, **{c: PROBLEMS[c] for c in codes}, **extra}.items()))

    doc.add_path("/v1/members/{member_id}/points", {"get": {
        "summary": "A member's points", "tags": ["points"], "security": _SECURITY, "x-scope": "decisions",
        "description": "Balance, pending points, points expiring soon, lifetime totals and the last "
                       "entries. Due expiry and the signup and birthday bonuses are applied first.",
        "parameters": [member, {"name": "entries", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 20, "default": 10},
                                "description": "How many of the last entries to show."}],
        "responses": responses({"200": {"description": "The member's points.", "content": {
            JSON: {"schema": {"$ref": "#/components/schemas/PointsView"}}}}}, "401", "403", "404", "422", "503"),
    }})
    doc.add_path("/v1/members/{member_id}/points/redeem", {"post": {
        "summary": "Spend points on a reward", "tags": ["points"], "security": _SECURITY, "x-scope": "events",
        "description": "Burns the reward's points once per Idempotency-Key; the balance never goes "
                       "negative. A voucher reward issues a coupon.",
        "parameters": [member, key],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"$ref": redeem_ref}}}},
        "responses": responses({"200": {"description": "Redeemed.", "content": {JSON: {"schema": _REDEEM_RESPONSE}}}},
                               "400", "401", "403", "404", "413", "415", "422", "503", **{"409": _INSUFFICIENT}),
    }})
    doc.add_path("/v1/members/{member_id}/plans/{plan_id}", {"post": {
        "summary": "Start or renew a paid plan", "tags": ["points"], "security": _SECURITY, "x-scope": "events",
        "description": "Renews from the plan's current end while it is active, else from now; once per "
                       "Idempotency-Key. The fee is charged by the caller's checkout (fee_minor says how much).",
        "parameters": [member, {"name": "plan_id", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                                "description": "A plan of the program's points.plans."}, key],
        "responses": responses({"200": {"description": "Started or renewed.", "content": {JSON: {"schema": {
            "type": "object", "properties": {
                "member_id": {"type": "string", "description": "The member."},
                "plan": {"type": "string", "description": "The plan."},
                "title": {"type": "string", "description": "Its title."},
                "status": {"type": "string", "enum": ["started", "renewed", "duplicate"],
                           "description": "What this request did (duplicate: an earlier one with this key)."},
                "expires_at": {**_INT, "description": "When the plan now lapses (epoch seconds)."},
                "fee_minor": {**_INT, "description": "The plan's fee, minor units."}}}}}}},
            "400", "401", "403", "404", "422", "503"),
    }})
    referral_ref = doc.add_model(ReferralBody)
    doc.add_path("/v1/members/{member_id}/referral-code", {"post": {
        "summary": "A member's referral code", "tags": ["points"], "security": _SECURITY, "x-scope": "events",
        "description": "Drawn the first time, the same ever after.", "parameters": [member],
        "responses": responses({"200": {"description": "The code.", "content": {JSON: {"schema": {
            "type": "object", "properties": {
                "member_id": {"type": "string", "description": "The member."},
                "code": {"type": "string", "description": "Their referral code."},
                "referrals_made": {**_INT, "description": "Members they referred."},
                "referred_by": {"type": ["string", "null"], "description": "Who referred them, if anyone."}}}}}}},
            "401", "403", "404", "422", "503"),
    }})
    doc.add_path("/v1/referrals", {"post": {
        "summary": "Link a new member to their referrer", "tags": ["points"], "security": _SECURITY,
        "x-scope": "events",
        "description": "Once per new member; both earn at the new member's first qualifying purchase.",
        "parameters": [{**IDEMPOTENCY_HEADER, "description": "Replays the first successful response."}],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"$ref": referral_ref}}}},
        "responses": responses({"200": {"description": "Linked.", "content": {JSON: {"schema": {
            "type": "object", "properties": {
                "status": {"type": "string", "enum": ["linked"], "description": "Always linked."},
                "member_id": {"type": "string", "description": "The new member."}}}}}}},
            "400", "401", "403", "404", "413", "415", "422", "503",
            **{"409": problem_example("Refused (referral-refused): reason loop, already_referred, not_new or "
                                      "limit.", {"type": "/docs#problem-referral-refused",
                                                 "title": "Referral refused", "status": 409,
                                                 "detail": "this member was already referred",
                                                 "instance": "/v1/referrals",
                                                 "request_id": "7f0c2b9e4a1d4f7e9c3b5a6d7e8f9012",
                                                 "reason": "already_referred"})}),
    }})
    doc.add_path("/v1/admin/members/{member_id}/points/adjust", {"post": {
        "summary": "Add or take a member's points, with a reason", "tags": ["admin"], "security": _SECURITY,
        "x-scope": "admin", "parameters": [member, key],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"$ref": adjust_ref}}}},
        "responses": responses({"200": {"description": "Adjusted.", "content": {JSON: {"schema": _ADJUST_RESPONSE}}}},
                               "400", "401", "403", "404", "413", "415", "422", "503", **{"409": _INSUFFICIENT}),
    }})


_SECURITY: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"ApiKeyAuthorization": []}]
