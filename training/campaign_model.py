"""The member x campaign model: will the member redeem anything from this campaign?

Email tools decide *whom* to mail before *which* coupons to show; this model answers
the first question. Its rows are (member, campaign) groups, its features aggregate the
same point-in-time member x offer features: the member's own state (constant within
the group) plus the best and total affinity over the campaign's offers and how many of
them the member already buys. Trained and validated like the offer model (time split,
validation block from the training period only, early stopping, refit).
"""

from __future__ import annotations

import os
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.features import FEATURE_NAMES
from models.features.compute import HISTORY_FEATURES, MEMBER_FEATURES
from models.features.tiers import TIER_FEATURES
from training.metrics import pooled

AFFINITY_AGGREGATES = ("product_spend", "product_coupon", "product_lines", "category_spend", "category_share",
                       "manufacturer_spend", "overlap_redemptions", "overlap_exposures")
CONSTANT = [*MEMBER_FEATURES, *HISTORY_FEATURES, *TIER_FEATURES, "campaign_type", "offer_duration_days",
            "channel"]
PARAMS: dict[str, Any] = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 50,
                          "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 10.0,
                          "verbose": -1, "seed": 1}


def campaign_frame(rows: pd.DataFrame, X: np.ndarray) -> pd.DataFrame:
    """One row per (member, campaign): constant member features, affinity aggregates, label, time."""
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    frame = pd.DataFrame({n: X[:, col[n]] for n in CONSTANT})
    for n in AFFINITY_AGGREGATES:
        frame[f"{n}__max"] = X[:, col[n]]
        frame[f"{n}__sum"] = X[:, col[n]]
    frame["buys_offer_products"] = (np.nan_to_num(X[:, col["product_spend"]]) > 0).astype(np.float32)
    frame["n_offers"] = 1.0
    frame["label"] = rows["label"].to_numpy()
    frame["exposed_at"] = rows["exposed_at"].to_numpy()
    frame["member_id"] = rows["member_id"].to_numpy()
    key = [rows["member_id"].to_numpy(), rows["campaign_id"].to_numpy()]
    agg: dict[str, str] = {n: "first" for n in CONSTANT}
    agg.update({f"{n}__max": "max" for n in AFFINITY_AGGREGATES})
    agg.update({f"{n}__sum": "sum" for n in AFFINITY_AGGREGATES})
    agg.update({"buys_offer_products": "sum", "n_offers": "sum", "label": "max", "exposed_at": "min",
                "member_id": "first"})
    return frame.groupby(key, sort=False).agg(agg).reset_index(drop=True)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("label", "exposed_at", "member_id")]


def fit_and_evaluate(train_rows: pd.DataFrame, X_train: np.ndarray, test_rows: pd.DataFrame,
                     X_test: np.ndarray) -> dict[str, Any]:
    """Fit on training groups (early stopping on the latest quarter), refit, evaluate on test groups."""
    train = campaign_frame(train_rows, X_train)
    test = campaign_frame(test_rows, X_test)
    cols = feature_columns(train)
    y = train["label"].to_numpy()
    val_start = train.loc[train["label"] == 1, "exposed_at"].quantile(0.75)
    val = (train["exposed_at"] >= val_start).to_numpy()
    params = dict(PARAMS, num_threads=os.cpu_count() or 1)
    fit_set = lgb.Dataset(train.loc[~val, cols], y[~val], categorical_feature=["campaign_type", "channel"])
    booster = lgb.train(params, fit_set, 2000, valid_sets=[lgb.Dataset(train.loc[val, cols], y[val], reference=fit_set)],
                        callbacks=[lgb.early_stopping(100, verbose=False)])
    rounds = max(1, round(booster.best_iteration * 1.15))
    final = lgb.train(params, lgb.Dataset(train[cols], y, categorical_feature=["campaign_type", "channel"]), rounds)
    score = np.asarray(final.predict(test[cols], num_threads=1), dtype=np.float64)
    out = pooled(test["label"].to_numpy(), score, probabilistic=False)
    out.update({"groups": len(test), "train_groups": len(train), "rounds": rounds})
    return out
