"""OpenAPI documentation of the decision, batch and model endpoints.

Request schemas come from the pydantic models that validate them
(:mod:`service.decisions.bodies`); response schemas are written here next to the
renderer they describe (:mod:`runtime.decisions.outcome_json`).
"""

from __future__ import annotations

from typing import Any

from models.data_contract import CHANNELS, OFFER_KINDS
from models.timerange import DESCRIPTION
from service import openapi_examples as examples
from service.decisions.bodies import MAX_BATCH, MAX_EXCLUDED, MAX_OFFERS, BatchBody, DecisionBody
from service.openapi import (
    IDEMPOTENCY_HEADER,
    JSON,
    PROBLEMS,
    ApiDocument,
    id_schema,
    problem_example,
    timestamp_schema,
)

_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}

MEMBER_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "The member's tier state (local program time; the metric in its "
                                     "unit: minor units for spend programs).",
    "properties": {
        "member_id": {"type": "string", "description": "The member decided for."},
        "known": {"type": "boolean", "description": "Whether the member has purchase history (else cold start)."},
        "points_balance": {"type": "integer", "description": "Spendable points now (programs with a points "
                                                             "ledger only): offers priced in points need it."},
        "tier": {"type": "string", "description": "The tier held at the decision time (absent, like every "
                                                  "field below, when the program has no tier state)."},
        "tier_rank": {"type": "integer", "description": "Its rank: 0 for the entry tier, 1 for the next..."},
        "since": {**_NULLABLE_STR, "description": "When the member last entered the tier, RFC 3339 with the "
                                                  "program zone's offset; null when unknown."},
        "metric": {"type": "integer", "description": "The tier metric over the tier window: qualifying spend in "
                                                    "minor units, or points for points programs."},
        "metric_display": {"type": "string", "description": "The metric as a member reads it (\"$7,082\")."},
        "next_tier": {**_NULLABLE_STR, "description": "The tier above; null at the top."},
        "delta_to_next": {**_NULLABLE_INT, "description": "Metric still needed for the next tier, in the "
                                                          "metric's unit; null at the top."},
        "delta_to_keep": {"type": "integer", "description": "Metric to add before period_end to keep the tier, "
                                                            "in the metric's unit (0: already kept)."},
        "period_end": {**_NULLABLE_STR, "description": "Last moment the tier is held if the member buys nothing "
                                                       "more, RFC 3339 with the program zone's offset; null when "
                                                       "not applicable."},
        "projected_tier": {"type": "string", "description": "The tier the member's pace leads to at period_end."},
        "at_risk": {"type": "boolean", "description": "Whether projected_tier is lower than tier."},
        "progress": {"type": "number", "description": "Share of the next tier's threshold reached (1 at the top)."},
    },
}

OFFER_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["offer_id", "rank", "kind", "title", "propensity", "priority", "probability"],
    "properties": {
        "offer_id": {"type": "string", "description": "The offer (catalog id)."},
        "rank": {"type": "integer", "description": "Position in the slate, 1 first."},
        "kind": {"type": "string", "description": "Offer kind from the catalog: " + ", ".join(OFFER_KINDS) + "."},
        "title": {"type": "string", "description": "The catalog's title."},
        "text": {**_NULLABLE_STR, "description": "Member-specific text (\"Spend $42 by 31 Dec to reach Gold\"); "
                                                 "null when the offer has none."},
        "value": {"type": "number", "description": "Face value in the unit `value_unit` names."},
        "value_unit": {"type": "string", "enum": ["currency_minor", "percent", "multiplier", "points"],
                       "description": "Unit of `value`: minor units of the program's money (cents for "
                                      "USD), a percentage, a points multiplier, or points."},
        "value_display": {"type": ["string", "null"],
                          "description": "`value` as a member reads it (\"$1.50\", \"20%\", \"2x\", "
                                         "\"500 stars\"); null when the face value is unknown."},
        "propensity": {"type": "number", "description": "Calibrated redemption probability (or the fallback's)."},
        "priority": {"type": "number", "description": "Arbitration score, the expected net value of the send in "
                     "minor units: propensity x value x levers - cost, or uplift x value - cost for uplift models."},
        "uplift": {"type": ["number", "null"], "description": "Incremental conversion probability from an uplift "
                   "model; null for propensity models."},
        "net_value": {"type": "number", "description": "priority in major money units."},
        "send_cost": {"type": "number", "description": "What one send costs, in major money units."},
        "explored": {"type": "boolean", "description": "Whether exploration (not the greedy rank) chose it."},
        "probability": {"type": "number", "description": "Probability the policy chose this offer in its slot."},
        "tier_promo": {**_NULLABLE_STR, "description": "The tier mechanic the offer applies for this member: "
                                                       "upgrade_challenge, retention_nudge, tier_value or "
                                                       "tier_restricted; null for none."},
        "reasons": {"type": "array", "items": {"type": "string"},
                    "description": "Reason codes: eligibility, how it was scored and, with explain, the top "
                                   "feature contributions (FEATURE:name=+0.123)."},
        "requires_coupon": {"type": "boolean", "description": "Whether redeeming it needs a coupon code."},
        "coupon_code": {"type": "string", "description": "Canonical code, unique to this member (when issued)."},
        "coupon_display": {"type": "string", "description": "The code grouped for people."},
        "expires_at": {"type": "string", "format": "date-time",
                       "description": "Last moment the coupon can be redeemed, RFC 3339 UTC (when issued)."},
    },
}

DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["decision_id", "model_version", "member", "offers", "holdout", "took_ms"],
    "properties": {
        "decision_id": {"type": "string", "description": "Send it back with feedback events."},
        "model_version": {**_NULLABLE_STR, "description": "The model version that scored it; null without a "
                                                          "model (fallback policy)."},
        "as_of": {"type": "string", "format": "date-time", "description": "The decision time, RFC 3339 UTC (the "
                                                                         "service clock, or context.as_of)."},
        "placement": {**_NULLABLE_STR, "description": "The request's placement, echoed; null when none."},
        "member": {"$ref": "#/components/schemas/DecisionMember", "description": "The member's tier state."},
        "offers": {"type": "array", "items": {"$ref": "#/components/schemas/DecisionOffer"},
                   "description": "The slate, best first (may be shorter than n, or empty)."},
        "excluded": {"type": "array", "description": "Candidates not returned, each with its reason code (batch "
                                                     "lines only with include_excluded).",
                     "items": {"type": "object", "properties": {
                         "offer_id": {"type": "string", "description": "The offer left out."},
                         "reason": {"type": "string", "description": "Why, e.g. CHANNEL_NOT_ELIGIBLE, "
                                                                     "MEMBER_CAP_REACHED, BUDGET_EXHAUSTED, BUDGET_PACED (the "
                                                                     "budget's pacing allows no more yet), "
                                                                     "CONTACT_CAPPED (the member's contact "
                                                                     "policy), QUIET_HOURS, DIVERSITY_LIMIT, "
                                                                     "OFFER_CONTROL "
                                                                     "(the offer's control group), HOLDOUT, "
                                                                     "COST_EXCEEDS_VALUE (sending it would cost more "
                                                                     "than it is expected to earn), RULE_NOT_MET (the "
                                                                     "offer's targeting rule failed: see clause)."},
                         "clause": {"type": "string", "description": "RULE_NOT_MET only: the failing clause of the "
                                                                     "rule, its YAML path in the program then its "
                                                                     "text, e.g. \"offers[3].rule.all[0]: "
                                                                     "context.cart.total >= 20\"."}}}},
        "holdout": {"type": "boolean", "description": "Whether the member is in the control group (policy "
                                                      "holdout)."},
        "policy": {"type": "string", "enum": ["personalised", "cold_start", "holdout"],
                   "description": "personalised: model propensities; cold_start: a member without history or "
                                  "scores, ranked by popularity; holdout: the control group's fallback."},
        "explored": {"type": "boolean", "description": "Whether exploration chose any offer of the slate."},
        "scores": {"type": "string", "enum": ["cache", "computed", "none"],
                   "description": "Where the propensities came from: the score cache, computed now, or none "
                                  "(no model, or a member without history)."},
        "history": {"type": "string", "enum": ["ok", "none", "stale"],
                    "description": "The member's history records: ok, none (a new member) or stale (kept under "
                                   "another catalog, so not used)."},
        "degraded": {"type": ["string", "null"], "enum": ["store_unavailable", "store_data_lost", None],
                     "description": "store_unavailable when Redis could not be used: no history, nothing "
                                    "reserved, no coupons. store_data_lost when Redis answered without its "
                                    "generation marker (it lost its data): offers with a cap or a budget "
                                    "are withheld until offers materialize runs again."},
        "took_ms": {"type": "number", "description": "Time the service spent deciding, milliseconds."},
    },
}

