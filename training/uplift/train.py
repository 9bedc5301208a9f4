"""Training uplift models: per offer, a meta-learner chosen by cross-validation on the training split.

:func:`train_uplift` is the API behind ``offers train --objective uplift`` (chosen automatically
when the data has control arms). For each offer:

1. The units are its treatment and control members with their outcome (training.uplift.data).
2. Each candidate (T-, X-learner or class transformation, small or larger trees, small or
   large leaves) is fitted on ``folds - 1`` folds (stratified by arm and outcome, seeded) and
   predicts the held-out fold. The winner is the candidate whose out-of-fold predictions make
   the most money: the net value of the policy the engine will run, "send where uplift x value
   > send cost", measured on the held-out folds' randomized arms (ties, and offers without a
   known value, go by Qini). Ranking quality alone is not the goal: two learners with the same
   Qini can send very different sets of members once the cost threshold applies.
3. The winner is refitted on all training units and registered. Nothing here reads a held-out
   split: ``offers evaluate`` measures it once, afterwards.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.registry import Registry
from models.uplift import Method, UpliftModel
from models.uplift import UpliftLearner as ServedLearner
from training.train import TrainingError
from training.uplift.data import encode, load_units
from training.uplift.learners import UpliftLearner
from training.uplift.metrics import auuc, qini, targeted_value, uplift_at_k

#: (method, num_leaves, rounds, min_data_in_leaf): the candidates cross-validation chooses among.
CANDIDATES: tuple[tuple[Method, int, int, int], ...] = (
    ("t_learner", 7, 100, 200), ("t_learner", 15, 200, 200), ("t_learner", 7, 100, 1000),
    ("class_transformation", 7, 100, 200), ("class_transformation", 15, 200, 200),
    ("x_learner", 7, 100, 1000),
)


class UpliftTrainingError(TrainingError):
    """The data cannot train an uplift model (no control arm, no outcomes, ...)."""


@dataclass
class UpliftTrainResult:
    """A registered uplift version and its cross-validation table."""

    version: str
    model_dir: Path
    selection: dict[str, Any]


def folds_of(t: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold number per unit, stratified by (arm, outcome), from a seeded permutation."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(t), dtype=np.int64)
    for stratum in np.unique(t * 2 + y):
        idx = rng.permutation(np.flatnonzero(t * 2 + y == stratum))
        fold[idx] = np.arange(len(idx)) % folds
    return fold


def cross_validate(X: np.ndarray, t: np.ndarray, y: np.ndarray, names: list[str], categorical: list[str],
                   folds: int, seed: int, candidates=CANDIDATES, value: float | None = None,
                   cost: float = 0.0) -> list[dict[str, Any]]:
    """Out-of-fold Qini, AUUC, uplift@30% and (with a ``value`` per conversion) the policy's
    net value, share and IRR, of every candidate on one offer's training units (money in
    major units)."""
    fold = folds_of(t, y, folds, seed)
    rows = []
    for candidate in candidates:
        method, leaves, rounds = candidate[:3]
        min_leaf = candidate[3] if len(candidate) > 3 else 200
        oof = np.zeros(len(y))
        for f in range(folds):
            test = fold == f
            learner = UpliftLearner.fit(method, X[~test], t[~test], y[~test], names, categorical, leaves, rounds,
                                        min_leaf)
            oof[test] = learner.predict(X[test])[0]
        row = {"method": method, "num_leaves": leaves, "rounds": rounds, "min_data_in_leaf": min_leaf,
               "qini": qini(y, t, oof), "auuc": auuc(y, t, oof), "uplift@30%": uplift_at_k(y, t, oof, 0.3)}
        if value is not None:
            policy = targeted_value(y, t, oof * value > cost, value, cost)
            row.update({"policy_net_value": policy["net_value"], "policy_share": policy["share"],
                        "policy_irr": policy["irr"]})
        rows.append(row)
    return rows


def choose(table: list[dict[str, Any]]) -> dict[str, Any]:
    """The candidate whose policy earns the most out of fold (Qini breaks ties; Qini alone when
    the offer's value is unknown)."""
    return max(table, key=lambda r: (r.get("policy_net_value", 0.0), r["qini"]))


def train_uplift(data_dir: str | Path, registry: str | Path, folds: int = 4, seed: int = 0,
                 promote: bool | None = None, candidates=None, now: dt.datetime | None = None
                 ) -> UpliftTrainResult:
    """Choose, fit and register one uplift learner per offer of ``data_dir`` (training split only)."""
    units = load_units(data_dir, "transactions")
    features, categories = encode(units.attributes)
    names = list(features.columns)
    if not names:
        raise UpliftTrainingError(f"{data_dir}: members carry no attr_* attributes to model uplift on")
    categorical = [n for n in names if n in categories]
    learners: dict[str, ServedLearner] = {}
    selection: dict[str, dict[str, Any]] = {}
    offers_meta: dict[str, dict[str, Any]] = {}
    for offer in units.offers.itertuples():
        u = units.frame[units.frame["offer_id"] == offer.offer_id]
        t, y = u["t"].to_numpy(dtype=np.int64), u["y"].to_numpy(dtype=np.int64)
        if t.min(initial=1) == 1 or t.max(initial=0) == 0:
            raise UpliftTrainingError(f"offer {offer.offer_id!r} needs both treatment and control units")
        if y.sum() == 0:
            raise UpliftTrainingError(f"offer {offer.offer_id!r} has no outcomes in its window to learn from")
        X = features.reindex(u["member_id"].to_numpy()).to_numpy(dtype=np.float64)
        value = None if pd.isna(offer.value_minor) else float(offer.value_minor) / 100.0
        cost = 0.0 if pd.isna(offer.send_cost_minor) else float(offer.send_cost_minor) / 100.0
        table = cross_validate(X, t, y, names, categorical, folds, seed, candidates or CANDIDATES, value, cost)
        best = choose(table)
        learners[offer.offer_id] = UpliftLearner.fit(best["method"], X, t, y, names, categorical,
                                                     best["num_leaves"], best["rounds"], best["min_data_in_leaf"])
        selection[offer.offer_id] = {"candidates": table, "chosen": best, "units": len(u),
                                     "treated": int(t.sum()), "outcome_rate_treated": float(y[t == 1].mean()),
                                     "outcome_rate_control": float(y[t == 0].mean())}
        offers_meta[offer.offer_id] = {
            "send_cost_minor": 0 if pd.isna(offer.send_cost_minor) else int(offer.send_cost_minor),
            "value_minor": None if pd.isna(offer.value_minor) else int(offer.value_minor)}
    stamp = now or dt.datetime.now(dt.UTC)
    meta = {"created_at": stamp.isoformat(), "data_dir": str(data_dir), "folds": folds, "seed": seed,
            "selection": selection, "offers": offers_meta,
            "headline_metrics": {f"cv_qini[{o}]": round(s["chosen"]["qini"], 5) for o, s in selection.items()}}
    model = UpliftModel(learners, names, categories, meta)
    reg = Registry(registry, create=True)
    with reg.staging() as staged:
        model.save(staged)
        version = reg.register(staged, now=stamp)
    if promote or (promote is None and reg.aliases().get("champion") is None):
        reg.promote(version)
    return UpliftTrainResult(version, reg.path(version), selection)
