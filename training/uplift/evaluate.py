"""Evaluating an uplift version once on a held-out split, next to the baselines, with intervals.

Per offer, on the split's units with their ``holdout_transactions`` outcomes:

* ranking metrics (Qini, AUUC, uplift@10/30/50%) of the model's uplift and of the baselines
  ``propensity`` (the treated-arm outcome probability the same version scores) and ``random``;
* the **policy** "send where uplift x value > send cost" and the baselines "treat everyone",
  "treat no one", "random" (the same share as the policy, drawn at random) and "propensity"
  (the same share, by propensity): IRR, NIR and net value (training.uplift.metrics);
* 95% bootstrap intervals over units for the model's metrics.

With several offers sharing one control group, the **multi-offer policy** sends each member the
offer with the highest uplift x value - cost (or nothing when none is positive). Its value per
member is estimated from the randomized arms by inverse probability weighting and compared
with sending everyone the same single offer, and with sending nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.registry import Registry
from models.uplift import UpliftModel, load_uplift
from training.uplift.data import load_units
from training.uplift.metrics import auuc, qini, targeted_value, uplift_at_k

KS = (0.1, 0.3, 0.5)


def ranking_metrics(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Qini, AUUC and uplift@k of one scoring."""
    out = {"qini": qini(y, t, score), "auuc": auuc(y, t, score)}
    out.update({f"uplift@{round(k * 100)}%": uplift_at_k(y, t, score, k) for k in KS})
    return out


def _interval(values: list[float]) -> list[float]:
    """The 2.5% and 97.5% quantiles, ignoring NaNs."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    return [float(np.quantile(arr, 0.025)), float(np.quantile(arr, 0.975))] if len(arr) else [np.nan, np.nan]


def evaluate_offer(y: np.ndarray, t: np.ndarray, uplift: np.ndarray, propensity: np.ndarray, value: float,
                   cost: float, reps: int, seed: int) -> dict[str, Any]:
    """Every metric of one offer, the model's next to the baselines (money in major units)."""
    rng = np.random.default_rng(seed)
    random_score = rng.random(len(y))
    chosen = uplift * value > cost
    share = int(chosen.sum())
    by_propensity = np.zeros(len(y), dtype=bool)
    by_propensity[np.argsort(-propensity, kind="stable")[:share]] = True
    at_random = np.zeros(len(y), dtype=bool)
    at_random[rng.permutation(len(y))[:share]] = True
    out: dict[str, Any] = {
        "units": len(y), "treated": int(t.sum()), "ate": float(y[t == 1].mean() - y[t == 0].mean()),
        "value": value, "cost": cost,
        "ranking": {"model": ranking_metrics(y, t, uplift), "propensity": ranking_metrics(y, t, propensity),
                    "random": ranking_metrics(y, t, random_score)},
        "policy": {"model": targeted_value(y, t, chosen, value, cost),
                   "treat_everyone": targeted_value(y, t, np.ones(len(y), bool), value, cost),
                   "treat_no_one": targeted_value(y, t, np.zeros(len(y), bool), value, cost),
                   "random": targeted_value(y, t, at_random, value, cost),
                   "propensity": targeted_value(y, t, by_propensity, value, cost)},
    }
    samples: dict[str, list[float]] = {}
    for _ in range(reps):
        i = rng.integers(0, len(y), len(y))
        for name, val in {**ranking_metrics(y[i], t[i], uplift[i]),
                          **{f"policy_{k}": v for k, v in targeted_value(y[i], t[i], chosen[i], value, cost).items()
                             if k in ("irr", "nir", "net_value")}}.items():
            samples.setdefault(name, []).append(val)
    out["ci95"] = {name: _interval(vals) for name, vals in samples.items()}
    return out


def multi_offer_policy(units: pd.DataFrame, scores: dict[str, np.ndarray], offers: dict[str, dict[str, float]],
                       member_ids: np.ndarray, reps: int, seed: int) -> dict[str, Any]:
    """IPW value per member (major units) of the best-offer-or-none policy and of single-arm policies.

    ``units`` is every (member, offer) unit with its arm; a member's actual arm is the offer
    they were sent, or none. ``scores[o]`` is offer o's uplift for ``member_ids``.
    """
    sent = units[units["t"] == 1].drop_duplicates("member_id").set_index("member_id")["offer_id"]
    amount = units.groupby("member_id")["amount"].max() / 100.0
    actual = pd.Series(sent.reindex(member_ids).to_numpy(), index=member_ids).fillna("")
    spend = amount.reindex(member_ids).to_numpy()
    ids = list(offers)
    gain = np.column_stack([scores[o] * offers[o]["value"] - offers[o]["cost"] for o in ids])
    best = np.where(gain.max(axis=1) > 0, np.array(ids, dtype=object)[gain.argmax(axis=1)], "")
    arms = ["", *ids]
    p = {a: float((actual == a).mean()) for a in arms}
    cost = {"": 0.0, **{o: offers[o]["cost"] for o in ids}}
    act = actual.to_numpy()

    def value(assign: np.ndarray, rows: np.ndarray) -> float:
        """IPW mean of spend minus send cost over ``rows`` under the assignment ``assign``."""
        a, s = assign[rows], spend[rows]
        match = act[rows] == a
        weight = np.array([1.0 / p[x] for x in a])
        return float(np.mean(match * weight * s) - np.mean([cost[x] for x in a]))

    policies = {"model": best, **{f"everyone_{o}": np.full(len(act), o, dtype=object) for o in ids},
                "no_one": np.full(len(act), "", dtype=object)}
    everything = np.arange(len(act))
    rng = np.random.default_rng(seed)
    boot = [rng.integers(0, len(act), len(act)) for _ in range(reps)]
    out = {name: {"value_per_member": value(assign, everything),
                  "ci95": _interval([value(assign, b) for b in boot])} for name, assign in policies.items()}
    out["model"]["shares"] = {a or "none": float((best == a).mean()) for a in arms}
    return out


def evaluate_uplift(data_dir: str | Path, registry: str | Path, version: str = "champion", reps: int = 200,
                    seed: int = 0) -> dict[str, Any]:
    """Every held-out metric of an uplift version on ``data_dir``'s holdout_transactions."""
    path = Registry(registry).path(version)
    model: UpliftModel = load_uplift(path)
    units = load_units(data_dir, "holdout")
    features = model.features(units.attributes)
    result: dict[str, Any] = {"version": model.version, "data_dir": str(data_dir), "offers": {}}
    economics = {}
    for offer_id in model.learners:
        u = units.frame[units.frame["offer_id"] == offer_id]
        if u.empty:
            continue
        X = features.reindex(u["member_id"].to_numpy()).to_numpy(dtype=np.float64)
        uplift, propensity = model.predict_offer(offer_id, X)
        spec = model.metadata["offers"][offer_id]
        value = (spec.get("value_minor") or 0) / 100.0
        cost = (spec.get("send_cost_minor") or 0) / 100.0
        economics[offer_id] = {"value": value, "cost": cost}
        result["offers"][offer_id] = evaluate_offer(u["y"].to_numpy(dtype=float), u["t"].to_numpy(dtype=np.int64),
                                                    uplift, propensity, value, cost, reps, seed)
    if len(economics) > 1:
        members = units.frame["member_id"].unique()
        X = features.reindex(members).to_numpy(dtype=np.float64)
        scores = {o: model.predict_offer(o, X)[0] for o in economics}
        result["multi_offer"] = multi_offer_policy(units.frame, scores, economics, members, reps, seed)
    return result
