"""The model endpoints: what this worker serves, and a forced hot swap.

``GET /v1/models`` (scope ``decisions``)
    Registered versions with their aliases and headline metrics, and the version this
    worker serves (with its process id: under gunicorn each worker answers for itself);
    ``serving.last_known_good_for`` names the champion it stands in for when the champion
    cannot be served (:mod:`runtime.decisions.model_holder`), else null. ``routing`` gives the
    challenger's share of members, where it comes from (``program`` or ``registry``) and the
    challenger model this worker routes them to (null while it routes none:
    :mod:`runtime.decisions.routing`). ``drift`` gives, per model version this worker serves,
    the population stability index of its rolling live sample against the model's training
    reference, for the score and every feature (:mod:`runtime.drift`).
``POST /v1/models/reload`` (scope ``admin``)
    Load and warm the registry's current champion in this worker, then swap it in. A bad
    artifact is refused (409 ``model-rejected``) and the old model keeps serving. Other
    workers pick the new champion up by themselves within about a second of their next
    request (:mod:`runtime.decisions.model_holder`).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Response, jsonify

from models.registry import RegistryError
from runtime.decisions.model_holder import ModelHolder, ModelRejected, ServingModel
from runtime.decisions.outcome_json import rfc3339
from service.auth import require_scope
from service.errors import ArtifactRejected, ServiceUnavailable
from service.state import current_decisions

bp = Blueprint("models", __name__)


def serving_json(serving: ServingModel | None) -> dict[str, Any] | None:
    if serving is None:
        return None
    return {"version": serving.version, "loaded_at": rfc3339(serving.loaded_at),
            "load_ms": round(serving.load_ms, 1), "predictor": serving.model.predictor,
            "last_known_good_for": serving.stands_in_for}


def _holder() -> ModelHolder:
    service = current_decisions()
    if not service.configured or service.state.settings.registry is None:
        raise ServiceUnavailable("no model registry is configured (OFFERS_REGISTRY)", retry_after=60)
    service.require()
    assert service.holder is not None
    return service.holder


@bp.get("/v1/models")
@require_scope("decisions")
def list_models() -> Response:
    holder = _holder()
    serving = holder.current()
    try:
        registry = holder.registry()
        versions = [{"version": v.version, "created_at": v.created_at, "aliases": list(v.aliases),
                     "train_end": v.train_end, "metrics": v.metrics} for v in registry.list()]
        aliases = registry.aliases()
    except RegistryError as exc:
        raise ServiceUnavailable(f"the model registry cannot be read: {exc}") from exc
    router = current_decisions().router
    routing = None
    if router is not None:
        share = router.share()
        challenger = router.challenger_serving()
        routing = {"challenger_share": share,
                   "source": router.share_source(),
                   "challenger": serving_json(challenger)}
    drift = {version: _finite(snapshot) for version, snapshot in current_decisions().drift_snapshots().items()}
    return jsonify({"serving": serving_json(serving), "worker": os.getpid(), "aliases": aliases,
                    "routing": routing, "drift": drift, "versions": versions})


def _finite(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A drift snapshot with NaN (nothing to compare) as null, for JSON."""
    def clean(v: float) -> float | None:
        return None if v != v else round(v, 6)
    return {"rows": snapshot["rows"], "score": clean(snapshot["score"]),
            "features": {k: clean(v) for k, v in snapshot["features"].items()}}


@bp.post("/v1/models/reload")
@require_scope("admin")
def reload_model() -> Response:
    holder = _holder()
    try:
        result = holder.load()
    except ModelRejected as exc:  # counted by the holder's on_reject hook
        serving = holder.serving
        raise ArtifactRejected(
            f"the champion {exc.version or '(none)'} cannot be served: {exc.reason}; still serving "
            f"{serving.version if serving else 'no model'}") from exc
    if not result.changed:
        current_decisions().state.metrics.record_model_load("unchanged")
    return jsonify({"serving": serving_json(result.serving), "previous": result.previous,
                    "changed": result.changed, "worker": os.getpid()})
