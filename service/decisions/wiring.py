"""Wiring the decisions into an app: endpoints, OpenAPI documentation, the loading component.

Kept apart from :mod:`service.decisions.component` so that the endpoints can import the
component's type while the component never imports the endpoints (no import cycle).
"""

from __future__ import annotations

import logging

from flask import Flask

from service.decisions import batch, model_routes, openapi_doc, routes
from service.decisions.component import DecisionsComponent
from service.state import EXTENSION, ServiceState

log = logging.getLogger(__name__)


def init_decisions(app: Flask, background: bool = True) -> DecisionsComponent:
    """Register the decision endpoints on ``app`` and start loading the component.

    The component loads in a background thread (``background``), so the worker answers
    ``/healthz`` at once; without ``OFFERS_DATA`` the endpoints answer 503 saying so.
    """
    state: ServiceState = app.extensions[EXTENSION]
    component = DecisionsComponent(state)
    state.decisions = component
    for bp in (routes.bp, batch.bp, model_routes.bp):
        app.register_blueprint(bp)
    openapi_doc.document(state.openapi)
    if component.configured:
        component.start(background)
    elif state.settings.registry is not None or state.settings.program is not None:
        log.warning("OFFERS_DATA is not set: the decision endpoints answer 503 until it is")
    return component
