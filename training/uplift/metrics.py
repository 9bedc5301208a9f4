"""Uplift metrics: Qini and uplift curves, their areas, uplift@k and a targeted set's net value.

Written here rather than taken from scikit-uplift 0.5.1, whose metrics call scikit-learn
helpers deprecated in 1.8 (a FutureWarning on every call, removal announced for 1.10).
Definitions (``y`` outcome, ``t`` 1 for treatment and 0 for control, sorted by score, best first;
``Y_t(i)``, ``N_t(i)`` the outcomes and units of the treatment arm among the first ``i``):

* Qini curve ``Q(i) = Y_t(i) - Y_c(i) * N_t(i) / N_c(i)``: incremental outcomes if the first ``i``
  were treated, in the treatment arm's scale. **Qini** here is its mean over ``i`` divided by
  ``n_t``: the area under the curve per treated unit (a random ordering scores about ``Q(n)/2n_t``).
* Uplift curve ``U(i) = (Y_t(i)/N_t(i) - Y_c(i)/N_c(i)) * i``. **AUUC** is its mean over ``i``
  divided by ``n``.
* **uplift@k**: the treatment-minus-control outcome rate among the top ``k`` share (the
  "overall" strategy of scikit-uplift).
"""

from __future__ import annotations

import numpy as np


def _cumulative(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cumulative treated/control outcomes and counts down the score ordering (stable, best first)."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    ys, ts = np.asarray(y, dtype=float)[order], np.asarray(t, dtype=int)[order]
    return (np.cumsum(ys * ts), np.cumsum(ts), np.cumsum(ys * (1 - ts)), np.cumsum(1 - ts))


def qini_curve(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``Q(i)`` for i = 1..n (0 where no control unit has been seen yet)."""
    yt, nt, yc, nc = _cumulative(y, t, score)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(nc > 0, yt - yc * nt / np.maximum(nc, 1), yt)


def uplift_curve(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``U(i)`` for i = 1..n (0 until both arms have been seen)."""
    yt, nt, yc, nc = _cumulative(y, t, score)
    i = np.arange(1, len(yt) + 1)
    ok = (nt > 0) & (nc > 0)
    return np.where(ok, (yt / np.maximum(nt, 1) - yc / np.maximum(nc, 1)) * i, 0.0)


def qini(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    """Mean of the Qini curve per treated unit (see the module doc)."""
    n_t = int(np.sum(t))
    return float(np.mean(qini_curve(y, t, score)) / max(n_t, 1)) if len(y) else float("nan")


def auuc(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    """Mean of the uplift curve divided by n (see the module doc)."""
    return float(np.mean(uplift_curve(y, t, score)) / len(y)) if len(y) else float("nan")


def uplift_at_k(y: np.ndarray, t: np.ndarray, score: np.ndarray, k: float) -> float:
    """Treatment-minus-control outcome rate among the top ``k`` share by score."""
    n = max(1, int(np.ceil(k * len(y))))
    top = np.argsort(-np.asarray(score, dtype=float), kind="stable")[:n]
    yt, tt = np.asarray(y, dtype=float)[top], np.asarray(t, dtype=int)[top]
    if tt.sum() == 0 or tt.sum() == len(tt):
        return float("nan")
    return float(yt[tt == 1].mean() - yt[tt == 0].mean())


def targeted_value(y: np.ndarray, t: np.ndarray, chosen: np.ndarray, value: float, cost: float) -> dict[str, float]:
    """What targeting the ``chosen`` units is worth, measured on the experiment.

    ``irr`` and ``nir`` are Starbucks's definitions over the chosen units (IRR = treated rate -
    control rate; NIR = value x treated outcomes - cost x treated units - value x control
    outcomes, unscaled). ``net_value`` scales the control arm to the treated arm's size
    (value x (Y_t - Y_c x N_t / N_c) - cost x N_t), fair when the arms are not 50/50.
    """
    sel = np.asarray(chosen, dtype=bool)
    ys, ts = np.asarray(y, dtype=float)[sel], np.asarray(t, dtype=int)[sel]
    yt, nt = float(ys[ts == 1].sum()), int((ts == 1).sum())
    yc, nc = float(ys[ts == 0].sum()), int((ts == 0).sum())
    irr = (yt / nt if nt else 0.0) - (yc / nc if nc else 0.0)
    nir = value * yt - cost * nt - value * yc
    net = value * (yt - (yc * nt / nc if nc else 0.0)) - cost * nt
    return {"share": float(sel.mean()) if len(sel) else 0.0, "n_treated": nt, "n_control": nc,
            "irr": irr, "nir": nir, "net_value": net}
