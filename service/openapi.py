"""The OpenAPI 3.1 document served at ``/openapi.json`` (and rendered at ``/docs``).

Paths are written by hand next to the endpoints they describe; request schemas come
from the pydantic models, so they cannot drift from what is validated. Other parts of
the service add their endpoints at start-up::

    state.openapi.add_path("/v1/decisions", {"post": {...}})
    state.openapi.add_schema("Decision", {...})

A test checks that every route the app serves is documented.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from models.timerange import DESCRIPTION, YEAR_PATTERN
from runtime.stores.values import MONTHS_KEPT, RECENT_LIMIT
from service import openapi_examples as examples
from service.errors import PROBLEM_JSON
from service.validation import IDEMPOTENCY_KEY, PATTERNS, describe

JSON = "application/json"


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


#: Problem responses shared by the endpoints.
PROBLEMS = {
    "400": _problem("Malformed JSON or request."),
    "401": _problem("No API key, or an unknown one."),
    "403": _problem("The key lacks the scope (or admin is not enabled)."),
    "404": _problem("Not found."),
    "409": _problem("A request with this Idempotency-Key is in flight."),
    "413": _problem("Body larger than OFFERS_MAX_BODY_BYTES."),
    "415": _problem("Body is not application/json."),
    "422": _problem("Invalid content; `errors` names each field with a JSON pointer."),
    "503": _problem("A dependency is unavailable; retry after Retry-After seconds."),
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail", "instance", "request_id"],
    "properties": {
        "type": {"type": "string", "description": "Problem type URI (see /docs#problems)."},
        "title": {"type": "string", "description": "Short summary of the problem type (the same for every "
                                                    "problem of this type)."},
        "status": {"type": "integer", "description": "The HTTP status code, repeated."},
        "detail": {"type": "string", "description": "What went wrong with this request, for people."},
        "instance": {"type": "string", "description": "The request path."},
        "request_id": {"type": "string", "description": "The request's id (the caller's well-formed "
                                                         "X-Request-ID, else a generated one); logs carry it too."},
        "errors": {"type": "array", "description": "One entry per offending field (validation problems).",
                   "items": {
            "type": "object", "required": ["code", "message"],
            "properties": {
                "pointer": {"type": "string", "description": "RFC 6901 pointer into the body."},
                "parameter": {"type": "string", "description": "Path or query parameter."},
                "header": {"type": "string", "description": "Request header (e.g. Idempotency-Key)."},
                "code": {"type": "string", "description": "Machine-readable reason, e.g. missing, "
                                                          "string_pattern_mismatch, in_future."},
                "message": {"type": "string", "description": "The reason for people."}}}},
    },
}

EVENTS_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "What became of each event of a POST /v1/events request.",
    "properties": {
        "accepted": {"type": "integer", "description": "Events applied now (state updated, logged)."},
        "duplicates": {"type": "integer", "description": "Events ignored because their event_id was already "
                                                         "seen (earlier, or twice in this request)."},
        "results": {"type": "array", "description": "One entry per event, in request order.",
                    "items": {"type": "object", "properties": {
                        "event_id": {"type": "string", "description": "The event's id as sent."},
                        "status": {"type": "string", "enum": ["accepted", "duplicate"],
                                   "description": "accepted, or duplicate (ignored)."}}}}}}

READINESS_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "Readiness: ready when at least one check is registered and all pass.",
    "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"], "description": "ready (200) or not ready (503)."},
        "checks": {"type": "object", "description": "Each registered check by name (stores, catalog, model...).",
                   "additionalProperties": {"type": "object", "properties": {
                       "ok": {"type": "boolean", "description": "Whether the check passes."},
                       "detail": {"type": "string", "description": "Why not, or what it found (filesystem "
                                                                   "paths shown as <path>)."}}}}}}

_MONTHS = f"Keyed by month, YYYYMM in the program's time zone (the last {MONTHS_KEPT} months)"
MEMBER_STATE_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "A member's online state: what events told the service since the state was "
                                     "created (it expires OFFERS_STATE_TTL_SECONDS after its last write).",
    "properties": {
        "member_id": {"type": "string", "description": "The member."},
        "last_seen": {"type": ["integer", "null"], "description": "Last event of any type, epoch seconds; "
                                                                  "null when none."},
        "last_purchase": {"type": ["integer", "null"], "description": "Last transaction, epoch seconds; "
                                                                      "null when none."},
        "spend_minor": {"type": "integer", "description": "Spend since the state was created, minor units."},
        "purchases": {"type": "integer", "description": "Purchases since the state was created."},
        "monthly_spend": {"type": "object", "additionalProperties": {"type": "integer"},
                          "description": _MONTHS + ": spend in minor units."},
        "monthly_purchases": {"type": "object", "additionalProperties": {"type": "integer"},
                              "description": _MONTHS + ": number of purchases."},
        "counters": {"type": "array", "description": "Per (subject, offer): subject is impression, click, issue, "
                                                     "redeem or dismiss; total occurrences and the epoch seconds "
                                                     f"of the last {RECENT_LIMIT} (recent, oldest first).",
                     "items": {"type": "object"}}}}

COUPON_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "An issued coupon: its code, holder, offer, validity and redemption.",
    "properties": {
        "code": {"type": "string", "description": "Canonical code: upper-case letters and digits, the last a "
                                                  "check character."},
        "display": {"type": "string", "description": "The code grouped in fours with '-' for people."},
        "member_id": {"type": "string", "description": "The only member who may redeem it."},
        "offer_id": {"type": "string", "description": "The offer it was issued for."},
        "issued_at": {"type": "integer", "description": "When it was issued, epoch seconds."},
        "expires_at": {"type": "integer", "description": "Last moment it can be redeemed, epoch seconds."},
        "decision_id": {"type": ["string", "null"], "description": "The decision that issued it; null when "
                                                                   "none was recorded."},
        "redeemed_at": {"type": ["integer", "null"], "description": "When it was redeemed, epoch seconds; null "
                                                                    "until then."},
        "redeemed_event_id": {"type": ["string", "null"], "description": "The redeem event that used it; null "
                                                                         "until redeemed."}}}


#: The Idempotency-Key header parameter (service.validation.IDEMPOTENCY_KEY).
IDEMPOTENCY_HEADER: dict[str, Any] = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "pattern": "^" + IDEMPOTENCY_KEY.pattern + "$"},
    "description": "1-255 printable ASCII characters without spaces (a UUID is recommended)."}


def id_schema(kind: str) -> dict[str, Any]:
    """The JSON schema of an identifier (service.validation.PATTERNS), for path and query parameters."""
    return {"type": "string", "pattern": PATTERNS[kind][0].pattern, "description": describe(kind)}


def timestamp_schema() -> dict[str, Any]:
    """The JSON schema of a timestamp parameter (RFC 3339 with an offset, in the supported range)."""
    return {"type": "string", "format": "date-time", "pattern": YEAR_PATTERN,
            "description": f"RFC 3339 with an offset, {DESCRIPTION}."}


class ApiDocument:
    """A mutable OpenAPI document: paths and component schemas added by each part."""

    def __init__(self, title: str, version: str, description: str = ""):
        self._doc: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version, "description": description},
            "paths": {},
            "components": {"schemas": {"Problem": PROBLEM_SCHEMA}, "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "ApiKeyAuthorization": {"type": "apiKey", "in": "header", "name": "Authorization",
                                        "description": "`Authorization: ApiKey <key>`"}}},
        }

    def add_path(self, path: str, item: dict[str, Any]) -> None:
        """Add operations for ``path`` (merged with operations already there)."""
        self._doc["paths"].setdefault(path, {}).update(item)

    def add_schema(self, name: str, schema: dict[str, Any]) -> None:
        self._doc["components"]["schemas"][name] = schema

    def add_model(self, model: type[BaseModel]) -> str:
        """Add a pydantic model's JSON schema (and the models it uses); return its $ref."""
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            self.add_schema(name, sub)
        self.add_schema(model.__name__, schema)
        return f"#/components/schemas/{model.__name__}"

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._doc)


