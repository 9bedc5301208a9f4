"""Training a member x offer propensity model: split, fit, select, calibrate, evaluate, register.

:func:`train_propensity` is the notebook API; ``offers train`` is a thin CLI over it.

Protocol (see docs/training.md):

1. Split by time at ``train_end``: exposures before it train, exposures at or after it
   test, features cut at each exposure's time. Optionally (``censor_labels``) training
   labels are censored at ``train_end``, as a model trained that day would have seen them.
2. Expanding-window validation folds over the training period (:mod:`training.selection`):
   the last block is the latest quarter of the training positives (by exposure time), each
   earlier block the latest quarter of those before it, each fold fit on everything before
   its block. The test block is never used to choose anything.
3. Candidates: LightGBM binary with monotone constraints on affinity features (the
   default), and without, early-stopped on each fold; the other wins only if its hit@1
   within member x campaign, pooled over the folds' blocks, is better by more than one
   standard error.
4. Platt calibration on the latest block's out-of-sample scores; the chosen variant is
   refit on all training rows for the rounds validated on that block.
5. Every metric on the test block next to the baselines on the same rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm

from models.features import CATEGORICAL_FEATURES, FEATURE_NAMES, FeatureVocabulary, compute_features
from models.model import (
    MEMBER_MODEL_FEATURES,
    Calibration,
    PropensityModel,
    StackedCalibration,
    log_spend,
    logit,
)
from models.program import Program, ProgramConfigError, load_program
from models.registry import Registry
from offerdata.loader import PARTITION_MEMBERS  # the partition size lives with the loader
from training.baselines import Redemptions, baseline_scores
from training.dataset import Dataset, load_dataset
from training.design import (  # noqa: F401 - the split, sampling limits and samplers, re-exported
    MAX_TEST_ROWS,
    MAX_TRAIN_ROWS,
    Design,
    default_train_end,
    design_from_dataset,
    sample_test_members,
    sample_training_rows,
    split,
)
from training.drift_reference import model_reference
from training.errors import TrainingError
from training.metrics import pooled as pooled_metrics
from training.metrics import ranking, summarize
from training.selection import HEURISTIC_BAR, Fold, floor, pooled_ranking, select, validation_folds
from training.threads import fit_threads, run_fits

REFIT_ROUNDS_FACTOR = 1.15  # the refit sees about a third more rows than the early-stopped fit
SEARCH_ROWS = 1_000_000     # candidate fits (model selection) use at most this many training rows
#: Above this many rows LightGBM's "advanced" monotone method costs minutes per fit; "intermediate"
#: is nearly as tight and much cheaper (LightGBM docs: advanced "may slow the library").
ADVANCED_MONOTONE_ROWS = 500_000
#: The trees' weight in the served heuristic. 0: offers of equal spend stay tied. A 1e-9 tie-break by the
#: trees was measured on The Complete Journey and cost 0.002 of hit@1 on two of three splits (docs/training.md).
TIE_BREAK = 0.0

#: Features whose effect on redemption must be non-decreasing (+1) or non-increasing (-1).
MONOTONE = {
    **dict.fromkeys(["product_spend", "product_lines", "product_spend_90d", "product_share",
                     "category_spend", "category_spend_90d", "category_share", "overlap_redemptions",
                     "product_spend_rel", "category_spend_rel", "redemption_rate", "coupon_share",
                     "product_coupon", "category_coupon",
                     "redemptions_all"], 1),
    **dict.fromkeys(["product_spend_rank", "category_spend_rank", "product_days_since",
                     "category_days_since", "days_since_last_redemption"], -1),
}
BASE_PARAMS: dict[str, Any] = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 100,
    "min_sum_hessian_in_leaf": 1.0, "feature_fraction": 0.7, "bagging_fraction": 0.8, "bagging_freq": 1,
    "lambda_l2": 10.0, "verbose": -1, "seed": 1,
}


@dataclass
class TrainResult:
    """What a training run produced."""

    version: str
    model_dir: Path
    metrics: dict[str, Any]
    headline: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)


def feature_matrix(ds: Dataset, rows: pd.DataFrame, program: Program | None = None,
                   progress: bool = False, client: Any = None) -> np.ndarray:
    """Point-in-time features for ``rows``, computed one member partition at a time.

    Each partition (``PARTITION_MEMBERS`` consecutive member indices) gets its own slice of
    the member-sorted history, so memory and work per partition stay bounded. With a
    ``distributed.Client``, the partitions are computed on its cluster's workers, each
    reading its members from the data directory (:mod:`training.distributed`); the matrix is
    the same bit for bit.
    """
    if client is not None:
        from training.distributed import cluster_feature_matrix

        return cluster_feature_matrix(client, ds, rows, program, PARTITION_MEMBERS, progress)
    out = np.empty((len(rows), len(FEATURE_NAMES)), dtype=np.float32)
    if rows.empty:
        return out
    history = ds.history if ds.history.is_sorted_by_member else ds.history.sorted_by_member()
    part = rows["m"].to_numpy() // PARTITION_MEMBERS
    parts = np.unique(part)
    for p in tqdm(parts, desc="features", unit="partition", disable=not progress or len(parts) < 2):
        sel = np.flatnonzero(part == p)
        r = rows.iloc[sel]
        lo = int(p) * PARTITION_MEMBERS
        sub = history.partition(lo, min(lo + PARTITION_MEMBERS, history.n_members))
        out[sel] = compute_features(sub, ds.catalog, r["m"].to_numpy() - lo, r["o"].to_numpy(),
                                    r["as_of"].to_numpy(), r["ch"].to_numpy(), program)
    return out


def _groups(rows: pd.DataFrame) -> np.ndarray:
    return (rows["member_id"].astype(str) + "|" + rows["campaign_id"].astype(str)).to_numpy()


def _fit(X: np.ndarray, y: np.ndarray, w: np.ndarray, fit: np.ndarray, val: np.ndarray | None, monotone: bool,
         rounds: int | None = None, threads: int | None = None) -> lgb.Booster:
    """One LightGBM fit: early-stopped on ``val`` when given, else exactly ``rounds`` rounds."""
    constraints = [MONOTONE.get(f, 0) for f in FEATURE_NAMES] if monotone else None
    return _train(X, y, w, fit, val, rounds, constraints, threads)


def _train(X: np.ndarray, y: np.ndarray, w: np.ndarray, fit: np.ndarray, val: np.ndarray | None,
           rounds: int | None, monotone: list[int] | None, threads: int | None = None) -> lgb.Booster:
    """The LightGBM fit both the trees and the member model make: ``monotone`` constraints per
    feature (None: none), early-stopped on ``val`` when given, else ``rounds`` rounds, on
    ``threads`` threads (default :func:`training.threads.fit_threads`)."""
    params = dict(BASE_PARAMS, num_threads=threads or fit_threads())
    if monotone is not None:
        params["monotone_constraints"] = monotone
        params["monotone_constraints_method"] = ("advanced" if int(fit.sum()) <= ADVANCED_MONOTONE_ROWS
                                                 else "intermediate")
    train_set = lgb.Dataset(_rows(X, fit), _rows(y, fit), weight=_rows(w, fit), feature_name=FEATURE_NAMES,
                            categorical_feature=CATEGORICAL_FEATURES, free_raw_data=False)
    if val is None:
        return lgb.train(params, train_set, num_boost_round=rounds or 100)
    valid_set = lgb.Dataset(X[val], y[val], weight=w[val], reference=train_set)
    return lgb.train(params, train_set, num_boost_round=2000, valid_sets=[valid_set],
                     callbacks=[lgb.early_stopping(100, verbose=False)])


def _rows(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``a[mask]``, or ``a`` itself when the mask keeps every row.

    Why: a refit on the whole sample would otherwise copy the 2M-row feature matrix (0.66 GB)
    for each of the two refits that run side by side; LightGBM bins ``a`` without keeping a copy.
    """
    return a if mask.all() else a[mask]


