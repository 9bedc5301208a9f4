"""The live catalog's admin endpoints (scope ``admin``): offers created, changed, paused, retired.

``GET /v1/admin/offers``                  the live catalog: every offer with its status and version
``GET /v1/admin/offers/<id>``             one offer with its definition (``ETag``: its version)
``GET /v1/admin/offers/<id>/history``     the offer's audit trail: every change, who, when, what
``PUT /v1/admin/offers/<id>``             create, or replace the whole definition (201 / 200)
``PATCH /v1/admin/offers/<id>``           change some keys (JSON merge patch) and/or ``status``
``DELETE /v1/admin/offers/<id>``          retire: never issued again

Bodies are an offer as written in the program YAML (docs/program-config.md, Offers), validated
by the program's own offer validation; ``status`` is ``active`` or ``paused``. A problem in the
body is a 422 whose ``errors`` name each field with a JSON pointer. ``If-Match: "<version>"``
makes a change conditional on the offer's version (412 when it moved on). The change is on disk
(runtime.catalog.changelog) and applied by this worker before the answer; every other worker
applies it within half a second of its next request (runtime.catalog.follower).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from runtime.catalog.changelog import CatalogLogError, ChangeRecord
from runtime.catalog.edits import (
    CatalogEditor,
    InvalidChange,
    OfferNotFound,
    OfferRetired,
    VersionMismatch,
)
from runtime.catalog.follower import CatalogFollower
from runtime.catalog.live import LiveCatalog, definition
from service.auth import require_scope
from service.errors import (
    BadRequest,
    Conflict,
    FieldError,
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
    ValidationFailed,
    json_pointer,
)
from service.http import read_json
from service.state import current_decisions, current_state
from service.validation import describe, is_valid

bp = Blueprint("catalog_admin", __name__, url_prefix="/v1/admin/offers")
_INDEX = re.compile(r"\[(\d+)\]")


def follower() -> CatalogFollower:
    """This worker's live catalog (checked for changes), or a 503 while the engine loads."""
    component = current_decisions()
    component.require()  # 503 while loading or not configured; polls the change log
    assert component.follower is not None  # set before the decider exists
    return component.follower


def checked_offer(offer_id: str) -> str:
    """The path's offer id, or a 422 naming the parameter."""
    if not is_valid("offer_id", offer_id):
        raise ValidationFailed("offer id is not valid", [FieldError(
            code="invalid_offer_id", parameter="offer_id", message=f"offer_id must be {describe('offer_id')}")])
    return offer_id


def expected_version() -> int | None:
    """The version ``If-Match`` names (``"3"``), None without the header or with ``*``."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    match = re.fullmatch(r'\s*"(\d+)"\s*', header)
    if match is None:
        raise BadRequest("If-Match must be an offer's ETag, such as \"3\"", [FieldError(
            code="bad_if_match", header="If-Match", message='expected "<version>" as given by ETag')])
    return int(match.group(1))


def who() -> str:
    """The audit trail's "who": the public id of the admin key that made the change."""
    key = g.get("api_key")
    return f"key:{key.key_id}" if key is not None else "key:unknown"


def field_pointer(path: str) -> list[str | int]:
    """A validation path (``caps.issues``, ``tiers[0]``) as JSON pointer parts."""
    if path in ("<body>", "<offer>", "<document>"):
        return []
    return [int(p) if p.isdigit() else p for p in _INDEX.sub(r".\1", path).split(".") if p]


def source_of(live: LiveCatalog, offer_id: str) -> str:
    """Where the offer's definition comes from: ``contract`` (the data), ``program`` or ``live``."""
    return live.catalog[offer_id].source


def offer_view(live: LiveCatalog, offer_id: str, full: bool = False) -> dict[str, Any]:
    """One offer as the API shows it: status, version, last change and (``full``) its definition."""
    offer = live.catalog[offer_id]
    last = live.latest.get(offer_id)
    out: dict[str, Any] = {
        "offer_id": offer_id, "title": offer.title, "kind": offer.kind, "source": offer.source,
        "status": live.status(offer_id), "version": live.offer_version(offer_id),
        "starts_at": None if offer.starts_at is None else offer.starts_at.isoformat(),
        "ends_at": None if offer.ends_at is None else offer.ends_at.isoformat(),
        "updated_at": last.at if last is not None else None, "updated_by": last.who if last is not None else None}
    if offer_id in live.problems:
        out["problem"] = live.problems[offer_id]
    if full:
        out["definition"] = definition(live.catalog, live.latest, offer_id) if offer.source != "contract" else None
    return out


