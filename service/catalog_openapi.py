"""The live catalog's admin endpoints in the OpenAPI document (:mod:`service.catalog_admin` serves them)."""

from __future__ import annotations

from typing import Any

from models.program import OfferSpec
from service.openapi import JSON, PROBLEMS, ApiDocument, id_schema, problem_example

_STR_OR_NULL = {"type": ["string", "null"]}

OFFER_SCHEMA: dict[str, Any] = {"type": "object", "description": "An offer of the live catalog.", "properties": {
    "offer_id": {"type": "string", "description": "The offer."},
    "title": {"type": "string", "description": "Its title."},
    "kind": {"type": "string", "description": "Its kind (docs/data.md, offer kinds)."},
    "source": {"type": "string", "enum": ["contract", "program", "live"],
               "description": "Where its definition comes from: the data's offers table, the program file, "
                              "or the change log."},
    "status": {"type": "string", "enum": ["active", "paused", "retired"],
               "description": "Paused and retired offers are never issued."},
    "version": {"type": "integer", "description": "The version of its latest change (0: never changed); "
                                                  "its ETag, for If-Match."},
    "starts_at": {**_STR_OR_NULL, "description": "Validity start (local program time)."},
    "ends_at": {**_STR_OR_NULL, "description": "Validity end (local program time)."},
    "updated_at": {**_STR_OR_NULL, "description": "When it last changed (UTC)."},
    "updated_by": {**_STR_OR_NULL, "description": "Who changed it last (key:<public key id>)."},
    "problem": {"type": "string", "description": "Why its stored definition is not applied (the program "
                                                 "changed under it), when that happens."},
    "definition": {"type": ["object", "null"], "description": "The offer in program YAML keys (null for an "
                                                              "offer defined by the data)."}}}

CHANGE_SCHEMA: dict[str, Any] = {"type": "object", "description": "One change: a line of the change log.",
                                 "properties": {
    "version": {"type": "integer", "description": "The catalog's version after it (1, 2, ...)."},
    "at": {"type": "string", "description": "When (UTC, the machine clock)."},
    "who": {"type": "string", "description": "Who: key:<public id of the admin key>."},
    "op": {"type": "string", "enum": ["create", "replace", "update", "pause", "resume", "retire"],
           "description": "What kind of change."},
    "offer_id": {"type": "string", "description": "The offer."},
    "status": {"type": "string", "description": "Its status after the change."},
    "offer": {"type": ["object", "null"], "description": "Its definition after the change (null: the data's)."},
    "change": {"type": "object", "description": "What the request asked (its body)."}}}

EXAMPLE_PUT = {"kind": "amount_off", "title": "$5 off a $40 basket", "value": 5, "cost": 5,
               "channels": ["email", "app"], "caps": {"issues": 1}, "budget": {"count": 1000}}


#: Descriptions of the main offer keys; the others say where they are documented.
KEY_DESCRIPTIONS = {
    "id": "The offer id (optional: the path gives it; when present it must be the same).",
    "kind": "The offer kind (docs/data.md, offer kinds).", "title": "The title members see.",
    "value": "Its value: percent, multiplier, points, or major money units by kind.",
    "cost": "What one redemption costs (major money units).", "caps": "Per-member caps.",
    "budget": "A global budget: a count of issues and/or money.", "channels": "Channels it may be shown in.",
    "tiers": "Tiers it is for.", "lever": "Multiplier on its value term in arbitration.",
    "starts_at": "Validity start (local program time).", "ends_at": "Validity end (local program time).",
}


