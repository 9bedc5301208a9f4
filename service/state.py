"""What one app instance owns, kept on ``app.extensions["offers"]``.

Built by :func:`service.app.create_app`; request handlers reach it through
:func:`current_state`. Later parts (the model, the program, the decision engine) attach
themselves through :attr:`ServiceState.components` and register readiness checks, e.g.::

    state = app.extensions["offers"]
    state.components["model"] = loaded_model
    state.readiness.flag("model").set(True, "v3")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from service.apikeys import Keyring
from service.events.log import EventLog
from service.metrics import Metrics
from service.openapi import ApiDocument
from service.readiness import Readiness
from service.settings import Settings
from service.stores import Store

EXTENSION = "offers"


@dataclass
class ServiceState:
    """Settings, stores, keys, metrics, readiness and the event log of one app."""

    settings: Settings
    store: Store
    keyring: Keyring
    metrics: Metrics
    readiness: Readiness
    event_log: EventLog
    openapi: ApiDocument
    #: Named components added by other parts of the service (model, program...).
    components: dict[str, Any] = field(default_factory=dict)
    #: The machine's clock (epoch seconds); tests inject a fixed one.
    wall_clock: Callable[[], float] = time.time
    #: ``OFFERS_CLOCK`` once the decision engine resolved it (``data`` needs the catalog).
    decision_clock: Any = None

    def now(self) -> datetime:
        """The service's present moment (aware, UTC).

        The decision clock once the catalog loaded, else ``OFFERS_CLOCK`` when it is a fixed
        timestamp, else the wall clock. Event validation ("not in the future") and the
        stores' month windows use it, so a service replaying 2017 accepts 2017 events and
        keeps 2017 spend months instead of trimming them against today's date.
        """
        if self.decision_clock is not None:
            moment: datetime = self.decision_clock.now()
            return moment
        fixed = self.settings.fixed_clock()
        return fixed if fixed is not None else datetime.fromtimestamp(self.wall_clock(), UTC)

    def epoch_now(self) -> float:
        """:meth:`now` as epoch seconds (the stores' clock)."""
        return self.now().timestamp()

    def close(self) -> None:
        """Release connections and files (tests call this; workers just exit)."""
        self.event_log.close()
        self.store.close()


def current_state() -> ServiceState:
    """The ServiceState of the app handling the current request."""
    state: ServiceState = current_app.extensions[EXTENSION]
    return state