def _platt(raw: np.ndarray, y: np.ndarray, w: np.ndarray) -> Calibration:
    """Platt scaling of out-of-sample raw scores: a logistic regression on their logit."""
    coef, intercept = _logistic(logit(raw).reshape(-1, 1), y, w)
    return Calibration(a=float(coef[0]), b=intercept)


def _search_rows(fit: np.ndarray, limit: int = SEARCH_ROWS, seed: int = 0) -> np.ndarray:
    """The training rows candidate fits use: all of ``fit``, or a uniform sample of ``limit`` of them.

    Model selection only compares candidates and finds the number of rounds; at millions of
    rows a uniform sample answers that as well at a fraction of the cost, and the chosen
    variant is then refit on every row.
    """
    rows = np.flatnonzero(fit)
    if len(rows) <= limit:
        return fit
    keep = np.zeros(len(fit), dtype=bool)
    keep[np.random.default_rng(seed).choice(rows, size=limit, replace=False)] = True
    return keep


#: The LightGBM variants model selection compares: name, monotone constraints or not.
VARIANTS = (("binary_monotone", True), ("binary", False))
#: The key of the member model's fold fits among :func:`_fold_fits`' results.
MEMBER = "member"


def _fold_fits(X: np.ndarray, Z: np.ndarray, y: np.ndarray, w: np.ndarray, folds: list[Fold],
               progress: bool) -> dict[tuple[str, int], tuple[lgb.Booster, np.ndarray]]:
    """Every fold fit model selection needs: each LightGBM variant and the member model
    (on ``Z``, :func:`member_matrix` of ``X``), early-stopped on every fold's block, with their
    out-of-sample raw scores on that block; keyed by (variant or :data:`MEMBER`, fold).

    The fits do not depend on each other, so they run side by side as
    :func:`training.threads.run_fits` plans them, the largest first; each fit is the one a
    sequential run makes (same rows, same parameters, same thread count).
    """
    def tree_job(fold: Fold, mono: bool) -> Any:
        def job(threads: int) -> tuple[lgb.Booster, np.ndarray]:
            booster = _fit(X, y, w, _search_rows(fold.fit), fold.validation, mono, threads=threads)
            return booster, np.asarray(booster.predict(X[fold.validation], num_iteration=booster.best_iteration,
                                                       num_threads=threads), dtype=np.float64)
        return job

    def member_job(fold: Fold) -> Any:
        def job(threads: int) -> tuple[lgb.Booster, np.ndarray]:
            booster = _member_fit(Z, y, w, _search_rows(fold.fit), fold.validation, threads=threads)
            return booster, np.asarray(booster.predict(Z[fold.validation], num_iteration=booster.best_iteration,
                                                       num_threads=threads), dtype=np.float64)
        return job

    jobs: dict[tuple[str, int], Any] = {}
    for name, mono in VARIANTS:
        jobs |= {(name, k): tree_job(fold, mono) for k, fold in enumerate(folds)}
    jobs |= {(MEMBER, k): member_job(fold) for k, fold in enumerate(folds)}
    size = {key: int(_search_rows(folds[key[1]].fit).sum()) for key in jobs}
    ordered = dict(sorted(jobs.items(), key=lambda kv: -size[kv[0]]))  # stable: equal sizes keep their order
    with tqdm(total=len(jobs), desc="fit", disable=not progress) as bar:
        return run_fits(ordered, bar.update)


