"""The ceiling for the HTTP benchmarks: a trivial Flask JSON app.

Served by bench/bench_serving.py and bench/bench_events.py under exactly the service's
gunicorn configuration (``gunicorn -c python:service.gunicorn_conf bench.trivial_app:app``),
so the ratio service / trivial measures what the service adds on top of gunicorn, Flask,
JSON and the HTTP round trip on this machine.

``POST /echo`` parses the JSON body and answers a small JSON document (as an endpoint
that does no work would); ``GET /healthz`` and ``GET /readyz`` answer ``{"status": "ok"}``.

With ``BENCH_REDIS_URL`` set, two more ceilings show what Redis round trips cost on this
machine (a real-time decision makes two: one pipelined read, one script call):

* ``POST /echo-redis``: the same, plus one ``GET`` of a 1 KB value;
* ``POST /echo-redis2``: the same, plus that ``GET`` and then one ``EVALSHA`` of a
  one-line script (``INCR`` of a counter), two sequential round trips.
"""

from __future__ import annotations

import os

from flask import Flask, Response, jsonify, request

app = Flask(__name__)
_redis: dict[str, object] = {}
KEY, COUNTER = "bench:trivial:value", "bench:trivial:n"


def _client() -> object:
    """The worker's Redis client (made after the fork, on first use) and the script."""
    if "client" not in _redis:
        import redis

        client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
        client.set(KEY, b"x" * 1024)
        _redis["client"] = client
        _redis["script"] = client.register_script("return redis.call('INCR', KEYS[1])")
    return _redis["client"]


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


@app.post("/echo-redis")
def echo_redis() -> Response:
    """/echo plus one Redis GET of a 1 KB value."""
    body = request.get_json(force=True, silent=True)
    value = _client().get(KEY)  # type: ignore[attr-defined]
    return jsonify({"ok": True, "keys": len(body) if isinstance(body, dict | list) else 0, "bytes": len(value or b"")})


@app.post("/echo-redis2")
def echo_redis2() -> Response:
    """/echo plus a Redis GET and then an EVALSHA: two sequential round trips, like a decision."""
    body = request.get_json(force=True, silent=True)
    value = _client().get(KEY)  # type: ignore[attr-defined]
    n = _redis["script"](keys=[COUNTER])  # type: ignore[operator]
    return jsonify({"ok": True, "keys": len(body) if isinstance(body, dict | list) else 0, "bytes": len(value or b""),
                    "n": int(n)})
