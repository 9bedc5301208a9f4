"""Drift: how far the features and scores a model meets in serving have moved from training.

A model's artifact keeps a **reference** (``metadata.json``, key ``reference``): for every
feature and for the calibrated score, the decile edges of the population the model was
trained for and the share of that population in each bin, plus the share of missing values.
The population is what serving scores: members x the offers valid at the training cut-off
(:func:`training.design.reference_plan`), not the exposures the model was fit on.

The **population stability index** of a sample against a reference is::

    PSI = sum over bins of (a - e) * ln(a / e)

with ``e`` the reference share and ``a`` the sample's share of each bin (missing values are
a bin of their own; empty bins count as 1e-4 so the logarithm stays finite). The usual
reading: under 0.1 stable, 0.1 to 0.25 a moderate shift worth a look, above 0.25 a major
shift (retrain, or find the broken input). :data:`THRESHOLDS` holds those bounds.

Everything here is pure: the service's rolling sample (:mod:`runtime.drift`) and
``offers monitor`` (:mod:`training.monitor`) both call it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Bins per feature (deciles of the reference population; fewer when values repeat).
BINS = 10
#: Share given to an empty bin, so that ln(a / e) stays finite.
EMPTY_SHARE = 1e-4
#: (moderate, major): the conventional PSI bounds.
THRESHOLDS = (0.1, 0.25)
#: The reference's key for the score distribution.
SCORE = "score"


def histogram_reference(values: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """The reference of one column: inner bin edges (deciles), each bin's share, the missing share."""
    v = np.asarray(values, dtype=np.float64)
    present = v[~np.isnan(v)]
    if not len(present):
        return {"edges": [], "shares": [], "missing": 1.0 if len(v) else 0.0, "rows": len(v)}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return {"edges": [float(e) for e in edges], "shares": [float(c) / len(v) for c in counts],
            "missing": float(len(v) - len(present)) / len(v), "rows": len(v)}


def build_reference(X: np.ndarray, scores: np.ndarray, names: Sequence[str], bins: int = BINS) -> dict[str, Any]:
    """The reference of a feature matrix and its scores (what a model artifact keeps)."""
    if X.shape[1] != len(names):
        raise ValueError(f"{X.shape[1]} feature columns but {len(names)} names")
    return {"rows": int(X.shape[0]), "bins": bins,
            "features": {name: histogram_reference(X[:, j], bins) for j, name in enumerate(names)},
            SCORE: histogram_reference(scores, bins)}


def shares(reference: Mapping[str, Any], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference shares, sample shares) over the reference's bins plus the missing bin."""
    v = np.asarray(values, dtype=np.float64)
    edges = np.asarray(reference["edges"], dtype=np.float64)
    present = np.asarray(reference["shares"], dtype=np.float64)
    if not len(present):  # a column the reference never saw present: its one present bin held 0
        present = np.zeros(len(edges) + 1)
    expected = np.append(present, float(reference["missing"]))
    missing = np.isnan(v)
    counts = np.bincount(np.searchsorted(edges, v[~missing], side="right"), minlength=len(edges) + 1)
    actual = np.append(counts, int(missing.sum())).astype(np.float64) / max(len(v), 1)
    return expected, actual


def psi(reference: Mapping[str, Any], values: np.ndarray) -> float:
    """The population stability index of ``values`` against one column's reference (NaN: no values)."""
    if not len(values):
        return float("nan")
    expected, actual = shares(reference, values)
    e = np.maximum(expected, EMPTY_SHARE)
    a = np.maximum(actual, EMPTY_SHARE)
    return float(np.sum((a - e) * np.log(a / e)))


def drift(reference: Mapping[str, Any], X: np.ndarray, scores: np.ndarray,
          names: Sequence[str]) -> dict[str, Any]:
    """PSI of every referenced feature and of the score for a sample (features by name)."""
    features = reference.get("features", {})
    out = {name: psi(features[name], X[:, j]) for j, name in enumerate(names) if name in features}
    return {"rows": int(X.shape[0]), "features": out, SCORE: psi(reference[SCORE], scores)}


def level(value: float) -> str:
    """``stable``, ``moderate`` or ``major`` (``unknown`` for NaN) by :data:`THRESHOLDS`."""
    if value != value:
        return "unknown"
    return "stable" if value < THRESHOLDS[0] else "moderate" if value < THRESHOLDS[1] else "major"
