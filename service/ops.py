"""Operational endpoints: liveness, readiness, metrics, the OpenAPI document and its page.

None of them needs an API key: they reveal no member data and are meant for load
balancers, Prometheus and developers on the private network.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify

from service.decisions.context import declared_context_schema
from service.docs_page import render
from service.state import current_state

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers HTTP. Never touches Redis or the model."""
    return jsonify({"status": "ok"})


#: An absolute filesystem path in a readiness detail (a registry, a data directory...).
_PATH = re.compile(r"(?<![\w.:/])/[^\s'\",;:]+")


def public_detail(detail: str) -> str:
    """A readiness detail without filesystem paths: /readyz needs no key, the log keeps them."""
    return _PATH.sub("<path>", detail)


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness: 200 when every registered check passes, else 503 listing the failures."""
    ready, results = current_state().readiness.evaluate()
    body = {"status": "ready" if ready else "not ready",
            "checks": {n: {"ok": r.ok, "detail": public_detail(r.detail)} for n, r in results.items()}}
    return jsonify(body), 200 if ready else 503


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition (all gunicorn workers merged in multiprocess mode)."""
    payload, content_type = current_state().metrics.exposition()
    return Response(payload, content_type=content_type)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI document, with this deployment's custom decision-context keys once its program is loaded."""
    return jsonify(served_document())


def served_document() -> dict[str, Any]:
    """The app's document plus the program's declared ``targeting.context`` keys in DecisionContext
    (a request with any other key is refused, as the document's ``additionalProperties: false`` says)."""
    state = current_state()
    doc = state.openapi.to_dict()
    setup = state.decisions.setup if state.decisions is not None else None
    context = doc.get("components", {}).get("schemas", {}).get("DecisionContext")
    if setup is not None and context is not None:
        context.setdefault("properties", {}).update(declared_context_schema(setup.program))
    return doc


@bp.get("/docs")
def docs() -> Response:
    return Response(render(served_document()), mimetype="text/html")