def _fit_variants(fits: dict[tuple[str, int], tuple[lgb.Booster, np.ndarray]], y: np.ndarray, folds: list[Fold],
                  groups: np.ndarray) -> dict[str, dict[str, Any]]:
    """Each LightGBM variant's fold fits (from :func:`_fold_fits`): its out-of-sample scores and pooled ranking."""
    candidates: dict[str, dict[str, Any]] = {}
    for name, _ in VARIANTS:
        fold_scores, fold_stats = [], []
        for k, fold in enumerate(folds):
            booster, raw = fits[(name, k)]
            fold_scores.append(raw)
            fold_stats.append({"validation_start": str(fold.start.date()), "best_iteration": booster.best_iteration,
                               "fit_positives": int(y[fold.fit].sum()),
                               "validation_positives": int(y[fold.validation].sum()),
                               **ranking(y[fold.validation], raw, groups[fold.validation])})
        pooled = ranking(*pooled_ranking(folds, y, groups, fold_scores))
        candidates[name] = {"booster": booster, "fold_scores": fold_scores, "folds": fold_stats,
                            "val": pooled | {"best_iteration": booster.best_iteration}}
    return candidates


def _logistic(columns: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """An (almost) unregularised weighted logistic regression: its coefficients and intercept."""
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(columns, y, sample_weight=w)
    return lr.coef_[0].astype(np.float64), float(lr.intercept_[0])


def fit_blend(raw: np.ndarray, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> StackedCalibration:
    """The blend: a logistic layer over [logit(raw), log1p(product_spend)] fitted on out-of-sample scores.

    ``raw`` must come from models that never saw these rows (a validation block), so the
    weights, and the calibration they imply, are honest for the refit model.
    """
    coef, intercept = _logistic(np.column_stack([logit(raw), log_spend(X)]), y, w)
    return StackedCalibration(a=float(coef[0]), c=float(coef[1]), b=intercept, method="blend")


def fit_heuristic(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> StackedCalibration:
    """The heuristic as a served model: a calibrated, strictly increasing function of product_spend.

    It ranks one member's offers exactly as the heuristic does (the trees get weight
    :data:`TIE_BREAK`, 0: equal spends stay tied, as they are for the heuristic). The spend
    weight is kept positive so a degenerate fit can never turn the order around.
    """
    coef, intercept = _logistic(log_spend(X).reshape(-1, 1), y, w)
    return StackedCalibration(a=TIE_BREAK, c=max(float(coef[0]), 1e-6), b=intercept, method="heuristic")


def member_matrix(X: np.ndarray) -> np.ndarray:
    """``X`` with every column outside :data:`MEMBER_MODEL_FEATURES` set to missing.

    The member model is fitted on this, so it cannot split on an offer-level feature (LightGBM
    never splits on an all-missing column) while it keeps the full feature layout: the artifact's
    second booster is checked, served and compiled exactly like the first.
    """
    keep = np.array([f in MEMBER_MODEL_FEATURES for f in FEATURE_NAMES])
    out = np.array(X, dtype=np.float32, copy=True)
    out[:, ~keep] = np.nan
    return out


def fit_member_model(X: np.ndarray, y: np.ndarray, w: np.ndarray, fit: np.ndarray, val: np.ndarray | None,
                     rounds: int | None = None) -> lgb.Booster:
    """The member model: LightGBM on the member-level features and ``product_spend`` only.

    Non-decreasing in ``product_spend`` (and in the other :data:`MONOTONE` features), so with a
    positive spend weight the served ``member`` score stays strictly increasing in spend within
    one member's request. Early-stopped on ``val`` when given, else ``rounds`` rounds.
    """
    return _member_fit(member_matrix(X), y, w, fit, val, rounds)


def _member_fit(Z: np.ndarray, y: np.ndarray, w: np.ndarray, fit: np.ndarray, val: np.ndarray | None,
                rounds: int | None = None, threads: int | None = None) -> lgb.Booster:
    """:func:`fit_member_model` on ``Z``, a :func:`member_matrix` made once for every fit that needs it."""
    constraints = [MONOTONE.get(f, 0) if f in MEMBER_MODEL_FEATURES else 0 for f in FEATURE_NAMES]
    return _train(Z, y, w, fit, val, rounds, constraints, threads)


def _member_folds(fits: dict[tuple[str, int], tuple[lgb.Booster, np.ndarray]],
                  folds: list[Fold]) -> tuple[list[np.ndarray], int]:
    """The member model's out-of-sample scores on every fold's block (from :func:`_fold_fits`),
    and the last fold's best rounds."""
    scores = [fits[(MEMBER, k)][1] for k in range(len(folds))]
    return scores, max(1, fits[(MEMBER, len(folds) - 1)][0].best_iteration)


def fit_member(member_raw: np.ndarray, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> StackedCalibration:
    """The heuristic plus the member term: a logistic layer over [logit(member score), log1p(spend)].

    The trees get weight 0 and the member weight is kept >= 0 and the spend weight > 0, so within
    one member's request the served score is strictly increasing in spend: the heuristic's order,
    equal spends tied. Fitted on out-of-sample scores like the other candidates.
    """
    coef, intercept = _logistic(np.column_stack([logit(member_raw), log_spend(X)]), y, w)
    return StackedCalibration(a=0.0, c=max(float(coef[1]), 1e-6), b=intercept, method="member",
                              d=max(float(coef[0]), 0.0))


def fit_blend_member(raw: np.ndarray, member_raw: np.ndarray, X: np.ndarray, y: np.ndarray,
                     w: np.ndarray) -> StackedCalibration:
    """The blend plus the member term: a logistic layer over the trees, the member score and spend."""
    coef, intercept = _logistic(np.column_stack([logit(raw), log_spend(X), logit(member_raw)]), y, w)
    return StackedCalibration(a=float(coef[0]), c=float(coef[1]), b=intercept, method="blend_member",
                              d=float(coef[2]))


def _served_logit(calibration: Calibration | StackedCalibration, raw: np.ndarray, X: np.ndarray,
                  member_raw: np.ndarray | None = None) -> np.ndarray:
    """The served score's log-odds (ranking-equivalent to the served probability)."""
    if isinstance(calibration, StackedCalibration):
        return calibration.logit(raw, X, member_raw)
    return calibration.a * logit(raw) + calibration.b


def _pooled_figures(folds: list[Fold], y: np.ndarray, groups: np.ndarray, scores: list[np.ndarray]) -> dict[str, Any]:
    """hit@k within groups and the pooled ROC-AUC of per-block scores (the floor's two criteria)."""
    ys, ss, gs = pooled_ranking(folds, y, groups, scores)
    return ranking(ys, ss, gs) | {"roc_auc": pooled_metrics(ys, ss, False)["roc_auc"]}


def _floor_candidates(folds: list[Fold], X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                      fold_scores: list[np.ndarray], member_scores: list[np.ndarray],
                      calibrations: dict[str, Calibration | StackedCalibration]) -> dict[str, dict[str, Any]]:
    """Pooled validation figures of every candidate and of the bare heuristic (the floor).

    Each block is scored from its own fold's out-of-sample tree (and member model) scores.
    ``product_spend`` is the heuristic as the evaluation scores it (ties in random order): the
    bar every served candidate is held to.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, cal in calibrations.items():
        scores = [_served_logit(cal, raw, X[f.validation], m)
                  for f, raw, m in zip(folds, fold_scores, member_scores, strict=True)]
        out[name] = _pooled_figures(folds, y, groups, scores)
    out[HEURISTIC_BAR] = _pooled_figures(folds, y, groups, [log_spend(X[f.validation]) for f in folds])
    return out


def fit_propensity(train: pd.DataFrame, X: np.ndarray,
                   progress: bool = False) -> tuple[PropensityModel, dict[str, Any]]:
    """Fit the candidates on expanding-window folds, select, calibrate on the latest block, refit.

    The candidates are the LightGBM variants, the blend and the product-spend heuristic
    (both stacked on the chosen variant's out-of-sample scores); :func:`training.selection.floor`
    keeps a variant only if it does not rank below the heuristic on the validation folds.
    """
    y = train["label"].to_numpy()
    w = train["weight"].to_numpy() if "weight" in train else np.ones(len(train))
    folds = validation_folds(train["exposed_at"], y)
    if not folds:
        raise TrainingError("the validation block needs redemptions on both sides of its start")
    last = folds[-1]
    val = last.validation
    groups = _groups(train)
    Z = member_matrix(X)
    fits = _fold_fits(X, Z, y, w, folds, progress)
    candidates = _fit_variants(fits, y, folds, groups)
    variant = select(candidates)
    best = candidates[variant]
    # Calibrate on the latest block (scores of a model that never saw it), then refit the
    # chosen variant on every training row for the rounds validated on that block (scaled for
    # the larger sample): the latest block is the most recent data and too valuable to drop.
    member_scores, member_best = _member_folds(fits, folds)
    raw_last, member_last = best["fold_scores"][-1], member_scores[-1]
    calibrations: dict[str, Calibration | StackedCalibration] = {
        variant: _platt(raw_last, y[val], w[val]),
        "blend": fit_blend(raw_last, X[val], y[val], w[val]),
        "heuristic": fit_heuristic(X[val], y[val], w[val]),
        "member": fit_member(member_last, X[val], y[val], w[val]),
        "blend_member": fit_blend_member(raw_last, member_last, X[val], y[val], w[val]),
    }
    figures = _floor_candidates(folds, X, y, groups, best["fold_scores"], member_scores, calibrations)
    figures[variant] = best["val"] | {"roc_auc": figures[variant]["roc_auc"]}
    chosen, reason = floor(figures, variant)
    rounds = max(1, round(best["booster"].best_iteration * REFIT_ROUNDS_FACTOR))
    everything = np.ones(len(y), dtype=bool)
    served = calibrations[chosen]
    refits: dict[str, Any] = {"trees": lambda threads: _fit(X, y, w, everything, None, variant == "binary_monotone",
                                                            rounds, threads)}
    if isinstance(served, StackedCalibration) and served.uses_member:
        member_rounds = max(1, round(member_best * REFIT_ROUNDS_FACTOR))
        refits[MEMBER] = lambda threads: _member_fit(Z, y, w, everything, None, member_rounds, threads)
    refitted = run_fits(refits)  # the two refits, like the fold fits, do not depend on each other
    booster, member = refitted["trees"], refitted.get(MEMBER)
    selection = {"chosen": chosen, "variant": variant, "reason": reason,
                 "validation_start": str(last.start.date()), "refit_rounds": rounds,
                 "search_rows": int(_search_rows(last.fit).sum()), "refit_rows": len(y),
                 "candidates": {k: v["val"] for k, v in candidates.items()}
                 | figures,
                 "calibrations": {k: c.to_json() for k, c in calibrations.items()},
                 "folds": {k: v["folds"] for k, v in candidates.items()}}
    return PropensityModel(booster=booster, calibration=served, member_booster=member), selection


def evaluate_rows(catalog: FeatureVocabulary, redemptions: Redemptions, rows: pd.DataFrame, X: np.ndarray,
                  model: PropensityModel, bootstrap_reps: int = 200) -> dict[str, Any]:
    """Model and baselines on the same rows, plus the household x campaign view of the model.

    ``redemptions`` are every member's (the popularity baseline counts them across members)."""
    y = rows["label"].to_numpy()
    groups = _groups(rows)
    members = rows["member_id"].to_numpy()
    p = model.predict(X)
    out: dict[str, Any] = {"rows": len(rows), "positives": int(y.sum()),
                           "model": summarize(y, p, groups, members, True, bootstrap_reps)}
    for name, score in baseline_scores(catalog, redemptions, rows, X).items():
        out[name] = summarize(y, score, groups, members, False, bootstrap_reps)
    # household x campaign: did the member redeem anything from the campaign?
    frame = pd.DataFrame({"g": groups, "y": y, "lp": np.log1p(-np.clip(p, 0, 1 - 1e-9))})
    by = frame.groupby("g", sort=False)
    p_any = 1 - np.exp(by["lp"].sum().to_numpy())
    y_any = by["y"].max().to_numpy()
    from training.metrics import pooled

    out["member_campaign"] = {"groups": len(y_any), **pooled(y_any, p_any, True)}
    return out


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The few figures the CLI prints and the registry lists."""
    m = metrics.get("model", {})
    return {k: round(float(m[k]), 4) for k in ("roc_auc", "pr_auc", "hit@1", "hit@3", "ndcg@5", "ece") if k in m} | (
        {"member_campaign_auc": round(float(metrics["member_campaign"]["roc_auc"]), 4)}
        if "member_campaign" in metrics else {}) | (
        {"member_campaign_model_auc": round(float(metrics["member_campaign_model"]["roc_auc"]), 4)}
        if "member_campaign_model" in metrics else {})


def read_program(config: str | os.PathLike[str] | None) -> tuple[Program | None, str | None]:
    """The program config (parsed, and its text for the artifact); errors name the key and line."""
    if config is None:
        return None, None
    path = Path(config)
    if not path.is_file():
        raise TrainingError(f"program config {str(config)!r} does not exist")
    text = path.read_text()
    try:
        return load_program(path), text
    except ProgramConfigError as exc:
        raise TrainingError(str(exc)) from exc


def train_propensity(data_dir: str | os.PathLike[str], registry: str | os.PathLike[str],
                     train_end: str | pd.Timestamp | None = None, config: str | os.PathLike[str] | None = None,
                     bootstrap_reps: int = 200, progress: bool = False, promote: bool | None = None,
                     censor_labels: bool = False, client: Any = None) -> TrainResult:
    """Train, evaluate and register a propensity model; return its version and metrics.

    ``promote=None`` promotes the new version to champion only when there is no champion yet.
    With a ``distributed.Client``, the design (labelled rows, samples, features) is built on its
    cluster and this process never loads a history (:mod:`training.cluster_design`); the fit,
    evaluation and registration stay here, on the bounded sample, and the registered model is
    the one the in-process run gives.
    """
    import time

    timings: dict[str, float] = {}
    started = time.perf_counter()
    program, program_text = read_program(config)
    if client is None:
        ds = load_dataset(data_dir)
        timings["load"] = time.perf_counter() - started
        design = design_from_dataset(ds, train_end, censor_labels,
                                     lambda rows, shown=False: feature_matrix(ds, rows, program, progress and shown))
    else:
        from training.cluster_design import cluster_design

        design = cluster_design(client, data_dir, train_end, censor_labels, program, progress)
    timings.update(design.timings)
    cut, train, test, X_train, X_test = design.cut, design.train, design.test, design.X_train, design.X_test
    n_train_all, n_test_all = design.n_train_all, design.n_test_all
    t0 = time.perf_counter()
    model, selection = fit_propensity(train, X_train, progress)
    model.program, model.program_text = program, program_text
    timings["fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = (evaluate_rows(design.catalog, design.redemptions, test, X_test, model, bootstrap_reps)
               if len(test) and test["label"].sum() else {})
    if metrics and design.coupons is not None:  # group-level rows need unsampled training groups
        from training.campaign_model import fit_and_evaluate

        metrics["member_campaign_model"] = fit_and_evaluate(train, X_train, test, X_test, coupons=design.coupons)
    timings["evaluate"] = time.perf_counter() - t0
    metrics["selection"] = selection
    heads = headline(metrics)
    t0 = time.perf_counter()
    reference = model_reference(cut, model, design.X_reference, X_test)
    timings["reference"] = time.perf_counter() - t0
    model.metadata = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "train_end": str(cut.date()),
        "censor_labels": censor_labels,
        "training_window": [str(design.first_exposure), str(cut)],
        "data_dir": str(Path(data_dir).resolve()),
        "data_fingerprint": design.fingerprint,
        "program_config_sha256": hashlib.sha256(program_text.encode()).hexdigest() if program_text else None,
        "program_name": program.name if program is not None else None,
        "rows": {"train": len(train), "test": len(test), "train_positives": int(train["label"].sum()),
                 "test_positives": int(test["label"].sum()), "train_before_sampling": n_train_all,
                 "test_before_sampling": n_test_all},
        "params": {k: v for k, v in BASE_PARAMS.items()},
        "variant": selection["chosen"],
        "booster_variant": selection["variant"],
        "headline_metrics": heads,
        "metrics": _jsonable(metrics),
        "reference": reference,
        "feature_importance": dict(zip(FEATURE_NAMES, model.booster.feature_importance("gain").round(3).tolist(),
                                       strict=True)),
        "library_versions": _versions(),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    reg = Registry(registry, create=True)
    with reg.staging() as staged:
        model.save(staged)
        from training.report import write_report

        write_report(staged / "report.html", model.metadata)
        version = reg.register(staged)
    if promote or (promote is None and reg.aliases().get("champion") is None):
        reg.promote(version, "champion")
    timings["total"] = time.perf_counter() - started
    return TrainResult(version, reg.path(version), metrics, heads, timings)


def _versions() -> dict[str, str]:
    import sklearn

    return {"python": platform.python_version(), "lightgbm": lgb.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__}


def _jsonable(obj: Any) -> Any:
    """Metrics as plain JSON types (numpy scalars and tuples converted)."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
