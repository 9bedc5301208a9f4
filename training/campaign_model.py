"""The member x campaign model: will the member redeem anything from this campaign?

Email tools decide *whom* to mail before *which* coupons to show; this model answers
the first question. Its rows are (member, campaign) groups, its features aggregate the
same point-in-time member x offer features: the member's own state (constant within
the group) plus the best and total affinity over the campaign's offers and how many of
them the member already buys. Trained and validated like the offer model (time split,
validation block from the training period only, early stopping, refit).

The score blends two models on the logit scale, half each:

* LightGBM on the aggregated features (the original model);
* a regularised logistic regression on a few coupon-habit features, some computed from
  the raw purchase lines (:func:`coupon_habits`): the share of the member's baskets in
  the last 365 days that carried a coupon discount, coupon lines per 30 days over the
  last 90, how many of the campaign's offers had a coupon discount on their products
  before, and product and category spend per 30 days of observed history.

On The Complete Journey (``--train-end 2017-08-01``) the blend raised the validation
block's ROC-AUC from 0.798 to 0.825 (three LightGBM seeds), and was level or better on
two other training-period checks (fit on campaigns up to 8 and validate on 9 to 12:
0.852 to 0.855; member-grouped 5-fold over the training groups: 0.821 to 0.826).
The tree model alone learns from few positives whose early history is short; the
linear model's per-day rates and log scale carry over to the longer histories of later
campaigns. Both numbers are in ``fit_and_evaluate``'s ``validation`` output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from models.features import FEATURE_NAMES, History
from models.features.compute import HISTORY_FEATURES, MEMBER_FEATURES
from models.features.points_features import POINTS_FEATURES
from models.features.tier_features import TIER_FEATURES
from training.metrics import pooled
from training.threads import fit_threads

AFFINITY_AGGREGATES = ("product_spend", "product_coupon", "product_lines", "category_spend", "category_share",
                       "manufacturer_spend", "overlap_redemptions", "overlap_exposures")
CONSTANT = [*MEMBER_FEATURES, *HISTORY_FEATURES, *TIER_FEATURES, *POINTS_FEATURES, "campaign_type", "offer_duration_days",
            "channel"]
#: The tree model's columns of :func:`campaign_frame`.
TREE_COLUMNS = [*CONSTANT, *(f"{n}__max" for n in AFFINITY_AGGREGATES), *(f"{n}__sum" for n in AFFINITY_AGGREGATES),
                "buys_offer_products", "n_offers"]
#: The logistic regression's columns (``campaign_type`` is one-hot encoded).
LINEAR_COLUMNS = ["coupon_basket_share_365d", "coupon_share", "coupon_lines_90d_rate", "offers_with_product_coupon",
                  "product_spend__sum_rate", "category_spend__sum_rate", "n_offers", "redemptions_all",
                  "campaign_type"]
PARAMS: dict[str, Any] = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 50,
                          "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 10.0,
                          "verbose": -1, "seed": 1}
LINEAR_C = 0.1  # inverse L2 strength of the logistic regression, on standardised features
BLEND_WEIGHT = 0.5  # the logistic regression's share of the blended logit
DAY = 86_400


def campaign_frame(rows: pd.DataFrame, X: np.ndarray) -> pd.DataFrame:
    """One row per (member, campaign): constant member features, affinity aggregates, label, time.

    Also carries the group's member index ``m`` and first exposure ``as_of`` (seconds) when
    ``rows`` has them, for :func:`coupon_habits`.
    """
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    frame = pd.DataFrame({n: X[:, col[n]] for n in CONSTANT})
    for n in AFFINITY_AGGREGATES:
        frame[f"{n}__max"] = X[:, col[n]]
        frame[f"{n}__sum"] = X[:, col[n]]
    frame["buys_offer_products"] = (np.nan_to_num(X[:, col["product_spend"]]) > 0).astype(np.float32)
    frame["offers_with_product_coupon"] = (np.nan_to_num(X[:, col["product_coupon"]]) > 0).astype(np.float32)
    frame["n_offers"] = 1.0
    frame["label"] = rows["label"].to_numpy()
    frame["exposed_at"] = rows["exposed_at"].to_numpy()
    frame["member_id"] = rows["member_id"].to_numpy()
    agg: dict[str, str] = {n: "first" for n in CONSTANT}
    agg.update({f"{n}__max": "max" for n in AFFINITY_AGGREGATES})
    agg.update({f"{n}__sum": "sum" for n in AFFINITY_AGGREGATES})
    agg.update({"buys_offer_products": "sum", "offers_with_product_coupon": "sum", "n_offers": "sum",
                "label": "max", "exposed_at": "min", "member_id": "first"})
    for name, how in (("m", "first"), ("as_of", "min")):
        if name in rows:
            frame[name] = rows[name].to_numpy()
            agg[name] = how
    key = [rows["member_id"].to_numpy(), rows["campaign_id"].to_numpy()]
    return frame.groupby(key, sort=False).agg(agg).reset_index(drop=True)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The tree model's feature columns present in ``frame``."""
    return [c for c in TREE_COLUMNS if c in frame.columns]


