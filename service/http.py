"""Request plumbing every endpoint shares: request ids, body limits, JSON bodies, access logs.

:func:`install` adds the hooks to an app; views call :func:`read_json` for their body.
``read_json`` accepts only ``application/json`` (or a ``+json`` type) and turns every
way a body can be unreadable into a problem: 415 for another media type, 413 above
``OFFERS_MAX_BODY_BYTES``, 400 for empty or malformed JSON (with line and column),
``NaN``/``Infinity`` or nesting too deep. Numbers with a fraction are parsed as
:class:`~decimal.Decimal`, so money never passes through a binary float.
"""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal
from typing import Any

from flask import Flask, Response, g, request

from service.errors import MalformedJSON, PayloadTooLarge, UnsupportedMediaType
from service.request_log import logged_path
from service.requestid import HEADER, assign_request_id, request_id
from service.state import current_state

access_log = logging.getLogger("service.access")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def is_json_mimetype(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/")
                                              and mimetype.endswith("+json"))


def read_json() -> Any:
    """The request body parsed as JSON; raise the matching problem when it cannot be."""
    if not is_json_mimetype(request.mimetype):
        shown = request.mimetype or "none"
        raise UnsupportedMediaType(f"send the body as application/json (Content-Type was {shown})")
    raw = request.get_data(cache=True)
    limit = current_state().settings.max_body_bytes
    if len(raw) > limit:  # a body without Content-Length (chunked) that went past the limit
        raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
    if not raw.strip():
        raise MalformedJSON("the body is empty; send a JSON document")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJSON(f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MalformedJSON(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} "
                            f"column {exc.colno}") from None
    except ValueError as exc:  # NaN/Infinity, or an integer too long to convert
        raise MalformedJSON(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedJSON("the body is nested too deeply") from None


def _before() -> None:
    g.started = time.perf_counter()
    assign_request_id()
    limit = current_state().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body has {request.content_length} bytes; the limit is {limit}")


#: Path variables that are secrets (coupon codes): logs show them masked.
def _after(response: Response) -> Response:
    rid = request_id()
    if rid:
        response.headers[HEADER] = rid
    started = g.get("started")
    seconds = time.perf_counter() - started if started is not None else 0.0
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    current_state().metrics.observe_request(endpoint, request.method, response.status_code, seconds)
    path = logged_path()
    access_log.info("%s %s %s", request.method, path, response.status_code, extra={
        "method": request.method, "path": path, "status": response.status_code,
        "duration_ms": round(seconds * 1000, 3), "remote_addr": request.remote_addr,
        "endpoint": endpoint})
    return response


def install(app: Flask) -> None:
    """Add the request hooks and the body size limit to ``app``."""
    # werkzeug stops reading a body without Content-Length at MAX_CONTENT_LENGTH without
    # an error; one byte of slack lets read_json tell "exactly the limit" from "more".
    app.config["MAX_CONTENT_LENGTH"] = app.extensions["offers"].settings.max_body_bytes + 1
    app.before_request(_before)
    app.after_request(_after)
