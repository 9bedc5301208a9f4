"""Prometheus metrics of one app, safe under gunicorn's worker processes.

Metrics (all prefixed ``offers_``):

``http_request_duration_seconds{endpoint,method,status}``  histogram; ``endpoint`` is the
    route rule (``/v1/events``), ``unmatched`` for unknown paths, so cardinality is bounded
``score_cache_lookups_total{result}``  ``hit``/``miss``; hit ratio =
    ``rate(..{result="hit"}[5m]) / rate(..[5m])``
``redis_errors_total{operation}``  store operations that failed (Redis down, timeouts)
``decisions_total{policy,holdout,model_version}``  decisions served (recorded by the
    decision endpoint through :meth:`Metrics.record_decision`)
``events_total{type,status}``  feedback events, ``status`` accepted or duplicate
``decisions_degraded_total{reason}``  decisions served without the online store
    (``store_unavailable``: no history, cache or counters read, or nothing reserved)
``model_reloads_total{result}``  model loads by this worker: ``swapped``, ``unchanged``
    or ``rejected`` (a bad artifact; the old model kept serving)
``model_last_known_good``  1 while a worker serves an earlier champion because the
    champion cannot be served (max over live workers), else 0
``feature_psi{model_version,feature}``, ``score_psi{model_version}``  drift of the live
    traffic against the model's training reference (:mod:`runtime.drift`; max over live
    workers); ``drift_sample_rows{model_version}`` the rows behind it (sum over live workers)

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` must be set before workers start
(:mod:`service.gunicorn_conf` does it): each worker then writes its values to files in
that directory and :meth:`Metrics.exposition` merges every worker's files, as the
prometheus-client documentation prescribes. Without it (tests, the Flask dev server)
each app has its own registry.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess

#: Latency buckets in seconds: sub-millisecond to a few seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def multiprocess_dir() -> str | None:
    """The multiprocess directory when prometheus-client runs in multiprocess mode."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and os.path.isdir(path) else None


class Metrics:
    """The app's metrics; implements :class:`runtime.stores.StoreObserver`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_latency = Histogram(
            "offers_http_request_duration_seconds", "Time to answer an HTTP request.",
            ["endpoint", "method", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.cache_lookups = Counter(
            "offers_score_cache_lookups", "Cached score vector lookups by result.", ["result"],
            registry=r)
        self.redis_errors = Counter(
            "offers_redis_errors", "Store operations that failed on Redis.", ["operation"],
            registry=r)
        self.decisions = Counter(
            "offers_decisions", "Decisions served.", ["policy", "holdout", "model_version"],
            registry=r)
        self.events = Counter(
            "offers_events", "Feedback events received.", ["type", "status"], registry=r)
        self.degraded = Counter(
            "offers_decisions_degraded", "Decisions served without the online store.", ["reason"],
            registry=r)
        self.model_reloads = Counter(
            "offers_model_reloads", "Model loads by result.", ["result"], registry=r)
        self.event_quality = Counter(
            "offers_event_quality", "Data-quality findings on incoming events: fields rejected (by "
            "code) and accepted events naming offers or products the catalog does not know.",
            ["problem"], registry=r)
        self.decision_log_failures = Counter(
            "offers_decision_log_failures", "Committed decisions the decision log could not write.",
            registry=r)
        self.last_known_good = Gauge(
            "offers_model_last_known_good",
            "1 while this worker serves an earlier champion because the champion cannot be served.",
            registry=r, multiprocess_mode="livemax")
        self.feature_psi = Gauge(
            "offers_feature_psi", "Population stability index of a feature in the live sample against "
            "the model's training reference (0.1 moderate, 0.25 major shift).", ["model_version", "feature"],
            registry=r, multiprocess_mode="livemax")
        self.score_psi = Gauge(
            "offers_score_psi", "Population stability index of the model's scores in the live sample "
            "against its training reference.", ["model_version"], registry=r, multiprocess_mode="livemax")
        self.drift_rows = Gauge(
            "offers_drift_sample_rows", "Scored rows in the rolling drift sample.", ["model_version"],
            registry=r, multiprocess_mode="livesum")
        # labelled children resolved once: .labels() takes a lock and builds a key on every call
        self._lookup = {hit: self.cache_lookups.labels("hit" if hit else "miss") for hit in (True, False)}

    # -- StoreObserver ------------------------------------------------------------
    def store_error(self, operation: str) -> None:
        self.redis_errors.labels(operation).inc()

    def cache_lookup(self, hit: bool) -> None:
        self._lookup[hit].inc()

    # -- recorders ------------------------------------------------------------------
    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.request_latency.labels(endpoint, method, str(status)).observe(seconds)

    def record_decision(self, policy: str, holdout: bool, model_version: str) -> None:
        """Count one decision; ``policy`` e.g. "model", "explore", "fallback"."""
        self.decisions.labels(policy, "true" if holdout else "false", model_version).inc()

    def record_degraded(self, reason: str) -> None:
        """Count one decision served in a degraded mode (e.g. ``store_unavailable``)."""
        self.degraded.labels(reason).inc()

    def record_event_quality(self, problem: str, count: int = 1) -> None:
        """Count a data-quality finding on incoming events (``rejected:<code>``, ``unknown_offer``,
        ``unknown_product``)."""
        if count:
            self.event_quality.labels(problem).inc(count)

    def record_decision_log_failure(self, decisions: int) -> None:
        """Count ``decisions`` committed decisions that could not be appended to the decision log."""
        self.decision_log_failures.inc(decisions)

    def record_model_load(self, result: str) -> None:
        """Count one model load: ``swapped``, ``unchanged`` or ``rejected``."""
        self.model_reloads.labels(result).inc()

    def record_last_known_good(self, active: bool) -> None:
        """Whether this worker serves a last-known-good model instead of the champion."""
        self.last_known_good.set(1 if active else 0)

    def record_drift(self, model_version: str, result: dict[str, Any]) -> None:
        """Export one model version's drift snapshot (:func:`models.drift.drift`); NaN PSIs are skipped."""
        for feature, value in result["features"].items():
            if value == value:
                self.feature_psi.labels(model_version, feature).set(value)
        if result["score"] == result["score"]:
            self.score_psi.labels(model_version).set(result["score"])
        self.drift_rows.labels(model_version).set(result["rows"])

    def record_event(self, event_type: str, status: str) -> None:
        self.events.labels(event_type, status).inc()

    # -- exposition -------------------------------------------------------------------
    def exposition(self) -> tuple[bytes, str]:
        """The text exposition of every worker's metrics (or this app's) and its content type."""
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry), CONTENT_TYPE_LATEST
