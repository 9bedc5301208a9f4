"""The operator console: server-rendered pages under ``/console`` for marketers and support.

:func:`init_console` (called by :func:`service.app.create_app`) registers the blueprint and
the session secret. Pages: sign-in (:mod:`.auth_views`), a member's current decision
(:mod:`.member_page`), the offer catalog with budget burn and its pause and edit forms
(:mod:`.offers_page`, :mod:`.offer_forms`), the models with promote and rollback
(:mod:`.model_page`), the lift figures (:mod:`.lift_page`) and the campaign preview
(:mod:`.preview_page`). Sign-in and CSRF: :mod:`.session`.
"""

from __future__ import annotations

import secrets

from flask import Flask

from service.console import (  # noqa: F401  (routes)
    auth_views,
    lift_page,
    member_page,
    model_page,
    offer_forms,
    offers_page,
    preview_page,
)
from service.console.blueprint import bp
from service.console.session import CONFIG


def init_console(app: Flask) -> None:
    """Register the console on ``app`` with its signing secret (``OFFERS_CONSOLE_SECRET``, or a
    random one for this process when unset)."""
    secret = app.extensions["offers"].settings.console_secret
    app.config[CONFIG] = secret.get_secret_value() if secret is not None else secrets.token_urlsafe(32)
    app.register_blueprint(bp)
