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
it. The work is bounded and small on every request: one random pick per decision, binned on
entry into running counts (:class:`_BinnedRing`), so a recomputation costs the same whatever
the sample holds, and no request pays for a pass over the whole sample.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from models.drift import EMPTY_SHARE, SCORE, shares

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


class _BinnedRing:
    """A fixed-size ring of rows kept as their reference bin per column, with running bin counts.

    Each sampled row is binned once, when it enters (all columns in one vectorised
    comparison against the reference's edges, padded to a common width), and the counts of
    every column's bins are kept up to date as rows enter and rotate out. The PSI of the
    whole sample is then a few array operations over (columns x bins), however many rows the
    ring holds: recomputing it no longer takes a request several milliseconds (it used to
    bin all 5,000 rows of 90 columns again, the largest single cost in a p99 decision).
    Column ``k`` is feature ``columns[k]`` of the rows; the last column is the score.
    """

    def __init__(self, capacity: int, reference: Mapping[str, Any], names: Sequence[str]):
        features = reference.get("features", {})
        self.columns = np.array([j for j, name in enumerate(names) if name in features], dtype=np.int64)
        self.names = [names[j] for j in self.columns]
        refs = [features[name] for name in self.names] + [reference[SCORE]]
        n_edges = np.array([len(r["edges"]) for r in refs], dtype=np.int64)
        width = int(n_edges.max()) + 2  # the present bins, then the missing bin, then padding
        self.edges = np.full((len(refs), max(int(n_edges.max()), 1)), np.nan)  # NaN pads: never >=
        self.expected = np.zeros((len(refs), width))
        for k, r in enumerate(refs):
            expected, _ = shares(r, np.empty(0))
            self.edges[k, : n_edges[k]] = r["edges"]
            self.expected[k, : n_edges[k] + 1] = expected[:-1]
            self.expected[k, n_edges[k] + 1] = expected[-1]
        self.missing_bin = n_edges + 1
        self.width = width
        self.counts = np.zeros(len(refs) * width, dtype=np.int64)
        self.offsets = np.arange(len(refs), dtype=np.int64) * width
        self.codes = np.zeros((capacity, len(refs)), dtype=np.int32)  # flat count index of each kept cell
        self.next = 0
        self.filled = 0

    def add(self, X: np.ndarray, scores: np.ndarray) -> None:
        """Bin the rows of ``X`` (all features, in ``names`` order) with their scores and keep
        them, rotating the oldest out (keeps at most the last ``capacity`` rows)."""
        cap = len(self.codes)
        values = np.column_stack([X[:, self.columns], scores])[-cap:]
        binned = (values[:, :, None] >= self.edges[None, :, :]).sum(axis=2)
        codes = np.where(np.isnan(values), self.missing_bin[None, :], binned) + self.offsets[None, :]
        at = (self.next + np.arange(len(values))) % cap
        kept = at < self.filled  # slots whose old rows rotate out
        if kept.any():
            self.counts -= np.bincount(self.codes[at[kept]].ravel(), minlength=len(self.counts))
        self.codes[at] = codes
        self.counts += np.bincount(codes.ravel(), minlength=len(self.counts))
        self.next = int((self.next + len(values)) % cap)
        self.filled = min(cap, self.filled + len(values))

    def drift(self) -> dict[str, Any]:
        """What :func:`models.drift.drift` gives for the rows kept (up to rounding)."""
        if not self.filled:
            nan = float("nan")
            return {"rows": 0, "features": dict.fromkeys(self.names, nan), SCORE: nan}
        actual = self.counts.reshape(-1, self.width) / self.filled
        e = np.maximum(self.expected, EMPTY_SHARE)
        a = np.maximum(actual, EMPTY_SHARE)
        values = np.sum((a - e) * np.log(a / e), axis=1).tolist()
        return {"rows": self.filled, "features": dict(zip(self.names, values[:-1], strict=True)),
                SCORE: values[-1]}


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
        self._rings: dict[str, _BinnedRing] = {}
        self._calls: dict[str, int] = {}

    def observe(self, version: str, reference: dict[str, Any] | None, names: Sequence[str],
                X: np.ndarray, scores: np.ndarray) -> None:
        """Keep a random few of ``X``'s rows (and their scores) for ``version``; publish when due."""
        if not reference or not len(X):
            return
        with self._lock:
            ring = self._rings.get(version)
            if ring is None:
                ring = self._rings[version] = _BinnedRing(self.capacity, reference, names)
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
            return ring.drift()

    def publish(self, version: str) -> dict[str, Any] | None:
        """Recompute ``version``'s PSI and hand it to the sink (once it has :data:`MIN_ROWS` rows)."""
        result = self.snapshot(version)
        if result is not None and result["rows"] >= self.min_rows and self.sink is not None:
            self.sink.record_drift(version, result)
        return result
