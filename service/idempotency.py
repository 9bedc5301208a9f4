"""Idempotent POSTs: the ``Idempotency-Key`` header binds a key to the first success.

Decorate a view with :func:`idempotent` (inside :func:`service.auth.require_scope`).
When the request carries ``Idempotency-Key`` (1-255 printable ASCII; a UUID is
recommended):

* the key is scoped to the caller's API key, method and path, and claimed atomically
  together with a SHA-256 of the raw body;
* a later request with the same key and the same body gets the stored response again
  (same status and body, header ``Idempotent-Replayed: true``) for
  ``OFFERS_IDEMPOTENCY_TTL_SECONDS`` (24-72 h);
* the same key with a different body is 422 ``idempotency-key-reused``;
* while the first request is still running, a second one gets 409 with ``Retry-After``;
* only 2xx responses are stored: after an error the key is released so the client can
  retry with it.

Without the header the view runs as usual.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, g, make_response, request

from runtime.stores import StoredResponse, StoreUnavailable
from service.errors import (
    Conflict,
    FieldError,
    IdempotencyKeyReused,
    ServiceUnavailable,
    ValidationFailed,
)
from service.state import current_state
from service.validation import IDEMPOTENCY_KEY

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
#: How long a claim without a response blocks the key (a crashed worker frees it after this).
LOCK_SECONDS = 60

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def scoped_key(key: str) -> str:
    """Digest of the key scoped to the caller, method and path (the store's record name)."""
    api_key = g.get("api_key")
    caller = api_key.key_id if api_key is not None else "anonymous"
    text = "\n".join((caller, request.method, request.path, key))
    return hashlib.sha256(text.encode()).hexdigest()


def _replay(record: StoredResponse) -> Response:
    resp = Response(record.body, status=record.status, content_type=record.content_type)
    resp.headers[REPLAYED] = "true"
    return resp


def idempotent(view: F) -> F:
    """Make a POST view idempotent under the ``Idempotency-Key`` header (see module)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise ValidationFailed("the Idempotency-Key header is not valid", [FieldError(
                code="invalid_idempotency_key", header=HEADER,
                message="1-255 printable ASCII characters (a UUID is recommended)")])
        store = current_state().store
        record_key = scoped_key(key)
        body_hash = hashlib.sha256(request.get_data(cache=True)).hexdigest()
        try:
            existing = store.idempotency_begin(record_key, body_hash, LOCK_SECONDS)
        except StoreUnavailable as exc:
            raise ServiceUnavailable("idempotency records are unavailable; retry shortly") from exc
        if existing is not None:
            if existing.request_hash != body_hash:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used with a different request body",
                    [FieldError(code="idempotency_key_reused", header=HEADER,
                                message="use a new key for a different request")])
            if existing.in_flight:
                raise Conflict("a request with this Idempotency-Key is still being handled",
                               headers={"Retry-After": "1"})
            return _replay(existing)
        try:
            response = make_response(view(*args, **kwargs))
        except BaseException:
            _release(record_key)
            raise
        if 200 <= response.status_code < 300:
            try:
                store.idempotency_finish(record_key, StoredResponse(
                    request_hash=body_hash, status=response.status_code,
                    body=response.get_data(), content_type=response.content_type or ""))
            except StoreUnavailable:
                log.warning("could not store the idempotent response; a retry will run again")
        else:
            _release(record_key)
        return response

    return cast(F, wrapper)


def _release(record_key: str) -> None:
    try:
        current_state().store.idempotency_abort(record_key)
    except StoreUnavailable:
        log.warning("could not release an idempotency key; it frees itself in %ss", LOCK_SECONDS)
