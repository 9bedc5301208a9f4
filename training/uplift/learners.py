"""Meta-learners of the incremental effect of one offer, on LightGBM.

* **T-learner**: one classifier per arm; uplift = P(y | x, treated) - P(y | x, control).
* **Class transformation** (Jaskowski & Jaroszewicz 2012, with inverse-propensity weights so
  unequal arms are fine): a classifier of z = 1 when (treated and y) or (control and not y);
  uplift = 2 P(z | x) - 1.

* **X-learner** (Künzel et al. 2019): the T-learner's arm models, then regressions of each
  arm's imputed effect, mixed by the treated share.

All return ``(uplift, p_treated)``: the T-learner's treated-arm probability, or for class
transformation a treated-arm classifier fitted alongside, so every uplift model also scores a
propensity.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

from models.uplift import Method
from models.uplift import UpliftLearner as ServedLearner

PARAMS: dict[str, Any] = {"objective": "binary", "learning_rate": 0.05, "min_data_in_leaf": 200,
                          "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
                          "lambda_l2": 10.0, "verbose": -1, "seed": 1, "num_threads": 1, "max_bin": 63}


def _fit(X: np.ndarray, y: np.ndarray, params: dict[str, Any], rounds: int, names: list[str],
         categorical: list[str], weight: np.ndarray | None = None) -> lgb.Booster:
    """One LightGBM binary classifier."""
    data = lgb.Dataset(X, label=y, weight=weight, feature_name=names,
                       categorical_feature=categorical or "auto", free_raw_data=True)
    return lgb.train(params, data, num_boost_round=rounds)


class UpliftLearner(ServedLearner):
    """:class:`models.uplift.UpliftLearner` with its fitting (serving only predicts)."""

    @classmethod
    def fit(cls, method: Method, X: np.ndarray, t: np.ndarray, y: np.ndarray, names: list[str],
            categorical: list[str], num_leaves: int = 15, rounds: int = 200,
            min_data_in_leaf: int = 200) -> UpliftLearner:
        """Fit ``method`` on features ``X``, arm ``t`` (1 treated) and binary outcome ``y``.

        ``min_data_in_leaf`` is the regularization that matters most on experiments, where the
        effect is a small difference of two noisy rates: larger leaves average over more units.
        """
        params = {**PARAMS, "num_leaves": num_leaves, "min_data_in_leaf": min_data_in_leaf}
        treated = t == 1
        share = float(treated.mean())
        boosters = {"treated": _fit(X[treated], y[treated], params, rounds, names, categorical)}
        if method in ("t_learner", "x_learner"):
            boosters["control"] = _fit(X[~treated], y[~treated], params, rounds, names, categorical)
        if method == "x_learner":
            regression = {**params, "objective": "regression"}
            imputed_t = y[treated] - boosters["control"].predict(X[treated], num_threads=1)
            imputed_c = boosters["treated"].predict(X[~treated], num_threads=1) - y[~treated]
            boosters["effect_treated"] = _fit(X[treated], imputed_t, regression, rounds, names, categorical)
            boosters["effect_control"] = _fit(X[~treated], imputed_c, regression, rounds, names, categorical)
        elif method == "class_transformation":
            p = treated.mean()
            z = np.where(treated, y, 1 - y)
            weight = np.where(treated, 0.5 / p, 0.5 / (1 - p))
            boosters["z"] = _fit(X, z, params, rounds, names, categorical, weight)
        return cls(method, boosters, share)
