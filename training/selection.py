"""Model selection on the training period: expanding-window validation folds and the choice rule.

The protocol (shared reference, "Judging offer propensity models") selects models on
expanding-window folds over campaigns and keeps a later block of campaigns, the test block,
for the reported numbers. Here every fold validates on a block of exposure times and fits on
everything before that block; the test block is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Validation folds at most; earlier folds are kept only while both sides have enough positives.
FOLDS = 3
#: Fewest positives a fold's fit rows and its validation block must each hold (earlier folds).
MIN_FOLD_POSITIVES = 30
#: Each validation block is the latest quarter of the positives before the next block.
BLOCK_SHARE = 0.25


@dataclass(frozen=True)
class Fold:
    """One expanding-window fold: fit on exposures before ``start``, validate from it until the next fold."""

    start: pd.Timestamp
    fit: np.ndarray  # bool mask over the training rows
    validation: np.ndarray  # bool mask over the training rows


def validation_folds(exposed_at: pd.Series | np.ndarray, label: np.ndarray, n_folds: int = FOLDS,
                     min_positives: int = MIN_FOLD_POSITIVES) -> list[Fold]:
    """Expanding-window folds over the training rows, oldest first.

    The last fold's block starts at the 75th percentile of the positives' exposure times (all
    of that moment's exposures included, so a campaign is never split), and it fits on every
    earlier row. Each earlier fold repeats the rule on the rows before the next fold's block.
    Earlier folds are added only while their fit rows and block each hold ``min_positives``
    positives; the last fold only needs one positive on each side.
    """
    t = pd.to_datetime(pd.Series(np.asarray(exposed_at))).to_numpy()
    y = np.asarray(label)
    folds: list[Fold] = []
    before = np.ones(len(y), dtype=bool)
    for _ in range(n_folds):
        times = t[before & (y == 1)]
        if not len(times):
            break
        start = pd.Timestamp(pd.Series(times).quantile(1 - BLOCK_SHARE))
        validation = before & (t >= start.to_datetime64())
        fit = t < start.to_datetime64()
        need = min_positives if folds else 1
        if y[fit].sum() < need or y[validation].sum() < need:
            break
        folds.append(Fold(start=start, fit=fit, validation=validation))
        before = fit
    return folds[::-1]


def pooled_ranking(folds: list[Fold], y: np.ndarray, groups: np.ndarray,
                   scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The folds' validation labels, scores and fold-qualified group ids, concatenated.

    Each block is scored by the model of its own fold; prefixing the group id with the fold
    keeps a member x campaign group that straddles two blocks from being ranked across models.
    """
    ys = np.concatenate([y[f.validation] for f in folds])
    ss = np.concatenate(scores)
    gs = np.concatenate([np.char.add(f"{k}|", groups[f.validation].astype(str)) for k, f in enumerate(folds)])
    return ys, ss, gs


def select(candidates: dict[str, dict[str, Any]], default: str = "binary_monotone") -> str:
    """The default (constrained) variant unless another beats its validation hit@1 by over one standard error.

    ``candidates[name]["val"]`` holds the variant's hit@1 and the number of groups behind it
    (pooled over the folds). With a few hundred validation groups hit@1 moves by about 0.03
    from noise alone, so a smaller win is not evidence; the constrained model is the better
    prior on little data.
    """
    base = candidates[default]["val"]
    se = float(np.sqrt(max(base["hit@1"] * (1 - base["hit@1"]), 1e-9) / max(base["groups"], 1)))
    best = max(candidates, key=lambda k: candidates[k]["val"]["hit@1"])
    return best if candidates[best]["val"]["hit@1"] > base["hit@1"] + se else default


#: The bar of the ranking floor: the product-spend heuristic as the evaluation scores it (random tie order).
HEURISTIC_BAR = "product_spend"
#: The within-member ranking measures a served candidate must not lose on against the heuristic.
FLOOR_METRICS = ("hit@1", "hit@3")


def below(candidate: dict[str, Any], bar: dict[str, Any], metrics: tuple[str, ...] = FLOOR_METRICS) -> list[str]:
    """The measures on which ``candidate`` ranks below ``bar`` (both pooled validation figures)."""
    return [m for m in metrics if float(candidate[m]) < float(bar[m])]


#: Stacked candidates in order of preference when their validation ROC-AUC is equal or unknown (after the tree
#: variant): the heuristic last, since it is the floor itself.
STACKED_ORDER = ("blend_member", "blend", "member", "heuristic")


def floor(figures: dict[str, dict[str, Any]], variant: str) -> tuple[str, str]:
    """The candidate to serve under the ranking floor, and why.

    ``figures`` holds pooled validation figures of the chosen tree ``variant``, the stacked
    candidates present (``blend``, ``heuristic``, ``member``, ``blend_member``) and
    :data:`HEURISTIC_BAR`. First the floor: only candidates not below the heuristic on hit@1 or
    hit@3 qualify (a model that ranks one member's offers worse than their spend on its products
    is not shipped; ``heuristic`` and ``member`` rank as the heuristic does, so one of them always
    qualifies). Among those, the highest validation pooled ``roc_auc`` is served; when it is equal
    or not recorded, the tree variant comes first, then :data:`STACKED_ORDER`.
    """
    bar = figures[HEURISTIC_BAR]
    order = [variant, *(k for k in STACKED_ORDER if k in figures)]
    lost = {k: below(figures[k], bar) for k in order}
    eligible = [k for k in order if not lost[k]] or ["heuristic"]

    def auc(name: str) -> float:
        value = float(figures[name].get("roc_auc", float("nan")))
        return value if np.isfinite(value) else float("-inf")

    chosen = max(eligible, key=lambda k: (auc(k), -order.index(k)))
    losers = "; ".join(f"{k} is below the heuristic on {', '.join(v)}" for k, v in lost.items() if v)
    held = f"{chosen} is not below the heuristic on {' or '.join(FLOOR_METRICS)} in validation"
    if len(eligible) > 1 and np.isfinite(auc(chosen)):
        held += f" and has the highest validation ROC-AUC of those that are ({auc(chosen):.4f})"
    return chosen, f"{losers}; {held}" if losers else held
