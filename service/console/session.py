"""Console sign-in: a signed session cookie, its scope, and CSRF tokens.

An operator signs in with an API key whose scope is ``admin`` (the whole console) or
``support`` (read-only). The key itself is never stored: the cookie holds the key's public
id, the console role and a random CSRF token, signed with :mod:`itsdangerous` under
``OFFERS_CONSOLE_SECRET`` and timestamped, so it expires after
``OFFERS_CONSOLE_SESSION_SECONDS`` even if the browser keeps it. It is ``HttpOnly`` and
``SameSite=Strict``. Every request re-checks that the key is still configured with that scope,
so removing a key from ``OFFERS_API_KEYS`` ends its sessions at the next restart.

Every state-changing form carries the session's CSRF token (``csrf_token``), compared in
constant time; the sign-in form, which has no session yet, carries a token bound to a
short-lived signed pre-session cookie instead (double submit).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from runtime.apikeys import Keyring
from service.state import current_state

COOKIE = "offers_console"
LOGIN_COOKIE = "offers_console_login"
#: Lifetime of the sign-in form's token.
LOGIN_SECONDS = 900
CONFIG = "offers_console_secret"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in operator: which key, which role (``admin`` or ``support``), its CSRF token."""

    key_id: str
    role: str
    csrf: str

    @property
    def admin(self) -> bool:
        """True when this session may change things (promote, rollback)."""
        return self.role == "admin"


def _serializer(salt: str) -> URLSafeTimedSerializer:
    """The signer for one kind of cookie (distinct salts: a login token is no session)."""
    return URLSafeTimedSerializer(current_app.config[CONFIG], salt=salt)


def role_of(keyring: Keyring, presented: str) -> tuple[str, str] | None:
    """(key id, console role) for a presented key, or None when it may not sign in."""
    key = keyring.match(presented)
    if key is None:
        return None
    if "admin" in key.scopes:
        return key.key_id, "admin"
    if "support" in key.scopes:
        return key.key_id, "support"
    return None


def read_session() -> ConsoleSession | None:
    """The valid, unexpired session of this request, or None."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    settings = current_state().settings
    try:
        data = _serializer("session").loads(raw, max_age=settings.console_session_seconds)
        session = ConsoleSession(key_id=str(data["k"]), role=str(data["r"]), csrf=str(data["c"]))
    except (BadSignature, KeyError, TypeError):
        return None
    key = current_state().keyring.find(session.key_id)
    if key is None or session.role not in key.scopes:
        return None
    return session


def start_session(response: Response, key_id: str, role: str) -> None:
    """Set the session cookie for a signed-in key (a fresh CSRF token each time)."""
    value = _serializer("session").dumps({"k": key_id, "r": role, "c": secrets.token_urlsafe(24)})
    response.set_cookie(COOKIE, value, max_age=current_state().settings.console_session_seconds,
                        httponly=True, samesite="Strict", secure=request.is_secure, path="/console")
    response.delete_cookie(LOGIN_COOKIE, path="/console")


def end_session(response: Response) -> None:
    """Drop the session cookie."""
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="Strict")


def login_token(response: Response) -> str:
    """A token for the sign-in form, bound to a pre-session cookie set on ``response``."""
    token = secrets.token_urlsafe(24)
    response.set_cookie(LOGIN_COOKIE, _serializer("login").dumps(token), max_age=LOGIN_SECONDS,
                        httponly=True, samesite="Strict", secure=request.is_secure, path="/console")
    return token


def login_token_valid() -> bool:
    """Whether the sign-in form's token matches its pre-session cookie (double submit)."""
    raw = request.cookies.get(LOGIN_COOKIE, "")
    try:
        expected = str(_serializer("login").loads(raw, max_age=LOGIN_SECONDS))
    except BadSignature:
        return False
    return hmac.compare_digest(expected, request.form.get("csrf_token", ""))


def csrf_valid(session: ConsoleSession) -> bool:
    """Whether the submitted form carries this session's CSRF token."""
    return hmac.compare_digest(session.csrf, request.form.get("csrf_token", ""))


def closed_page() -> tuple[str, int]:
    """The page every console URL shows when no key may sign in: closed, not open."""
    return render_template("console/closed.html", session=None), 403


def signed_in(admin: bool = False) -> Callable[[F], F]:
    """Decorate a console view: closed without console keys, to the sign-in page without a
    session, 403 for a support session on an ``admin`` view, 403 on a POST without the CSRF
    token. The session is in ``flask.g.console``."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_state().keyring.console_enabled:
                return closed_page()
            session = read_session()
            if session is None:
                if request.method != "GET":
                    return render_template("console/error.html", session=None,
                                           message="Your session has ended. Sign in again."), 401
                return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
            g.console = session
            if admin and not session.admin:
                return render_template("console/error.html", session=session,
                                       message="This action needs an admin key; support keys are read-only."), 403
            if request.method == "POST" and not csrf_valid(session):
                return render_template("console/error.html", session=session,
                                       message="The form's security token is missing or stale. "
                                               "Reload the page and try again."), 403
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
