"""API-key authentication and scopes for the endpoints.

A key is sent as ``Authorization: ApiKey <key>`` or ``X-API-Key: <key>`` and checked
in constant time (:mod:`runtime.apikeys`). Policy:

* ``admin`` endpoints need a key with the admin scope. When no configured key has it,
  admin endpoints answer 403 to everyone: they are never open.
* ``decisions`` and ``events`` endpoints need a key with that scope as soon as any key
  is configured. When ``OFFERS_API_KEYS`` is empty they are open, for a local demo;
  the app logs a warning at start-up saying so.
* A missing or unknown key is 401 (with ``WWW-Authenticate: ApiKey``); a known key
  without the scope is 403.

Use :func:`require_scope` on a view; the matched key is in ``flask.g.api_key`` (None
when the endpoint is open).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request

from runtime.apikeys import ApiKey, Keyring, Scope
from service.errors import FieldError, Forbidden, Unauthorized
from service.state import current_state

F = TypeVar("F", bound=Callable[..., Any])


def presented_key() -> str | None:
    """The key the request carries, or None; raise Unauthorized on a malformed header."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "apikey" or not value.strip():
            raise Unauthorized("the Authorization header must be 'ApiKey <key>'",
                               [FieldError(code="bad_scheme", header="Authorization",
                                           message="expected 'ApiKey <key>'")])
        return value.strip()
    alternative = request.headers.get("X-API-Key")
    return alternative.strip() if alternative is not None and alternative.strip() else None


def authorize(keyring: Keyring, scope: Scope) -> ApiKey | None:
    """The key allowed to call a ``scope`` endpoint, None when it is open; else raise."""
    if scope == "admin" and not keyring.admin_enabled:
        raise Forbidden("admin endpoints are disabled: no API key with the admin scope is "
                        "configured (OFFERS_API_KEYS)")
    if keyring.open:
        return None
    presented = presented_key()
    if presented is None:
        raise Unauthorized(f"this endpoint needs an API key with the '{scope}' scope: send "
                           "'Authorization: ApiKey <key>' or 'X-API-Key: <key>'")
    key = keyring.match(presented)
    if key is None:
        raise Unauthorized("the API key is not valid")
    if scope not in key.scopes:
        raise Forbidden(f"this API key does not have the '{scope}' scope")
    return key


def require_scope(scope: Scope) -> Callable[[F], F]:
    """Decorate a view so it runs only for a key with ``scope`` (see the module policy)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.api_key = authorize(current_state().keyring, scope)
            return view(*args, **kwargs)

        wrapper.required_scope = scope  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate
