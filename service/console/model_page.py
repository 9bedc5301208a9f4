"""The model page: champion and challenger, headline metrics, feature importances, the
drift of this worker's live traffic against each served model's training reference, the
training report, and (admin only) promote and rollback, each behind a confirmation form.

Promotion goes through :meth:`models.registry.Registry.promote`, which proves the artifact
servable first, so a corrupt model is refused with its reason; after a change this worker
loads the new champion at once (others follow by themselves, see
:mod:`runtime.decisions.model_holder`).
"""

from __future__ import annotations

import json
from typing import Any

from flask import g, redirect, render_template, request, send_file, url_for
from werkzeug.wrappers import Response

from models.drift import level
from models.registry import Registry, RegistryError
from runtime.decisions.model_holder import ModelRejected
from service.console.blueprint import bp
from service.console.charts import bar_chart
from service.console.session import signed_in
from service.errors import NotFound, ServiceUnavailable
from service.state import current_decisions

TOP_FEATURES = 15
#: features listed per model in the drift table (largest PSI first)
DRIFT_FEATURES = 8


def registry() -> Registry:
    """The service's registry, or a 503 page when none is configured."""
    path = current_decisions().state.settings.registry
    if path is None:
        raise ServiceUnavailable("no model registry is configured (OFFERS_REGISTRY)")
    try:
        return Registry(path)
    except RegistryError as exc:
        raise ServiceUnavailable(f"the model registry cannot be read: {exc}") from exc


def known_version(reg: Registry, version: str) -> str:
    """``version`` when the registry has it (also keeps paths inside the registry), else 404."""
    if version not in reg.versions():
        raise NotFound(f"the registry has no version {version!r}")
    return version


def importances(reg: Registry, version: str | None) -> list[tuple[str, float]]:
    """The version's top features by total gain, from its metadata ([] when absent)."""
    if version is None:
        return []
    try:
        meta = json.loads((reg.path(version) / "metadata.json").read_text())
        items = [(str(k), float(v)) for k, v in dict(meta.get("feature_importance", {})).items()]
    except (OSError, ValueError, TypeError, AttributeError, RegistryError):
        return []
    return sorted(items, key=lambda kv: kv[1], reverse=True)[:TOP_FEATURES]


def drift_tables() -> list[dict[str, Any]]:
    """Per model this worker serves: its rolling live sample's score PSI and largest feature
    PSIs against the training reference (:mod:`runtime.drift`), with their levels."""
    out = []
    for version, snapshot in current_decisions().drift_snapshots().items():
        features = sorted(((k, v) for k, v in snapshot["features"].items() if v == v), key=lambda kv: -kv[1])
        out.append({"version": version, "rows": snapshot["rows"], "score": snapshot["score"],
                    "score_level": level(snapshot["score"]),
                    "features": [(k, v, level(v)) for k, v in features[:DRIFT_FEATURES]]})
    return out


def _page(message: str | None = None, status: int = 200) -> tuple[str, int]:
    """The model page, with an optional message (the outcome of a promote or rollback)."""
    reg = registry()
    try:
        versions, aliases = reg.list(), reg.aliases()
    except (RegistryError, OSError, ValueError) as exc:
        raise ServiceUnavailable(f"the model registry cannot be read: {exc}") from exc
    holder = current_decisions().holder
    serving = holder.serving if holder is not None else None
    features = importances(reg, aliases.get("champion"))
    chart = bar_chart("Feature importance of the champion (total gain)",
                      [(k, v, f"{v:,.0f}") for k, v in features]) if features else None
    by_version = {v.version: v for v in versions}
    return render_template("console/model.html", session=g.console, versions=versions[::-1], aliases=aliases,
                           champion=by_version.get(aliases.get("champion") or ""),
                           challenger=by_version.get(aliases.get("challenger") or ""),
                           serving=serving, chart=chart, features=features, drift=drift_tables(),
                           message=message), status


@bp.get("/models")
@signed_in()
def models() -> tuple[str, int]:
    """Champion, challenger, metrics, importances and every version."""
    return _page(page_message(request.args))


@bp.get("/models/<version>/report")
@signed_in()
def report(version: str) -> Response:
    """The version's HTML training report (its plots are embedded in it)."""
    reg = registry()
    path = reg.path(known_version(reg, version)) / "report.html"
    if not path.is_file():
        raise NotFound(f"version {version} has no training report")
    return send_file(path, mimetype="text/html")


@bp.get("/models/confirm")
@signed_in(admin=True)
def confirm() -> str:
    """The confirmation step before a promote or a rollback."""
    action = request.args.get("action", "")
    version = request.args.get("version", "")
    if action not in ("promote", "rollback"):
        raise NotFound("unknown model action; use promote or rollback")
    if action == "promote":
        known_version(registry(), version)
    return render_template("console/confirm.html", session=g.console, action=action, version=version)


def _reload() -> str:
    """Load the registry's champion in this worker; a sentence saying what happened."""
    holder = current_decisions().holder
    if holder is None:
        return "the registry changed; this worker has no model holder to reload"
    try:
        result = holder.load()
    except ModelRejected as exc:
        return f"but it cannot be served here ({exc.reason}); still serving the previous model"
    return f"this worker now serves {result.serving.version}" if result.serving else "no model is served"


@bp.post("/models/promote")
@signed_in(admin=True)
def promote() -> Response | tuple[str, int]:
    """Promote a version to champion after proving it servable; refuse a corrupt one."""
    reg = registry()
    version = known_version(reg, request.form.get("version", ""))
    try:
        reg.promote(version)
    except RegistryError as exc:
        return _page(f"Not promoted: {exc}", 409)
    return redirect(url_for("console.models", done=f"promoted {version}; {_reload()}"), code=303)


@bp.post("/models/rollback")
@signed_in(admin=True)
def rollback() -> Response | tuple[str, int]:
    """Point the champion back at the version it replaced."""
    reg = registry()
    try:
        version = reg.rollback()
    except RegistryError as exc:
        return _page(f"Not rolled back: {exc}", 409)
    return redirect(url_for("console.models", done=f"rolled back to {version}; {_reload()}"), code=303)


def page_message(args: Any) -> str | None:
    """The outcome sentence carried by the redirect after an action."""
    done = args.get("done")
    return str(done)[:300] if done else None