@dataclass(frozen=True)
class CouponLines:
    """What :func:`coupon_habits` reads of the purchase lines, for every member.

    ``line_key`` and ``basket_key`` are sorted ``member << 32 | time`` keys of the lines with a
    coupon discount and of one such line per basket; ``start`` is the data's first purchase
    time (None without lines). Members are indexed as the rows' ``m``. A partition's lines
    can be built on its own (a basket belongs to one member) and concatenated.
    """

    line_key: np.ndarray
    basket_key: np.ndarray
    start: int | None

    @classmethod
    def of_history(cls, history: History, lo: int = 0) -> CouponLines:
        """The coupon lines of ``history``, whose member 0 is member ``lo`` of the data set."""
        coupon = history.line_coupon > 0
        member = history.line_member[coupon].astype(np.int64) + lo
        when, basket = history.line_time[coupon].astype(np.int64), history.line_basket[coupon]
        _, first = np.unique(basket, return_index=True)  # one coupon line per basket (lines of a basket share its time)
        return cls(np.sort(member << 32 | when), np.sort(member[first] << 32 | when[first]),
                   int(history.line_time.min()) if len(history.line_time) else None)

    @classmethod
    def concat(cls, parts: list[CouponLines]) -> CouponLines:
        """Several partitions' lines as one (keys re-sorted, the earliest start)."""
        starts = [p.start for p in parts if p.start is not None]
        return cls(np.sort(np.concatenate([p.line_key for p in parts] or [np.zeros(0, dtype=np.int64)])),
                   np.sort(np.concatenate([p.basket_key for p in parts] or [np.zeros(0, dtype=np.int64)])),
                   min(starts) if starts else None)


def coupon_habits(frame: pd.DataFrame, lines: CouponLines) -> pd.DataFrame:
    """Point-in-time coupon habits and per-day rates for each group of :func:`campaign_frame`.

    Reads only purchase lines strictly before the group's ``as_of``. ``lines`` must index
    members as ``frame["m"]`` does (the data set's member indices). Adds:

    * ``coupon_basket_share_365d``: baskets with a coupon discount in the last 365 days
      over ``baskets_365d + 1``;
    * ``coupon_lines_90d_rate``: lines with a coupon discount in the last 90 days, per 30
      days of observed history (at most 90);
    * ``product_spend__sum_rate``, ``category_spend__sum_rate``: those sums per 30 days of
      observed history (at most 365).

    Observed history is the member's tenure capped by the time since the data's first
    purchase line, at least 7 days: early campaigns see a few weeks of purchases, later
    ones most of a year, and per-day rates keep the two comparable.
    """
    m = frame["m"].to_numpy(dtype=np.int64)
    t = frame["as_of"].to_numpy(dtype=np.int64)
    line_key, basket_key = lines.line_key, lines.basket_key

    def count(keys: np.ndarray, days: int) -> np.ndarray:
        hi = np.searchsorted(keys, m << 32 | t, "left")
        lo = np.searchsorted(keys, m << 32 | np.maximum(t - days * DAY, 0), "left")
        return np.where(m >= 0, hi - lo, 0).astype(np.float64)

    start = lines.start if lines.start is not None else int(t.min(initial=0))
    in_data = np.clip((t - start) / DAY, 0, None)
    observed = np.clip(np.minimum(np.nan_to_num(frame["tenure_days"].to_numpy(dtype=np.float64)), in_data), 7, None)
    out = pd.DataFrame(index=frame.index)
    out["coupon_basket_share_365d"] = count(basket_key, 365) / (frame["baskets_365d"].to_numpy() + 1)
    out["coupon_lines_90d_rate"] = count(line_key, 90) / np.minimum(observed, 90) * 30
    for name in ("product_spend__sum", "category_spend__sum"):
        out[f"{name}_rate"] = frame[name].to_numpy() / np.minimum(observed, 365) * 30
    return out


