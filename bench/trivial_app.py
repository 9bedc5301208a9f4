"""The ceiling for the HTTP benchmarks: a trivial Flask JSON app.

Served by bench/bench_serving.py and bench/bench_events.py under exactly the service's
gunicorn configuration (``gunicorn -c python:service.gunicorn_conf bench.trivial_app:app``),
so the ratio service / trivial measures what the service adds on top of gunicorn, Flask,
JSON and the HTTP round trip on this machine.

``POST /echo`` parses the JSON body and answers a small JSON document (as an endpoint
that does no work would); ``GET /healthz`` and ``GET /readyz`` answer ``{"status": "ok"}``.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.post("/echo")
def echo() -> Response:
    """Parse the body, answer a few fields about it."""
    body = request.get_json(force=True, silent=True)
    return jsonify({"ok": True, "keys": len(body) if isinstance(body, dict | list) else 0})


@app.get("/healthz")
@app.get("/readyz")
def ready() -> Response:
    """Always ready."""
    return jsonify({"status": "ok"})