def _with_etag(body: dict[str, Any], status: int = 200) -> tuple[Response, int]:
    response = jsonify(body)
    response.headers["ETag"] = f'"{body["version"]}"'
    return response, status


@contextmanager
def _translated() -> Iterator[None]:
    """The editor's refusals as problems: 422 (fields), 404, 409 (retired), 412 (version), 503 (log)."""
    try:
        yield
    except InvalidChange as exc:
        raise ValidationFailed("the offer is not valid", [FieldError(
            code="invalid_offer", pointer=json_pointer(field_pointer(path)), message=f"{path}: {message}")
            for path, message in exc.issues]) from None
    except OfferNotFound as exc:
        raise NotFound(f"the catalog has no offer {exc.args[0]!r}") from None
    except OfferRetired as exc:
        raise Conflict(str(exc)) from None
    except VersionMismatch as exc:
        raise PreconditionFailed(str(exc), [FieldError(code="stale_version", header="If-Match",
                                                        message=f"the offer's version is {exc.current}")]) from None
    except CatalogLogError as exc:
        raise ServiceUnavailable(f"the catalog change log is unavailable: {exc}", retry_after=5) from None


def _body() -> dict[str, Any]:
    """The JSON body, which must be an object of offer keys (422 otherwise)."""
    body = read_json()
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object of offer keys", [FieldError(
            code="not_an_object", pointer="", message="send an object such as {\"status\": \"paused\"}")])
    return body


def _applied(follow: CatalogFollower, record: ChangeRecord, created: bool = False) -> tuple[Response, int]:
    """Apply the change in this worker now and answer with the offer as it is after it."""
    live = follow.refresh()
    body = offer_view(live, record.offer_id, full=True)
    body["change"] = record.to_dict()
    return _with_etag(body, 201 if created else 200)


def _editor(follow: CatalogFollower) -> CatalogEditor:
    return CatalogEditor(follow.changes, follow.base, current_state().wall_clock)


@bp.get("")
@require_scope("admin")
def list_offers() -> Response:
    """The live catalog as this worker applies it (its pid in ``worker``): its version and every offer
    with its status and version."""
    live = follower().poll()
    return jsonify({"version": live.version, "worker": os.getpid(),
                    "offers": [offer_view(live, o.offer_id) for o in live.catalog.offers]})


@bp.get("/<offer_id>")
@require_scope("admin")
def get_offer(offer_id: str) -> tuple[Response, int]:
    """One offer with its definition; its ETag is its version."""
    live = follower().poll()
    if checked_offer(offer_id) not in live.catalog.index:
        raise NotFound(f"the catalog has no offer {offer_id!r}")
    return _with_etag(offer_view(live, offer_id, full=True))


@bp.get("/<offer_id>/history")
@require_scope("admin")
def history(offer_id: str) -> Response:
    """Every change of the offer, oldest first: version, when, who, what and the result."""
    follow = follower()
    checked_offer(offer_id)
    with _translated():
        changes = [r.to_dict() for r in follow.changes.read() if r.offer_id == offer_id]
    if not changes and offer_id not in follow.current.catalog.index:
        raise NotFound(f"the catalog has no offer {offer_id!r}")
    return jsonify({"offer_id": offer_id, "changes": changes})


@bp.put("/<offer_id>")
@require_scope("admin")
def put_offer(offer_id: str) -> tuple[Response, int]:
    """Create the offer or replace its whole definition."""
    follow = follower()
    checked_offer(offer_id)
    body = _body()
    with _translated():
        record = _editor(follow).put(offer_id, body, who(), expected_version())
    return _applied(follow, record, created=record.op == "create")


@bp.patch("/<offer_id>")
@require_scope("admin")
def patch_offer(offer_id: str) -> tuple[Response, int]:
    """Change some of the offer's keys and/or its status (pause, resume)."""
    follow = follower()
    checked_offer(offer_id)
    body = _body()
    with _translated():
        record = _editor(follow).patch(offer_id, body, who(), expected_version())
    return _applied(follow, record)


@bp.delete("/<offer_id>")
@require_scope("admin")
def retire_offer(offer_id: str) -> tuple[Response, int]:
    """Retire the offer."""
    follow = follower()
    checked_offer(offer_id)
    with _translated():
        record = _editor(follow).retire(offer_id, who(), expected_version())
    return _applied(follow, record)
