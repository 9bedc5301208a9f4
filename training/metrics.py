"""Metrics for offer propensity, pooled and within each member x campaign group.

All functions take plain arrays: ``y`` (0/1 labels), ``score`` (higher = more likely),
and for ranking a ``group`` key (member x campaign). Ranking metrics count only groups
with at least one redemption (see shared/reference/evaluation.md) and break score ties
with a seeded random order, so a heuristic that ties many offers gets no free credit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

KS = (1, 3, 5)


def _safe_auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


def pooled(y: np.ndarray, score: np.ndarray, probabilistic: bool) -> dict[str, float]:
    """ROC-AUC and PR-AUC; log-loss and Brier (with the prior's) when ``score`` is a probability."""
    out = {"roc_auc": _safe_auc(y, score),
           "pr_auc": float(average_precision_score(y, score)) if y.sum() else float("nan"),
           "base_rate": float(y.mean())}
    if probabilistic:
        p = np.clip(score, 1e-7, 1 - 1e-7)
        prior = np.full_like(p, np.clip(y.mean(), 1e-7, 1 - 1e-7))
        out.update({"log_loss": float(log_loss(y, p, labels=[0, 1])),
                    "log_loss_prior": float(log_loss(y, prior, labels=[0, 1])),
                    "brier": float(brier_score_loss(y, p)),
                    "brier_prior": float(brier_score_loss(y, prior))})
    return out


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Reliability curve over equal-count bins of ``p`` and the expected calibration error."""
    order = np.argsort(p, kind="stable")
    chunks = np.array_split(order, bins)
    rows = [{"bin": i, "mean_predicted": float(p[c].mean()), "observed_rate": float(y[c].mean()), "n": len(c)}
            for i, c in enumerate(chunks) if len(c)]
    table = pd.DataFrame(rows)
    ece = float((table["n"] * (table["mean_predicted"] - table["observed_rate"]).abs()).sum() / len(p))
    return table, ece


def lift(y: np.ndarray, score: np.ndarray, bins: int = 10, seed: int = 0) -> pd.DataFrame:
    """Decile lift and cumulative gains: deciles from the highest score down."""
    order = _ranked(score, seed)
    chunks = np.array_split(order, bins)
    total, rate = y.sum(), y.mean()
    rows, cum = [], 0
    for i, c in enumerate(chunks, start=1):
        cum += y[c].sum()
        rows.append({"decile": i, "rate": float(y[c].mean()), "lift": float(y[c].mean() / rate) if rate else float("nan"),
                     "cumulative_gain": float(cum / total) if total else float("nan")})
    return pd.DataFrame(rows)


def _ranked(score: np.ndarray, seed: int) -> np.ndarray:
    """Indices from highest to lowest score, ties in a seeded random order."""
    jitter = np.random.default_rng(seed).random(len(score))
    return np.lexsort((jitter, -np.asarray(score, dtype=np.float64)))


def group_ranks(group: np.ndarray, score: np.ndarray, seed: int = 0) -> np.ndarray:
    """1-based rank of each row within its group (highest score first, random tie order)."""
    order = _ranked(score, seed)
    frame = pd.DataFrame({"g": np.asarray(group)[order]})
    ranks = np.empty(len(score), dtype=np.int64)
    ranks[order] = frame.groupby("g", sort=False).cumcount().to_numpy() + 1
    return ranks


def ranking(y: np.ndarray, score: np.ndarray, group: np.ndarray, seed: int = 0) -> dict[str, float]:
    """hit@k and NDCG@5 over groups with at least one positive, plus how many such groups."""
    codes = pd.factorize(np.asarray(group))[0]
    ranks = group_ranks(codes, score, seed)
    y = np.asarray(y)
    n_groups = codes.max() + 1 if len(codes) else 0
    positives = np.bincount(codes, weights=y, minlength=n_groups)
    has = positives > 0
    if not has.any():
        return {**{f"hit@{k}": float("nan") for k in KS}, "ndcg@5": float("nan"), "groups": 0}
    out: dict[str, float] = {}
    for k in KS:
        hits = np.bincount(codes, weights=y * (ranks <= k), minlength=n_groups) > 0
        out[f"hit@{k}"] = float(hits[has].mean())
    dcg = np.bincount(codes, weights=y * (ranks <= 5) / np.log2(ranks + 1), minlength=n_groups)
    ideal_table = np.cumsum(1 / np.log2(np.arange(2, 7)))
    ideal = ideal_table[np.clip(positives, 1, 5).astype(int) - 1]
    out["ndcg@5"] = float((dcg[has] / ideal[has]).mean())
    out["groups"] = int(has.sum())
    return out


def bootstrap(y: np.ndarray, score: np.ndarray, group: np.ndarray, member: np.ndarray,
              reps: int = 200, seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% intervals for ROC-AUC and hit@1/3 by resampling members with replacement.

    Ranks are computed once (a member's groups keep their ranks when the member is
    drawn); each draw of a member counts its groups again, as independent units.
    """
    y = np.asarray(y)
    m_codes, members = pd.factorize(np.asarray(member))
    g_codes = pd.factorize(np.asarray(group))[0]
    ranks = group_ranks(g_codes, score, seed)
    n_groups = g_codes.max() + 1
    pos = np.bincount(g_codes, weights=y, minlength=n_groups) > 0
    hit = {k: np.bincount(g_codes, weights=y * (ranks <= k), minlength=n_groups) > 0 for k in (1, 3)}
    group_member = np.zeros(n_groups, dtype=np.int64)
    group_member[g_codes] = m_codes
    # per member: number of positive groups and hits among them
    n_pos = np.bincount(group_member[pos], minlength=len(members)).astype(np.float64)
    n_hit = {k: np.bincount(group_member[pos & hit[k]], minlength=len(members)).astype(np.float64) for k in hit}
    # weighted rank-sum AUC: sort once, then each resample only changes row weights
    by_score = np.argsort(np.asarray(score, dtype=np.float64), kind="stable")
    s_sorted = np.asarray(score, dtype=np.float64)[by_score]
    y_sorted = y[by_score].astype(bool)
    tie_start = np.r_[0, np.flatnonzero(np.diff(s_sorted)) + 1]
    tie_id = np.repeat(np.arange(len(tie_start)), np.diff(np.r_[tie_start, len(s_sorted)]))
    member_sorted = m_codes[by_score]
    rng = np.random.default_rng(seed)
    weights = np.stack([np.bincount(rng.integers(0, len(members), len(members)), minlength=len(members))
                        for _ in range(reps)], axis=1).astype(np.float64)  # members x reps
    stats: dict[str, np.ndarray] = {}
    for k in hit:
        denominator = n_pos @ weights
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[f"hit@{k}"] = np.where(denominator > 0, (n_hit[k] @ weights) / denominator, np.nan)
    if int(y_sorted.sum()) * len(members) <= _PAIR_TABLE_LIMIT:
        stats["roc_auc"] = _auc_by_member_table(weights, y_sorted, tie_id, member_sorted, len(members))
    else:
        stats["roc_auc"] = np.array([_weighted_auc(weights[member_sorted, r], y_sorted, tie_id) for r in range(reps)])
    return {name: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for name, v in stats.items()}


#: Largest positives x members table :func:`_auc_by_member_table` builds (float64 entries, twice).
_PAIR_TABLE_LIMIT = 10_000_000


def _auc_by_member_table(weights: np.ndarray, positive: np.ndarray, tie_id: np.ndarray, member: np.ndarray,
                         n_members: int) -> np.ndarray:
    """Weighted ROC-AUC for every column of ``weights`` (members x reps) at once.

    Rows are sorted by score. A resample only reweights members, so the negatives a
    positive outranks are, per member, fixed counts: a positives x members table of
    negatives strictly below (and tied with) each positive turns every replicate into a
    matrix product instead of a pass over all rows, with the same value as
    :func:`_weighted_auc`.
    """
    pos_rows = np.flatnonzero(positive)
    tie_start = np.searchsorted(tie_id, tie_id[pos_rows], "left")
    tie_end = np.searchsorted(tie_id, tie_id[pos_rows], "right")
    neg_rows = np.flatnonzero(~positive)
    by_member = np.lexsort((neg_rows, member[neg_rows]))
    neg_sorted, neg_member = neg_rows[by_member], member[neg_rows][by_member]
    bounds = np.searchsorted(neg_member, np.arange(n_members + 1))
    below = np.zeros((len(pos_rows), n_members))
    tied = np.zeros((len(pos_rows), n_members))
    for m in np.flatnonzero(np.diff(bounds)):
        rows = neg_sorted[bounds[m]:bounds[m + 1]]
        lo, hi = np.searchsorted(rows, tie_start), np.searchsorted(rows, tie_end)
        below[:, m], tied[:, m] = lo, hi - lo
    w_pos = weights[member[pos_rows]]                       # positives x reps
    outranked = below @ weights + 0.5 * (tied @ weights)
    n_neg = np.bincount(neg_member, minlength=n_members).astype(np.float64)
    total = w_pos.sum(axis=0) * (n_neg @ weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w_pos * outranked).sum(axis=0) / total, np.nan)


