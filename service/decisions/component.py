"""The decisions part of an app: loaded after the fork, in the background, then ready.

:func:`service.decisions.wiring.init_decisions` (called by :func:`service.app.create_app`)
registers the decision, batch and model endpoints and, when ``OFFERS_DATA`` is set, starts a
:class:`DecisionsComponent` that loads in a background thread, so the worker
answers ``/healthz`` at once and gunicorn's heartbeat never waits on a slow start:

1. the :class:`~runtime.decisions.setup.DecisionSetup` (catalogs, program, clock);
2. without Redis, every member of ``OFFERS_DATA`` materialized into the in-process store;
3. with ``OFFERS_REGISTRY``, the champion model, loaded and warmed on a real feature
   matrix (:class:`~runtime.decisions.model_holder.ModelHolder`), and the challenger when
   the registry names one (routed a share of members: :mod:`runtime.decisions.routing`).

The decision catalog follows the live catalog's change log (:mod:`runtime.catalog`): a change
swaps in a new setup and decider (:meth:`DecisionsComponent.require` checks the log at most every
half second), so admin offer edits reach every worker without a restart.

Readiness checks ``decisions`` (steps 1-2) and ``model`` (step 3) turn true when done;
with Redis, ``store_data`` is false while Redis holds no generation marker (it lost its
data, or ``offers materialize`` never ran; the detail says what to run) and renews the
marker's TTL while it is there;
until then the decision endpoints answer 503 with ``Retry-After``. Without a registry,
decisions use the non-personalised fallback policy (popularity, then value) and report
``model_version: null``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.features import History
from models.features.online import history_from_records, records_from_history
from models.model import PropensityModel
from models.program import load_program
from models.uplift import UpliftModel
from runtime.catalog.changelog import CatalogLog
from runtime.catalog.follower import CatalogFollower
from runtime.catalog.live import LiveCatalog
from runtime.decisions.decision_log import KIND as DECISION_LOG_KIND
from runtime.decisions.decision_log import DecisionLog
from runtime.decisions.materialize import load_members, materialize
from runtime.decisions.model_holder import ModelHolder, ModelRejected, ServingModel
from runtime.decisions.pipeline import RECOVERY_HINT, DecisionPipeline
from runtime.decisions.routing import ModelRouter
from runtime.decisions.scoring import feature_rows
from runtime.decisions.setup import DecisionSetup, Universe
from runtime.drift import DriftMonitor
from runtime.events.history_records import HistoryRecorder
from runtime.events.log import EventLog
from runtime.points.service import PointsService
from runtime.stores import StoreError
from service.errors import ServiceUnavailable
from service.state import ServiceState

log = logging.getLogger(__name__)

COMPONENT = "decisions"  # its readiness check
#: Offers scored when warming a model at a moment without valid offers.
WARM_OFFERS = 64


def _points_enabled(program: Path | None) -> bool:
    """Whether the program config turns the points ledger on (False when unreadable: loading reports that)."""
    if program is None:
        return False
    try:
        return load_program(program).points.enabled
    except (OSError, ValueError):
        return False


class DecisionsComponent:
    """Loads and owns one app's engine, model holder and decider (see the module docstring)."""

    def __init__(self, state: ServiceState):
        self.state = state
        settings = state.settings
        self.configured = settings.data is not None
        #: the program keeps a points ledger: transactions wait (503) until it is loaded
        self.points_expected = self.configured and _points_enabled(settings.program)
        self.setup: DecisionSetup | None = None
        self.holder: ModelHolder | None = None
        #: champion/challenger routing over ``holder`` and a challenger holder
        self.router: ModelRouter | None = None
        self.decider: DecisionPipeline | None = None
        #: follows the live catalog's change log (runtime.catalog), once the catalog loaded
        self.follower: CatalogFollower | None = None
        self.error: str | None = None
        self.materialized = 0
        self._done = threading.Event()
        self._sample: History | None = None
        self._flag = state.readiness.flag(COMPONENT, detail="loading the offer catalog") if self.configured else None
        self._model_flag = (state.readiness.flag("model", detail="loading the champion model")
                            if self.configured and settings.registry is not None else None)
        if self.configured and state.store.kind == "redis":
            state.readiness.register("store_data", self._store_data)

    def _store_data(self) -> bool:
        """Readiness: Redis still holds the data ``offers materialize`` wrote (its generation
        marker, whose TTL this renews); raises with what to run when it does not."""
        if self.state.store.generation(renew=True) is None:
            raise RuntimeError(RECOVERY_HINT)
        return True

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, background: bool = True) -> None:
        """Load everything, in a daemon thread unless ``background`` is False."""
        if not background:
            self._load()
            return
        threading.Thread(target=self._load, name="offers-decisions-loader", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until loading finished (successfully or not); False on timeout."""
        return self._done.wait(timeout)

    def _load(self) -> None:
        settings = self.state.settings
        assert settings.data is not None and self._flag is not None
        try:
            setup = DecisionSetup.load(settings.data, settings.program, settings.clock,
                                         wall=self.state.wall_clock)
            setup = self._follow_catalog(setup)
            self.setup = setup
            self.state.decision_clock = setup.clock
            self.state.recorder = HistoryRecorder(setup.features, setup.fingerprint, setup.zone)
            if self.state.store.kind == "memory":
                self._flag.set(False, "materializing OFFERS_DATA into the in-process store")
                hist, profiles = load_members(setup, settings.data)
                materialize(self.state.store, setup, hist, profiles)
                self.materialized = hist.n_members
                self._sample = _most_active(hist)
            if settings.registry is not None:
                self.holder = ModelHolder(settings.registry, warm=self._warm, on_swap=self._swapped,
                                          on_reject=self._rejected)
                try:
                    self.holder.load()
                except ModelRejected as exc:
                    serving = self.holder.serving
                    log.error("the champion cannot be served (%s); %s", exc.reason,
                              f"serving the last-known-good {serving.version}" if serving else "no model to serve yet")
                self.router = self._router(setup, self.holder)
            self.decider = DecisionPipeline(setup, self.state.store, self.router, self.state.metrics,
                                            decision_log=self._decision_log(),
                                            drift=DriftMonitor(self.state.metrics) if self.router else None)
            assert self.follower is not None
            self.follower.on_change = self._catalog_changed
            if setup.program.points.enabled:
                self.state.points = PointsService(
                    self.decider, self.state.store, settings.event_log, settings.currency_exponent,
                    self.state.now, settings.event_log_max_bytes, settings.event_log_fsync)
            try:  # histories written under this catalog can be read under the next one
                self.decider.upgrader.publish()
            except StoreError as exc:
                log.warning("catalog ids not stored (Redis unavailable): %s", exc)
            detail = (f"{len(setup.catalog)} offers, {setup.clock.describe()}"
                      + (f", {self.materialized} members materialized" if self.materialized else ""))
            # Everything loaded so far lives as long as the worker: move it out of the cyclic
            # collector's generations, so full collections stop re-scanning the catalog and model.
            gc.freeze()
            self._flag.set(True, detail)
            log.info("decisions ready: %s", detail)
        except Exception as exc:  # reported by /readyz and every decision request
            log.exception("loading the decision engine failed")
            self.error = f"{type(exc).__name__}: {exc}"
            self._flag.set(False, f"loading failed: {self.error}")
        finally:
            self._done.set()

    def _follow_catalog(self, setup: DecisionSetup) -> DecisionSetup:
        """Start following the live catalog's change log (runtime.catalog) over the start-up catalog;
        the setup with the changes so far applied. A log that cannot be read stops the loading."""
        self.follower = CatalogFollower(CatalogLog(self.state.settings.catalog_directory), setup.catalog)
        live = self.follower.current
        return setup.with_catalog(live.catalog, live.withheld, live.version) if live.version else setup

    def _catalog_changed(self, live: LiveCatalog) -> None:
        """Swap in a new live catalog: a new setup and decider; requests in flight keep theirs."""
        decider, base = self.decider, self.setup
        if decider is None or base is None:
            return
        setup = base.with_catalog(live.catalog, live.withheld, live.version)
        self.setup, self.decider = setup, decider.with_setup(setup)
        if self.state.points is not None:
            self.state.points.follow(self.decider)

    def _router(self, setup: DecisionSetup, champion: ModelHolder) -> ModelRouter:
        """The champion/challenger router; the challenger is loaded now when the registry names one
        (a challenger that cannot be served is logged, and its members get the champion)."""
        settings = self.state.settings
        assert settings.registry is not None
        challenger = ModelHolder(settings.registry, warm=self._warm, alias="challenger",
                                 on_reject=self._challenger_rejected)
        with contextlib.suppress(ModelRejected):  # reported by _challenger_rejected
            challenger.load()
        routing = setup.catalog.program.decisions.challenger
        return ModelRouter(champion, challenger, routing.share, routing.salt)

    @staticmethod
    def _challenger_rejected(version: str | None, reason: str) -> None:
        if version is not None:  # None: the registry names no challenger, nothing to report
            log.error("the challenger %s cannot be served; its members get the champion: %s", version, reason)

    def _decision_log(self) -> DecisionLog | None:
        """The durable decision log (``OFFERS_DECISION_LOG``, default the event log's directory);
        None when ``OFFERS_DECISION_LOG_FSYNC=off``."""
        settings = self.state.settings
        if settings.decision_log_fsync == "off":
            return None
        writer = EventLog(settings.decision_log or settings.event_log, settings.event_log_max_bytes,
                          settings.decision_log_fsync, kind=DECISION_LOG_KIND,
                          interval=settings.decision_log_fsync_ms / 1000)
        writer.check_writable()
        return DecisionLog(writer, self.state.metrics)

    # -- the model ---------------------------------------------------------------------------
    def _warm(self, model: PropensityModel | UpliftModel) -> None:
        """Score a real feature matrix once, so the first request does not pay for it."""
        setup = self.setup
        assert setup is not None
        if isinstance(model, UpliftModel):  # attributes, not history: score a member without any
            X = model.features(pd.DataFrame({"member_id": ["warm-up"]})).to_numpy(dtype=np.float64)
            for offer in model.offer_ids:
                model.predict_offer(offer, X)
            return
        as_of = setup.moment().local
        universe = setup.universe(as_of)
        if not len(universe.scorable):
            k = min(WARM_OFFERS, setup.features.n_offers)
            ids = tuple(str(o) for o in setup.features.offer_ids[:k])
            universe = Universe(ids, np.arange(k), np.arange(k), "warm")
        hist = self._sample if self._sample is not None else history_from_records("warm-up", None)
        X = feature_rows(setup, hist, np.zeros(1, dtype=np.int64), universe, as_of, "app", model.program)
        self._compile(model)
        model.predict(X)
        model.contributions(X[:8])

    def _compile(self, model: PropensityModel) -> None:
        """Switch ``model`` to lleaves-compiled trees (OFFERS_COMPILE_MODEL); on failure keep LightGBM.

        A failure is logged, not raised: Booster.predict gives the same scores, only slower.
        """
        settings = self.state.settings
        if not settings.compile_model:
            return
        started = time.perf_counter()
        failure = model.try_compile(settings.model_cache_dir)
        if failure is not None:
            log.warning("model %s is served with Booster.predict: %s", model.version, failure)
            return
        assert model.compiled is not None
        log.info("model %s scores with compiled trees (%s in %.0f ms)", model.version, model.compiled.source,
                 (time.perf_counter() - started) * 1000)

    def _swapped(self, serving: ServingModel) -> None:
        metrics = self.state.metrics
        metrics.record_model_load("last_known_good" if serving.stands_in_for else "swapped")
        metrics.record_last_known_good(serving.stands_in_for is not None)
        if self._model_flag is not None:
            self._model_flag.set(True, f"serving {serving.version}")

    def _rejected(self, version: str | None, reason: str) -> None:
        self.state.metrics.record_model_load("rejected")
        holder = self.holder
        if self._model_flag is not None and (holder is None or holder.serving is None):
            self._model_flag.set(False, f"no model can be served: {reason}")

    # -- for the endpoints -------------------------------------------------------------------
    def drift_snapshots(self) -> dict[str, dict[str, Any]]:
        """This worker's live drift per model it serves (champion, then challenger): version ->
        :meth:`runtime.drift.DriftMonitor.snapshot`; models with nothing sampled yet are left out."""
        monitor = self.decider.drift if self.decider is not None else None
        if monitor is None or self.router is None:
            return {}
        out = {}
        for model in (self.router.current(), self.router.challenger_serving()):
            snapshot = monitor.snapshot(model.version) if model is not None else None
            if model is not None and snapshot is not None:
                out[model.version] = snapshot
        return out

    def require(self) -> DecisionPipeline:
        """The decider (with the live catalog's latest changes), or a 503 problem saying why there is none yet."""
        if self.decider is not None:
            if self.follower is not None:
                self.follower.poll()
            return self.decider
        if not self.configured:
            raise ServiceUnavailable("decisions are not configured: set OFFERS_DATA (and OFFERS_REGISTRY, "
                                     "OFFERS_PROGRAM) and restart", retry_after=60)
        if self.error is not None:
            raise ServiceUnavailable(f"the decision engine failed to load: {self.error}", retry_after=60)
        raise ServiceUnavailable("the decision engine is still loading; retry shortly")


def _most_active(hist: History) -> History:
    """The member with the most purchase lines, as a one-member History (the warm-up input)."""
    if hist.n_members == 0:
        return history_from_records("warm-up", None)
    m = int(np.argmax(np.bincount(hist.line_member[hist.line_member >= 0], minlength=hist.n_members)))
    return history_from_records(str(hist.member_ids[m]), records_from_history(hist, m), int(hist.joined_at[m]))
