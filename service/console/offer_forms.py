"""The offers page's forms (admin sessions only): pause or resume an offer, edit its definition.

Both go through the live catalog's editor (:class:`runtime.catalog.edits.CatalogEditor`), the
same validation and change log as ``PATCH``/``PUT /v1/admin/offers/{id}``; the audit trail names
the console session's key (``console:<key id>``). Every form carries the session's CSRF token;
a support (read-only) session sees no form and is refused (403) if it posts one anyway. The edit
form shows the offer in program YAML keys and carries the version it was read at, so an edit
made meanwhile by someone else is refused rather than overwritten.
"""

from __future__ import annotations

from typing import Any

import yaml
from flask import g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from runtime.catalog.changelog import CatalogLogError
from runtime.catalog.edits import (
    SETTABLE,
    CatalogEditor,
    InvalidChange,
    OfferRetired,
    VersionMismatch,
)
from runtime.catalog.follower import CatalogFollower
from runtime.catalog.live import LiveCatalog, definition
from service.console.blueprint import bp
from service.console.session import signed_in
from service.errors import NotFound
from service.state import current_decisions, current_state


def _follower() -> CatalogFollower:
    """This worker's live catalog, checked for changes (a 503 page while the engine loads)."""
    component = current_decisions()
    component.require()
    assert component.follower is not None
    return component.follower


def _editor(follow: CatalogFollower) -> CatalogEditor:
    return CatalogEditor(follow.changes, follow.base, current_state().wall_clock)


def _who() -> str:
    return f"console:{g.console.key_id}"


def _known(live: LiveCatalog, offer_id: str) -> str:
    if offer_id not in live.catalog.index:
        raise NotFound(f"the catalog has no offer {offer_id!r}")
    return offer_id


def _done(message: str) -> Response:
    return redirect(url_for("console.offers", done=message), code=303)


def _edit_page(live: LiveCatalog, offer_id: str, text: str, version: int, errors: list[str],
               status: int) -> tuple[str, int]:
    return render_template("console/offer_edit.html", session=g.console, offer=live.catalog[offer_id],
                           text=text, version=version, errors=errors, status=live.status(offer_id)), status


@bp.post("/offers/<offer_id>/status")
@signed_in(admin=True)
def offer_status(offer_id: str) -> Response | tuple[str, int]:
    """Pause or resume an offer (form field ``status``: ``paused`` or ``active``)."""
    follow = _follower()
    _known(follow.current, offer_id)
    wanted = request.form.get("status", "")
    if wanted not in SETTABLE:
        return render_template("console/error.html", session=g.console,
                               message=f"Unknown status {wanted!r}; use paused or active."), 422
    try:
        record = _editor(follow).patch(offer_id, {"status": wanted}, _who())
    except (InvalidChange, OfferRetired) as exc:
        return render_template("console/error.html", session=g.console, message=str(exc)), 409
    except CatalogLogError as exc:
        return render_template("console/error.html", session=g.console,
                               message=f"The catalog change log is unavailable: {exc}"), 503
    follow.refresh()
    verb = "paused" if wanted == "paused" else "resumed"
    return _done(f"{offer_id} {verb} (catalog version {record.version}); every worker applies it within a second")


@bp.route("/offers/<offer_id>/edit", methods=["GET", "POST"])
@signed_in(admin=True)
def offer_edit(offer_id: str) -> Response | tuple[str, int]:
    """GET: the offer's definition in a form. POST: validate and save it as the offer's new definition."""
    follow = _follower()
    live = follow.current
    _known(live, offer_id)
    if request.method == "GET":
        found = definition(live.catalog, live.latest, offer_id) if live.catalog[offer_id].source != "contract" \
            else None
        text = yaml.safe_dump(found, sort_keys=False, allow_unicode=True) if found is not None else ""
        return _edit_page(live, offer_id, text, live.offer_version(offer_id), [], 200)
    text = request.form.get("definition", "")
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        return _edit_page(live, offer_id, text, live.offer_version(offer_id), ["The form lost its version; "
                                                                               "reload the page."], 422)
    try:
        body: Any = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        return _edit_page(live, offer_id, text, version, [f"Not valid YAML: {exc}"], 422)
    if not isinstance(body, dict):
        return _edit_page(live, offer_id, text, version, ["Write the offer as YAML keys (kind, title, value...)."],
                          422)
    current = live.status(offer_id)
    if current in SETTABLE and "status" not in body:
        body["status"] = current  # an edit does not resume a paused offer
    try:
        record = _editor(follow).put(offer_id, body, _who(), expected=version)
    except InvalidChange as exc:
        return _edit_page(live, offer_id, text, version, [f"{path}: {message}" for path, message in exc.issues], 422)
    except VersionMismatch as exc:
        return _edit_page(live, offer_id, text, version, [f"{exc} (someone else changed it meanwhile)"], 409)
    except CatalogLogError as exc:
        return _edit_page(live, offer_id, text, version, [f"The catalog change log is unavailable: {exc}"], 503)
    follow.refresh()
    return _done(f"{offer_id} saved (catalog version {record.version}); every worker applies it within a second")
