"""Request ids: honour a well-formed ``X-Request-ID`` from the caller, otherwise make one.

The id is set before any other request hook runs, returned in the ``X-Request-ID``
response header, added to every log record emitted while the request is handled and to
every problem body.
"""

from __future__ import annotations

import uuid

from flask import g, has_request_context, request

from service.validation import is_valid

HEADER = "X-Request-ID"


def assign_request_id() -> None:
    """``before_request`` hook: take the caller's id when valid, else generate one."""
    given = request.headers.get(HEADER, "")
    g.request_id = given if is_valid("request_id", given) else uuid.uuid4().hex


def request_id() -> str | None:
    """The current request's id, or None outside a request."""
    if not has_request_context():
        return None
    rid = g.get("request_id")
    if rid is None:  # an error raised before the hooks ran (e.g. routing): assign now
        assign_request_id()
        rid = g.request_id
    return str(rid)
