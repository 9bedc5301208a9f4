"""The console's blueprint, its templates and static files, and its HTML error pages."""

from __future__ import annotations

from flask import Blueprint, g, render_template
from werkzeug.wrappers import Response

from service.errors import ServiceError

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")


@bp.errorhandler(ServiceError)
def service_error(exc: ServiceError) -> tuple[str, int]:
    """A service problem raised by a console page, shown as a page (never a JSON problem)."""
    return render_template("console/error.html", session=g.get("console"), message=exc.detail), exc.status


@bp.after_request
def no_store(response: Response) -> Response:
    """Console pages show member data: no cache may keep them; no page may be framed."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; "
                                                   "style-src 'self'; frame-ancestors 'none'")
    return response
