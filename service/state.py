"""What one app instance owns, kept on ``app.extensions["offers"]``.

Built by :func:`service.app.create_app`; request handlers reach it through
:func:`current_state`, and the decision component through :func:`current_decisions`.
The decision component (:class:`~service.decisions.component.DecisionsComponent`) sets
:attr:`ServiceState.decisions` when the app is wired, and :attr:`ServiceState.recorder`
and :attr:`ServiceState.decision_clock` once the offer catalog loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flask import current_app

from runtime.apikeys import Keyring
from runtime.events.log import EventLog
from runtime.metrics import Metrics
from runtime.settings import Settings
from runtime.stores import Store

if TYPE_CHECKING:  # the component imports this module; typing only goes the other way
    from runtime.decisions.clock import ServiceClock
    from runtime.events.history_records import HistoryRecorder
    from runtime.points.service import PointsService
    from service.decisions.component import DecisionsComponent
from service.openapi import ApiDocument
from service.readiness import Readiness

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
    #: The decision component (set by :func:`service.decisions.wiring.init_decisions`).
    decisions: DecisionsComponent | None = None
    #: Encodes accepted events as history records, once the offer catalog loaded.
    recorder: HistoryRecorder | None = None
    #: The machine's clock (epoch seconds); tests inject a fixed one.
    wall_clock: Callable[[], float] = time.time
    #: ``OFFERS_CLOCK`` once the decision engine resolved it (``data`` needs the catalog).
    decision_clock: ServiceClock | None = None
    #: The points ledger, once the decision engine loaded a program with ``points.enabled``.
    points: PointsService | None = None

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


def current_decisions() -> DecisionsComponent:
    """The decision component of the app handling the current request (always wired by create_app)."""
    decisions = current_state().decisions
    if decisions is None:
        raise LookupError("the app was built without its decision component")
    return decisions