def _linear_design(frame: pd.DataFrame, campaign_types: list[float]) -> np.ndarray:
    """The logistic regression's inputs: signed log1p of each column, a missing flag, one-hot campaign type."""
    parts: list[np.ndarray] = []
    for name in LINEAR_COLUMNS:
        x = frame[name].to_numpy(dtype=np.float64)
        if name == "campaign_type":
            parts.extend((x == v).astype(np.float64) for v in campaign_types)
            continue
        missing = ~np.isfinite(x)
        x = np.where(missing, 0.0, x)
        parts.append(np.sign(x) * np.log1p(np.abs(x)))
        parts.append(missing.astype(np.float64))
    return np.column_stack(parts)


def _fit_linear(frame: pd.DataFrame, y: np.ndarray) -> tuple[Pipeline, list[float]]:
    types = sorted(float(v) for v in pd.unique(frame["campaign_type"].dropna()))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=LINEAR_C, max_iter=2000))
    model.fit(_linear_design(frame, types), y)
    return model, types


def _predict_linear(fitted: tuple[Pipeline, list[float]], frame: pd.DataFrame) -> np.ndarray:
    model, types = fitted
    return np.asarray(model.predict_proba(_linear_design(frame, types))[:, 1], dtype=np.float64)


def _blend(p_tree: np.ndarray, p_linear: np.ndarray) -> np.ndarray:
    """The two models' probabilities averaged on the logit scale (``BLEND_WEIGHT`` for the linear one)."""
    def logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    z = (1 - BLEND_WEIGHT) * logit(p_tree) + BLEND_WEIGHT * logit(p_linear)
    return 1 / (1 + np.exp(-z))


def fit_and_evaluate(train_rows: pd.DataFrame, X_train: np.ndarray, test_rows: pd.DataFrame,
                     X_test: np.ndarray, coupons: CouponLines | None = None) -> dict[str, Any]:
    """Fit on training groups (early stopping on the latest quarter), refit, evaluate on test groups.

    With ``coupons`` (the data set's coupon lines, members indexed like the rows' ``m``) the
    score is the blend of the tree model and the coupon-habit logistic regression; without
    it, the tree model alone (``"blend": False`` in the result). ``validation`` holds the
    validation block's ROC-AUC of each part, fitted on the groups before the block.
    """
    train = campaign_frame(train_rows, X_train)
    test = campaign_frame(test_rows, X_test)
    blend = coupons is not None and {"m", "as_of"} <= set(train.columns) and {"m", "as_of"} <= set(test.columns)
    if blend and coupons is not None:
        train = pd.concat([train, coupon_habits(train, coupons)], axis=1)
        test = pd.concat([test, coupon_habits(test, coupons)], axis=1)
    cols = feature_columns(train)
    y = train["label"].to_numpy()
    val_start = train.loc[train["label"] == 1, "exposed_at"].quantile(0.75)
    val = (train["exposed_at"] >= val_start).to_numpy()
    params = dict(PARAMS, num_threads=fit_threads())
    fit_set = lgb.Dataset(train.loc[~val, cols], y[~val], categorical_feature=["campaign_type", "channel"])
    booster = lgb.train(params, fit_set, 2000, valid_sets=[lgb.Dataset(train.loc[val, cols], y[val], reference=fit_set)],
                        callbacks=[lgb.early_stopping(100, verbose=False)])
    rounds = max(1, round(booster.best_iteration * 1.15))
    final = lgb.train(params, lgb.Dataset(train[cols], y, categorical_feature=["campaign_type", "channel"]), rounds)
    score = np.asarray(final.predict(test[cols], num_threads=1), dtype=np.float64)
    validation: dict[str, float] = {}
    both_classes = 0 < y[val].sum() < val.sum() and 0 < y[~val].sum() < (~val).sum()
    if both_classes:
        val_tree = np.asarray(booster.predict(train.loc[val, cols], num_iteration=booster.best_iteration))
        validation["tree"] = pooled(y[val], val_tree, probabilistic=False)["roc_auc"]
    if blend and both_classes:
        val_linear = _predict_linear(_fit_linear(train[~val], y[~val]), train[val])
        validation["linear"] = pooled(y[val], val_linear, probabilistic=False)["roc_auc"]
        validation["blend"] = pooled(y[val], _blend(val_tree, val_linear), probabilistic=False)["roc_auc"]
    if blend and 0 < y.sum() < len(y):
        score = _blend(score, _predict_linear(_fit_linear(train, y), test))
    else:
        blend = False
    out: dict[str, Any] = dict(pooled(test["label"].to_numpy(), score, probabilistic=False))
    out.update({"groups": len(test), "train_groups": len(train), "rounds": rounds, "blend": blend,
                "validation": validation})
    return out
