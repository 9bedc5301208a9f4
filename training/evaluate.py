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

    With a ``distributed.Client`` the test rows are labelled, sampled and featurised on its
    cluster and this process never loads a history (:mod:`training.cluster_design`); the rows
    and features are the in-process ones, so are the metrics.
    """
    reg = Registry(registry)
    model = PropensityModel.load(reg.path(version))
    cut = pd.Timestamp(train_end or model.metadata.get("train_end"))
    if client is not None:
        from training.cluster_design import cluster_design

        design = cluster_design(client, data_dir, cut, False, model.program, with_training=False)
        catalog, redemptions, test, X = design.catalog, design.redemptions, design.test, design.X_test
    else:
        ds = load_dataset(data_dir)
        _, test = split(ds, cut)
        test = sample_test_members(test)
        catalog, redemptions = ds.catalog, Redemptions.of_history(ds.history)
        if test["label"].sum() == 0:
            raise TrainingError(f"no redemptions among exposures from {cut.date()}: nothing to evaluate")
        X = feature_matrix(ds, test, model.program)
    if test["label"].sum() == 0:
        raise TrainingError(f"no redemptions among exposures from {cut.date()}: nothing to evaluate")
    metrics = evaluate_rows(catalog, redemptions, test, X, model, bootstrap_reps)
    metrics.update({"version": model.version, "train_end": str(cut.date())})
    return metrics