SERVING_SCHEMA: dict[str, Any] = {"type": ["object", "null"], "properties": {
    "version": {"type": "string", "description": "The registry version served."},
    "loaded_at": {"type": "string", "format": "date-time", "description": "When this worker loaded it, RFC 3339 "
                                                                          "UTC."},
    "load_ms": {"type": "number", "description": "Time to load and warm it, milliseconds."},
    "predictor": {"type": "string", "enum": ["lleaves", "lightgbm"],
                  "description": "What evaluates the trees: lleaves (compiled) or lightgbm."},
    "last_known_good_for": {"type": ["string", "null"],
                            "description": "The champion this earlier version stands in for because the champion "
                                           "cannot be served (last-known-good); null when it is the champion."}}}


def _responses(ok: dict[str, Any], *codes: str) -> dict[str, Any]:
    return {**ok, **{c: PROBLEMS[c] for c in codes}}


def _secured(scope: str) -> dict[str, Any]:
    return {"security": [{"ApiKeyHeader": []}, {"ApiKeyAuthorization": []}], "x-scope": scope}


def _json(description: str, ref: str, example: dict[str, Any]) -> dict[str, Any]:
    """A JSON response: its description, schema reference and an example body."""
    return {"description": description, "content": {JSON: {"schema": {"$ref": ref}, "example": example}}}


