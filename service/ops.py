"""Operational endpoints: liveness, readiness, metrics, the OpenAPI document and its page.

None of them needs an API key: they reveal no member data and are meant for load
balancers, Prometheus and developers on the private network.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify

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
    return jsonify(current_state().openapi.to_dict())


@bp.get("/docs")
def docs() -> Response:
    return Response(render(current_state().openapi.to_dict()), mimetype="text/html")