def _weighted_auc(w: np.ndarray, positive: np.ndarray, tie_id: np.ndarray) -> float:
    """ROC-AUC of rows sorted by score (ascending) with row weights; ties count one half."""
    w_neg = np.where(positive, 0.0, w)
    w_pos = np.where(positive, w, 0.0)
    neg_per_tie = np.bincount(tie_id, weights=w_neg)
    neg_below = np.cumsum(neg_per_tie) - neg_per_tie  # negatives with strictly lower scores
    pos_per_tie = np.bincount(tie_id, weights=w_pos)
    total_pos, total_neg = w_pos.sum(), w_neg.sum()
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    return float((pos_per_tie * (neg_below + 0.5 * neg_per_tie)).sum() / (total_pos * total_neg))


def summarize(y: np.ndarray, score: np.ndarray, group: np.ndarray, member: np.ndarray,
              probabilistic: bool, reps: int, seed: int = 0) -> dict[str, Any]:
    """Every headline figure of one scorer on one split, with bootstrap intervals."""
    out: dict[str, Any] = pooled(y, score, probabilistic)
    out.update(ranking(y, score, group, seed))
    lt = lift(y, score, seed=seed)
    out["top_decile_lift"] = float(lt["lift"].iloc[0])
    out["lift_table"] = lt.to_dict(orient="list")
    if probabilistic:
        table, ece = reliability(y, score)
        out["ece"] = ece
        out["reliability"] = table.to_dict(orient="list")
    if reps:
        out["ci95"] = bootstrap(y, score, group, member, reps=reps, seed=seed)
    out["curves"] = curves(y, score)
    return out


def curves(y: np.ndarray, score: np.ndarray, points: int = 200) -> dict[str, list[float]]:
    """ROC and precision-recall curves, downsampled to about ``points`` points each for plotting."""
    if not 0 < y.sum() < len(y):
        return {}
    fpr, tpr, _ = roc_curve(y, score)
    precision, recall, _ = precision_recall_curve(y, score)

    def thin(*arrays: np.ndarray) -> list[list[float]]:
        idx = np.unique(np.linspace(0, len(arrays[0]) - 1, min(points, len(arrays[0]))).astype(int))
        return [np.round(a[idx], 5).tolist() for a in arrays]

    roc_x, roc_y = thin(fpr, tpr)
    pr_x, pr_y = thin(recall, precision)
    return {"roc_fpr": roc_x, "roc_tpr": roc_y, "pr_recall": pr_x, "pr_precision": pr_y}