def _responses(ok: dict[str, Any], *codes: str) -> dict[str, Any]:
    return {**ok, **{c: PROBLEMS[c] for c in codes}}


def _json(description: str, schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    """A JSON response: its description, schema and (optionally) an example body."""
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {JSON: media}}


def problem_example(description: str, example: dict[str, Any]) -> dict[str, Any]:
    """A problem response with an example body (the shared :data:`PROBLEMS` have none)."""
    return {"description": description,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}, "example": example}}}


def _secured(scope: str) -> dict[str, Any]:
    return {"security": [{"ApiKeyHeader": []}, {"ApiKeyAuthorization": []}],
            "x-scope": scope}


def build_document(version: str, max_events: int = 1000) -> ApiDocument:
    """The document for the infrastructure endpoints (events, operations, admin).

    ``max_events`` is OFFERS_MAX_EVENTS_PER_REQUEST, so the document states the limit enforced.
    """
    from service.events.bodies import Event, EventBatch, RedeemBody

    doc = ApiDocument(
        "Loyalty offers", version,
        "Personalized loyalty offers: feedback events, operations and administration. "
        "Errors are RFC 9457 problem+json; POSTs accept an Idempotency-Key header.")
    event_ref = doc.add_model(Event)
    batch_ref = doc.add_model(EventBatch)
    batch_schema = EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    batch_schema.pop("$defs", None)
    batch_schema["properties"]["events"]["maxItems"] = max_events
    doc.add_schema("EventBatch", batch_schema)
    doc.add_schema("EventsResult", EVENTS_RESULT_SCHEMA)
    doc.add_schema("Readiness", READINESS_SCHEMA)
    doc.add_schema("MemberState", MEMBER_STATE_SCHEMA)
    doc.add_schema("Coupon", COUPON_SCHEMA)
    redeem_ref = doc.add_model(RedeemBody)

    idem = {**IDEMPOTENCY_HEADER, "description": "Replays the first successful response for 24-72 h."}
    doc.add_path("/v1/events", {"post": {
        "summary": "Record feedback events",
        "description": "One event, {\"events\": [...]}, or a list. Duplicated event_id values "
                       "are ignored and reported as such; accepted events update the member's "
                       "online state at once and are appended to the durable log.",
        "tags": ["events"], **_secured("events"), "parameters": [idem],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"oneOf": [
            {"$ref": event_ref}, {"$ref": batch_ref},
            {"type": "array", "minItems": 1, "maxItems": max_events, "items": {"$ref": event_ref}}]},
            "example": examples.EVENTS_REQUEST}}},
        "responses": _responses({"200": _json("Per-event outcome.",
                                              {"$ref": "#/components/schemas/EventsResult"},
                                              examples.EVENTS_RESULT)},
                                "400", "401", "403", "409", "413", "415", "422", "503"),
    }})
    member = {"name": "member_id", "in": "path", "required": True, "schema": id_schema("member_id")}
    doc.add_path("/v1/admin/members/{member_id}/state", {"get": {
        "summary": "A member's online state", "tags": ["admin"], **_secured("admin"),
        "parameters": [member],
        "responses": _responses({"200": _json("The state.", {"type": "object", "properties": {
            "state": {"$ref": "#/components/schemas/MemberState"}}})}, "401", "403", "422", "503"),
    }})
    doc.add_path("/v1/admin/members/{member_id}/cache", {"delete": {
        "summary": "Drop a member's cached scores", "tags": ["admin"], **_secured("admin"),
        "parameters": [member],
        "responses": _responses({"204": {"description": "Dropped."}}, "401", "403", "422", "503"),
    }})
    doc.add_path("/v1/admin/coupons/{code}", {"get": {
        "summary": "Look up a coupon code (normalised first)", "tags": ["admin"],
        **_secured("admin"),
        "parameters": [{"name": "code", "in": "path", "required": True, "schema": id_schema("coupon_code")}],
        "responses": _responses({"200": _json("The coupon.", {"$ref": "#/components/schemas/Coupon"})},
                                "401", "403", "404", "422", "503"),
    }})
    doc.add_path("/v1/coupons/{code}/redeem", {"post": {
        "summary": "Redeem a coupon at checkout",
        "description": "Checks the code, its member, its offer and its expiry, redeems it exactly "
                       "once and records the redeem event. A second redemption is 409 "
                       "coupon-already-redeemed with the first one's redeemed_at.",
        "tags": ["events"], **_secured("events"),
        "parameters": [{"name": "code", "in": "path", "required": True, "schema": id_schema("coupon_code"),
                        "description": "The code as typed (case, '-' and spaces do not matter).",
                        "example": examples.COUPON_CODE}, idem],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"$ref": redeem_ref},
                                                             "example": examples.REDEEM_REQUEST}}},
        "responses": dict(sorted(_responses({"200": _json("Redeemed.", {"type": "object", "properties": {
            "status": {"type": "string", "enum": ["redeemed"], "description": "Always redeemed."},
            "event_id": {"type": "string", "description": "The redeem event recorded (the body's event_id, "
                                                          "else a generated cr-... id)."},
            "redeemed_at": {"type": ["string", "null"], "description": "When it was redeemed, RFC 3339 UTC."},
            "coupon": {"$ref": "#/components/schemas/Coupon"}}}, examples.REDEEM_RESPONSE),
            "404": _problem("Unknown coupon code."),
            "409": _problem("Already redeemed (coupon-already-redeemed, with the first redeemed_at), expired "
                            "(coupon-expired), event_id used by another event, or a request with this "
                            "Idempotency-Key in flight."),
            "422": _problem("Malformed code (parameter code), a code of another member or offer (pointer "
                            "/member_id or /offer_id), or invalid body fields.")},
            "400", "401", "403", "413", "415", "503").items())),
    }})
    text = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    doc.add_path("/healthz", {"get": {"summary": "Liveness", "tags": ["operations"],
                                      "responses": {"200": _json("Alive.", {"type": "object"})}}})
    doc.add_path("/readyz", {"get": {
        "summary": "Readiness: every registered check passes", "tags": ["operations"],
        "responses": {"200": _json("Ready.", {"$ref": "#/components/schemas/Readiness"}),
                      "503": _json("Not ready.", {"$ref": "#/components/schemas/Readiness"})}}})
    doc.add_path("/metrics", {"get": {"summary": "Prometheus metrics", "tags": ["operations"],
                                      "responses": {"200": {"description": "Text exposition.", **text}}}})
    doc.add_path("/openapi.json", {"get": {"summary": "This document", "tags": ["operations"],
                                           "responses": {"200": _json("OpenAPI 3.1.", {"type": "object"})}}})
    doc.add_path("/docs", {"get": {"summary": "This document as HTML", "tags": ["operations"],
                                   "responses": {"200": {"description": "HTML page."}}}})
    return doc
