"""Sign-in, sign-out and the console's home page."""

from __future__ import annotations

from flask import g, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from service.console.blueprint import bp
from service.console.session import (
    closed_page,
    end_session,
    login_token,
    login_token_valid,
    read_session,
    role_of,
    signed_in,
    start_session,
)
from service.state import current_state


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: only a console path, never another site."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return url_for("console.home")


def _login_page(message: str | None, status: int) -> Response:
    """The sign-in form with a fresh double-submit token."""
    response = make_response()
    token = login_token(response)
    response.set_data(render_template("console/login.html", session=None, message=message, csrf_token=token,
                                      next=request.values.get("next", "")))
    response.status_code = status
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int]:
    """GET: the sign-in form. POST: check the form's token and the key, then start a session."""
    keyring = current_state().keyring
    if not keyring.console_enabled:
        return closed_page()
    if request.method == "GET":
        if read_session() is not None:
            return redirect(_safe_next(request.args.get("next")))
        return _login_page(None, 200)
    if not login_token_valid():
        return _login_page("The sign-in form expired. Try again.", 403)
    found = role_of(keyring, request.form.get("api_key", "").strip())
    if found is None:
        return _login_page("This key cannot sign in to the console (unknown key, or neither the "
                           "admin nor the support scope).", 401)
    response = redirect(_safe_next(request.form.get("next")), code=303)
    start_session(response, *found)
    return response


@bp.post("/logout")
@signed_in()
def logout() -> Response:
    """End the session (a CSRF-protected form, so no page can sign an operator out)."""
    response = redirect(url_for("console.login"), code=303)
    end_session(response)
    return response


@bp.get("/")
@signed_in()
def home() -> str:
    """The console's front page: what each page shows."""
    return render_template("console/home.html", session=g.console)