def document(doc: ApiDocument) -> None:
    """Add the decision, batch and model paths to ``doc``."""
    body_ref = doc.add_model(DecisionBody)
    batch_ref = doc.add_model(BatchBody)
    doc.add_schema("DecisionMember", MEMBER_SCHEMA)
    doc.add_schema("DecisionOffer", OFFER_SCHEMA)
    doc.add_schema("Decision", DECISION_SCHEMA)
    doc.add_schema("ServingModel", SERVING_SCHEMA)
    decision = "#/components/schemas/Decision"
    idem = {**IDEMPOTENCY_HEADER,
            "description": "Replays the first successful response (same decision, same coupon codes) for 24-72 h."}
    doc.add_path("/v1/decisions", {"post": {
        "summary": "Decide a member's next best offers",
        "description": "Candidates are the offers valid at the decision time; eligibility, targeting rules "
                       "(which read context: store_id, device, location, cart and the program's declared "
                       "targeting.context keys; any other context key is a 422 naming it), caps and budgets "
                       "exclude some (each with a reason code), the model's propensities (cached per model "
                       "version) and the program's arbitration rank the rest. Returned offers are reserved "
                       "against member caps and budgets atomically and get coupon codes when they need one. "
                       "Unknown members get a cold-start decision. Without Redis the decision is still made "
                       "(degraded: no coupons).",
        "tags": ["decisions"], **_secured("decisions"), "parameters": [idem],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"$ref": body_ref},
                                                             "example": examples.DECISION_REQUEST}}},
        "responses": {**_responses({"200": _json("The decision.", decision, examples.DECISION)},
                                   "400", "401", "403", "409", "413", "415", "422", "503"),
                      "422": problem_example(PROBLEMS["422"]["description"], examples.PROBLEM_422)},
    }})
    query = [
        {"name": "member_id", "in": "path", "required": True, "schema": id_schema("member_id")},
        {"name": "channel", "in": "query", "schema": {"type": "string", "enum": list(CHANNELS), "default": "app"}},
        {"name": "n", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_OFFERS}},
        {"name": "placement", "in": "query", "schema": id_schema("placement")},
        {"name": "explain", "in": "query", "schema": {"type": "boolean"}},
        {"name": "as_of", "in": "query", "schema": timestamp_schema(),
         "description": "Replay at this moment (RFC 3339 with an offset, " + DESCRIPTION + ")."},
        {"name": "exclude_offer_ids", "in": "query", "style": "form", "explode": False,
         "schema": {"type": "array", "maxItems": MAX_EXCLUDED, "items": id_schema("offer_id")},
         "description": "Comma-separated offer ids not to return."},
    ]
    doc.add_path("/v1/members/{member_id}/offers", {"get": {
        "summary": "A member's next best offers (for apps)",
        "description": "The same decision as POST /v1/decisions, from query parameters.",
        "tags": ["decisions"], **_secured("decisions"), "parameters": query,
        "responses": _responses({"200": _json("The decision.", decision, examples.MEMBER_OFFERS)},
                                "401", "403", "422", "503"),
    }})
    doc.add_path("/v1/decisions/batch", {"post": {
        "summary": f"Decide for up to {MAX_BATCH:,} members, streamed as NDJSON",
        "description": "One line per member in request order (a decision document plus member_id), then "
                       "{\"summary\": {...}}. Caps and budgets hold across the batch and against real-time "
                       "traffic; every member gets coupon codes of their own. With an Idempotency-Key each "
                       "member's line is stored as it is decided: a retry streams the same decisions and codes "
                       "and decides only the members not reached before.",
        "tags": ["decisions"], **_secured("decisions"), "parameters": [idem],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"$ref": batch_ref},
                                                             "example": examples.BATCH_REQUEST}}},
        "responses": _responses({"200": {"description": "NDJSON stream: each line but the last is a Decision "
                                                        "plus member_id; the last is {\"summary\": {batch_id, "
                                                        "members, decided, replayed, offers, coupons, degraded, "
                                                        "took_ms (milliseconds)}}. No summary: the stream was "
                                                        "cut off, retry with the same Idempotency-Key.",
                                         "content": {"application/x-ndjson": {"schema": {"$ref": decision},
                                                                              "example": examples.BATCH_NDJSON}}}},
            "400", "401", "403", "409", "413", "415", "422", "503"),
    }})
    doc.add_path("/v1/models", {"get": {
        "summary": "Registered models and the one this worker serves",
        "tags": ["models"], **_secured("decisions"),
        "responses": _responses({"200": {"description": "Versions, aliases, serving model.", "content": {
            JSON: {"schema": {"type": "object", "properties": {
                "serving": {"$ref": "#/components/schemas/ServingModel"},
                "worker": {"type": "integer", "description": "Process id of the answering worker."},
                "aliases": {"type": "object", "additionalProperties": _NULLABLE_STR},
                "routing": {"type": ["object", "null"], "description": "Champion/challenger routing (null "
                            "without a registry): the share of members the challenger decides for, where "
                            "the share comes from, and the challenger this worker routes them to.",
                            "properties": {
                                "challenger_share": {"type": "number", "minimum": 0, "maximum": 1,
                                                     "description": "Share of members routed to the challenger."},
                                "source": {"type": "string", "enum": ["program", "registry"],
                                           "description": "program: decisions.challenger.share; registry: set "
                                                          "by offers models route."},
                                "challenger": {"$ref": "#/components/schemas/ServingModel"}}},
                "drift": {"type": "object", "description": "Per model version this worker serves: the population "
                          "stability index (PSI) of its rolling sample of live scores and features against "
                          "the model's training reference (0.1 moderate, 0.25 major shift; null: nothing "
                          "to compare).", "additionalProperties": {"type": "object", "properties": {
                              "rows": {"type": "integer", "description": "Rows in the rolling sample."},
                              "score": {"type": ["number", "null"], "description": "PSI of the scores."},
                              "features": {"type": "object", "description": "PSI per feature.",
                                           "additionalProperties": {"type": ["number", "null"]}}}}},
                "versions": {"type": "array", "items": {"type": "object"}}}}}}}}, "401", "403", "503"),
    }})
    doc.add_path("/v1/models/reload", {"post": {
        "summary": "Load the champion now and swap it in (this worker)",
        "description": "Loads and warms the registry's champion, then swaps it in without dropping requests. "
                       "A bad artifact is refused (409 model-rejected) and the old model keeps serving. Other "
                       "workers converge by themselves: each checks the champion alias at most once a second "
                       "and swaps in the background.",
        "tags": ["models"], **_secured("admin"),
        "responses": _responses({"200": {"description": "The serving model.", "content": {JSON: {"schema": {
            "type": "object", "properties": {
                "serving": {"$ref": "#/components/schemas/ServingModel"}, "previous": _NULLABLE_STR,
                "changed": {"type": "boolean"}, "worker": {"type": "integer"}}}}}}},
            "401", "403", "409", "503"),
    }})
