"""The app factory: ``create_app(settings=None)`` builds one self-contained service app.

Everything the app uses (settings, stores, keys, metrics, readiness checks, the event
log, the OpenAPI document) is built here and kept on ``app.extensions["offers"]`` (a
:class:`~service.state.ServiceState`); nothing happens at import time, so tests build as
many apps as they like and gunicorn builds one per worker after forking.

The decision endpoints are added by :func:`service.decisions.wiring.init_decisions`:
with ``OFFERS_DATA`` set it loads the catalog, (without Redis) materializes the members
into the in-process store and loads the champion model in a background thread, so this
function returns at once; readiness checks ``decisions`` and ``model`` turn true when
that is done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from flask import Flask

from runtime.apikeys import Keyring
from runtime.events.log import EventLog, EventLogError
from runtime.metrics import Metrics
from runtime.settings import Settings, SettingsError, load_settings, unknown_variables
from runtime.stores import Store, build_store
from service import admin, catalog_admin, checkout, http, ops, points, referrals
from service.catalog_openapi import add_catalog_paths
from service.console import init_console
from service.decisions.wiring import init_decisions
from service.errors import register_error_handlers
from service.events import routes as events
from service.json_provider import FastJSONProvider
from service.logconfig import configure_logging
from service.openapi import build_document
from service.points_openapi import add_points_paths
from service.readiness import Readiness
from service.state import EXTENSION, ServiceState

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("loyalty-offers")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def _stores_check(store: Store) -> bool:
    store.ping()  # raises StoreUnavailable with the reason when Redis does not answer
    return True


def create_app(settings: Settings | None = None,
               wall_clock: Callable[[], float] = time.time) -> Flask:
    """Build the service app.

    Parameters
    ----------
    settings
        The settings to use; None reads them from the environment (``OFFERS_*``).
    wall_clock
        The machine's clock in epoch seconds; tests pass a fixed one so that nothing
        depends on today's date. ``OFFERS_CLOCK`` overrides it when it is not ``wall``.

    Raises
    ------
    SettingsError
        When a setting is invalid or the event log directory is not writable; the
        message names the variable.
    """
    if settings is None:
        settings = load_settings()
        for name in unknown_variables():
            log.warning("ignoring unknown setting %s (a typo?)", name)
    configure_logging(settings.log_level)

    event_log = EventLog(settings.event_log, settings.event_log_max_bytes, settings.event_log_fsync)
    try:
        event_log.check_writable()
    except EventLogError as exc:
        raise SettingsError(f"OFFERS_EVENT_LOG: {exc}") from None

    metrics = Metrics()
    state_ref: list[ServiceState] = []
    # the stores read the service's present (OFFERS_CLOCK or the wall clock) for their windows
    store = build_store(settings, observer=metrics, clock=lambda: state_ref[0].epoch_now())
    keyring = Keyring(settings.api_keys)
    readiness = Readiness()
    readiness.register("stores", lambda: _stores_check(store))

    app = Flask(__name__)
    app.json = FastJSONProvider(app)
    state = ServiceState(
        settings=settings, store=store, keyring=keyring, metrics=metrics, readiness=readiness,
        event_log=event_log, openapi=build_document(_version(), settings.max_events_per_request), wall_clock=wall_clock)
    state_ref.append(state)
    app.extensions[EXTENSION] = state

    register_error_handlers(app)
    http.install(app)
    app.register_blueprint(ops.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(checkout.bp)
    app.register_blueprint(points.bp)
    app.register_blueprint(referrals.bp)
    app.register_blueprint(catalog_admin.bp)
    add_points_paths(state.openapi)
    add_catalog_paths(state.openapi)
    init_decisions(app)
    init_console(app)

    if keyring.open:
        log.warning("OFFERS_API_KEYS is empty: decisions and events endpoints accept requests "
                    "without a key (local demo only); admin endpoints stay closed")
    elif not keyring.admin_enabled:
        log.info("no API key has the admin scope: admin endpoints are disabled")
    if store.kind == "memory":
        log.warning("no REDIS_URL: member state, caps and caches live in this worker's memory")
    log.info("service app ready to serve", extra={"store": store.kind,
                                                  "event_log": str(settings.event_log)})
    return app
