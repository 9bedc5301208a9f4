"""Re-evaluating a registered model on a time split, next to the baselines."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from models.model import PropensityModel
from models.registry import Registry
from training.baselines import Redemptions
from training.dataset import load_dataset
from training.train import TrainingError, evaluate_rows, feature_matrix, sample_test_members, split


def evaluate_version(data_dir: str | os.PathLike[str], registry: str | os.PathLike[str], version: str = "champion",
                     train_end: str | None = None, bootstrap_reps: int = 200, client: Any = None) -> dict[str, Any]:
    """Metrics of model ``version`` on exposures from ``train_end`` (default: its own cut-off) onwards.

    With a ``distributed.Client`` the features are computed on its cluster (:mod:`training.distributed`).
    """
    reg = Registry(registry)
    model = PropensityModel.load(reg.path(version))
    cut = pd.Timestamp(train_end or model.metadata.get("train_end"))
    ds = load_dataset(data_dir)
    _, test = split(ds, cut)
    test = sample_test_members(test)
    if test["label"].sum() == 0:
        raise TrainingError(f"no redemptions among exposures from {cut.date()}: nothing to evaluate")
    X = feature_matrix(ds, test, model.program, client=client)
    metrics = evaluate_rows(ds.catalog, Redemptions.of_history(ds.history), test, X, model, bootstrap_reps)
    metrics.update({"version": model.version, "train_end": str(cut.date())})
    return metrics