def offer_definition_schema() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The request body's schema: the program file's offer keys (:class:`models.program.OfferSpec`, so
    the document follows the validation) plus ``status``, and the schemas it refers to (prefixed
    ``Offer``), every property described."""
    schema = OfferSpec.model_json_schema(ref_template="#/components/schemas/Offer{model}")
    defs = {f"Offer{name}": sub for name, sub in schema.pop("$defs", {}).items()}
    for name, sub in [("OfferDefinition", schema), *defs.items()]:
        for key, prop in sub.get("properties", {}).items():
            own = KEY_DESCRIPTIONS.get(key) if name == "OfferDefinition" else None
            prop.setdefault("description", own or f"The `{key}` key as in the program file's offers "
                                                  "(docs/program-config.md).")
    schema["required"] = [k for k in schema.get("required", []) if k != "id"]
    schema["properties"]["status"] = {"type": "string", "enum": ["active", "paused"],
                                      "description": "active (default) or paused; DELETE retires."}
    schema["title"] = "OfferDefinition"
    schema["description"] = "An offer as written in the program YAML's offers (docs/program-config.md)."
    return schema, defs


def add_catalog_paths(doc: ApiDocument) -> None:
    """Document the live catalog's endpoints in ``doc``."""
    doc.add_schema("CatalogOffer", OFFER_SCHEMA)
    doc.add_schema("CatalogChange", CHANGE_SCHEMA)
    definition, defs = offer_definition_schema()
    for name, sub in defs.items():
        doc.add_schema(name, sub)
    doc.add_schema("OfferDefinition", definition)
    spec_ref = "#/components/schemas/OfferDefinition"
    secured = {"security": [{"ApiKeyHeader": []}, {"ApiKeyAuthorization": []}], "x-scope": "admin",
               "tags": ["admin"]}
    offer = {"name": "offer_id", "in": "path", "required": True, "schema": id_schema("offer_id")}
    if_match = {"name": "If-Match", "in": "header", "required": False,
                "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
                "description": "The offer's ETag (\"3\"): change it only if it is still at that version."}
    one = {"description": "The offer after the change, with the change.", "headers": {
        "ETag": {"schema": {"type": "string"}, "description": "The offer's version."}},
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/CatalogOffer"}}}}
    invalid = problem_example("A body field is invalid; each error names it.", {
        "type": "/docs#problem-validation-failed", "title": "Validation failed", "status": 422,
        "detail": "the offer is not valid", "instance": "/v1/admin/offers/weekend",
        "request_id": "6f1c2b3a4d5e4f60718293a4b5c6d7e8",
        "errors": [{"pointer": "/caps/issues", "code": "invalid_offer",
                                                        "message": "caps.issues: Input should be greater than 0"}]})
    changes = {"412": PROBLEMS["409"] | {"description": "If-Match names a version the offer no longer has."},
               "409": {**PROBLEMS["409"], "description": "The offer is retired (PUT a definition to bring it back)."},
               "422": invalid}
    common = {c: PROBLEMS[c] for c in ("400", "401", "403", "413", "415", "503")}
    body_schema = {"$ref": spec_ref}
    doc.add_path("/v1/admin/offers", {"get": {
        "summary": "The live catalog: every offer with its status and version", **secured,
        "responses": {"200": {"description": "The catalog.", "content": {JSON: {"schema": {
            "type": "object", "properties": {
                "version": {"type": "integer", "description": "The change log's version this worker applies."},
                "worker": {"type": "integer", "description": "The answering worker's process id."},
                "offers": {"type": "array", "items": {"$ref": "#/components/schemas/CatalogOffer"}}}}}}},
            **{c: PROBLEMS[c] for c in ("401", "403", "503")}}}})
    doc.add_path("/v1/admin/offers/{offer_id}", {
        "get": {"summary": "One offer with its definition", **secured, "parameters": [offer],
                "responses": {"200": one, **{c: PROBLEMS[c] for c in ("401", "403", "404", "422", "503")}}},
        "put": {"summary": "Create an offer or replace its whole definition", **secured,
                "parameters": [offer, if_match],
                "requestBody": {"required": True, "content": {JSON: {"schema": body_schema, "example": EXAMPLE_PUT}}},
                "responses": {"200": one, "201": {**one, "description": "Created."}, **common, **changes}},
        "patch": {"summary": "Change some keys (JSON merge patch) and/or the status (pause, resume)", **secured,
                  "parameters": [offer, if_match],
                  "requestBody": {"required": True, "content": {JSON: {
                      "schema": {"type": "object", "minProperties": 1,
                                 "description": "Offer keys to change (null removes a key) and/or status."},
                      "example": {"status": "paused"}}}},
                  "responses": {"200": one, "404": PROBLEMS["404"], **common, **changes}},
        "delete": {"summary": "Retire an offer: never issued again", **secured, "parameters": [offer, if_match],
                   "responses": {"200": one, "404": PROBLEMS["404"], "422": PROBLEMS["422"],
                                 **{c: PROBLEMS[c] for c in ("400", "401", "403", "503")},
                                 "409": changes["409"], "412": changes["412"]}}})
    doc.add_path("/v1/admin/offers/{offer_id}/history", {"get": {
        "summary": "The offer's audit trail: every change, who, when and what", **secured, "parameters": [offer],
        "responses": {"200": {"description": "Oldest first.", "content": {JSON: {"schema": {
            "type": "object", "properties": {"offer_id": {"type": "string", "description": "The offer."},
                                             "changes": {"type": "array", "items": {
                                                 "$ref": "#/components/schemas/CatalogChange"}}}}}}},
            **{c: PROBLEMS[c] for c in ("401", "403", "404", "422", "503")}}}})
