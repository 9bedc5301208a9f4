"""A worker's live drift: a rolling sample of what its models scored, against their references.

Every decision that computes scores (a cache miss of live traffic; not a replay at another
``as_of``, not a console preview) offers the pipeline's feature rows and scores to
:meth:`DriftMonitor.observe`, which keeps a seeded random handful of them in a fixed-size
ring per model version: the last :data:`CAPACITY` rows sampled. Every
:data:`PUBLISH_EVERY` observations of a version, the population stability index of every
feature and of the score against that version's reference (:mod:`models.drift`; kept in the
artifact by training) is recomputed and, once the sample holds :data:`MIN_ROWS` rows, exported:

``offers_feature_psi{model_version,feature}`` and ``offers_score_psi{model_version}``
    the PSI, the largest over live workers (gunicorn: each worker samples its own traffic);
``offers_drift_sample_rows{model_version}``
    the rows behind it, summed over live workers.

A model registered before references existed has none: nothing is sampled or exported for
it. The work is bounded: one small random pick per decision, one pass over at most
:data:`CAPACITY` rows every :data:`PUBLISH_EVERY` decisions.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from models.drift import drift

#: Rows kept per model version (the rolling sample).
CAPACITY = 5_000
#: Rows sampled from one decision's feature matrix at most.
ROWS_PER_CALL = 16
#: Observations of a version between two recomputations of its PSI.
PUBLISH_EVERY = 100
#: Rows a sample needs before its PSI is exported: in a small sample a decile bin is often
#: empty by chance, and an empty bin alone adds about 0.69 (0.1 x ln(0.1 / 1e-4)).
MIN_ROWS = 200


class DriftSink(Protocol):
    """Where the PSI goes (the service's metrics)."""

    def record_drift(self, model_version: str, result: dict[str, Any]) -> None:
        """Export one version's drift snapshot."""
        ...


class _Ring:
    """A fixed-size ring of feature rows and their scores."""

    def __init__(self, capacity: int, width: int):
        self.X = np.empty((capacity, width), dtype=np.float64)
        self.scores = np.empty(capacity, dtype=np.float64)
        self.next = 0
        self.filled = 0

    def add(self, X: np.ndarray, scores: np.ndarray) -> None:
        cap = len(self.scores)
        at = (self.next + np.arange(len(scores))) % cap
        self.X[at], self.scores[at] = X, scores
        self.next = int((self.next + len(scores)) % cap)
        self.filled = min(cap, self.filled + len(scores))

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X[: self.filled].copy(), self.scores[: self.filled].copy()


class DriftMonitor:
    """One worker's rolling samples and their PSI (see the module docstring)."""

    def __init__(self, sink: DriftSink | None = None, capacity: int = CAPACITY, rows_per_call: int = ROWS_PER_CALL,
                 publish_every: int = PUBLISH_EVERY, min_rows: int = MIN_ROWS, seed: int = 0):
        self.sink = sink
        self.capacity = capacity
        self.rows_per_call = rows_per_call
        self.publish_every = publish_every
        self.min_rows = min_rows
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._rings: dict[str, _Ring] = {}
        self._calls: dict[str, int] = {}
        self._references: dict[str, tuple[dict[str, Any], list[str]]] = {}

    def observe(self, version: str, reference: dict[str, Any] | None, names: Sequence[str],
                X: np.ndarray, scores: np.ndarray) -> None:
        """Keep a random few of ``X``'s rows (and their scores) for ``version``; publish when due."""
        if not reference or not len(X):
            return
        with self._lock:
            ring = self._rings.get(version)
            if ring is None:
                ring = self._rings[version] = _Ring(self.capacity, X.shape[1])
                self._references[version] = (reference, list(names))
            pick = self._rng.choice(len(X), min(self.rows_per_call, len(X)), replace=False)
            ring.add(np.asarray(X, dtype=np.float64)[pick], np.asarray(scores, dtype=np.float64)[pick])
            self._calls[version] = calls = self._calls.get(version, 0) + 1
        if calls % self.publish_every == 0:
            self.publish(version)

    def snapshot(self, version: str) -> dict[str, Any] | None:
        """The PSI of ``version``'s rolling sample now (None: nothing sampled for it)."""
        with self._lock:
            ring = self._rings.get(version)
            if ring is None:
                return None
            X, scores = ring.rows()
            reference, names = self._references[version]
        return drift(reference, X, scores, names)

    def publish(self, version: str) -> dict[str, Any] | None:
        """Recompute ``version``'s PSI and hand it to the sink (once it has :data:`MIN_ROWS` rows)."""
        result = self.snapshot(version)
        if result is not None and result["rows"] >= self.min_rows and self.sink is not None:
            self.sink.record_drift(version, result)
        return result
