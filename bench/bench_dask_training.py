"""The training fit: LightGBM on the client against ``lightgbm.dask`` on a 2-worker LocalCluster.

``offers train --workers/--scheduler`` computes the features on the cluster and fits on the
client (docs/scale-out.md). This measures the alternative the issue names: the same design
(the sampled training rows of the first ``--partitions`` member partitions of a data
directory, the shipped parameters with the ``intermediate`` monotone method, a fixed number
of rounds) fitted by ``lgb.train`` on the client with every core, and by
``DaskLGBMClassifier`` on N single-threaded workers. Prints wall times and the test ROC-AUC
of both, and whether the two models are equal:

    python -m bench.bench_dask_training --data /tmp/syn300k --partitions 5 --rounds 200
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np


def run(data: Path, partitions: int, rounds: int, workers: int) -> dict[str, Any]:
    import dask.array as da
    import lightgbm as lgb
    from distributed import Client, LocalCluster
    from sklearn.metrics import roc_auc_score

    from models.features import CATEGORICAL_FEATURES, FEATURE_NAMES
    from training.dataset import load_dataset
    from training.train import (
        BASE_PARAMS,
        MONOTONE,
        PARTITION_MEMBERS,
        default_train_end,
        feature_matrix,
        sample_training_rows,
        split,
    )

    ds = load_dataset(data, validate=False)
    train, test = split(ds, default_train_end(ds))
    keep = PARTITION_MEMBERS * partitions
    train = sample_training_rows(train[train["m"] < keep].reset_index(drop=True))
    test = test[test["m"] < keep].reset_index(drop=True)
    X, Xt = feature_matrix(ds, train), feature_matrix(ds, test)
    y, w, yt = train["label"].to_numpy(), train["weight"].to_numpy(), test["label"].to_numpy()
    params = dict(BASE_PARAMS, monotone_constraints=[MONOTONE.get(f, 0) for f in FEATURE_NAMES],
                  monotone_constraints_method="intermediate")
    categorical = [FEATURE_NAMES.index(f) for f in CATEGORICAL_FEATURES]
    out: dict[str, Any] = {"data": str(data), "train_rows": len(y), "test_rows": len(yt), "rounds": rounds,
                           "features": len(FEATURE_NAMES)}

    t0 = time.perf_counter()
    booster = lgb.train(dict(params, num_threads=os.cpu_count() or 1),
                        lgb.Dataset(X, y, weight=w, feature_name=FEATURE_NAMES, categorical_feature=CATEGORICAL_FEATURES),
                        num_boost_round=rounds)
    out["client_fit_s"] = round(time.perf_counter() - t0, 1)
    p_client = booster.predict(Xt)
    out["client_test_auc"] = round(float(roc_auc_score(yt, p_client)), 5)

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        t0 = time.perf_counter()
        chunk = -(-len(y) // workers)
        dX = da.from_array(X, chunks=(chunk, X.shape[1])).persist()
        dy = da.from_array(y, chunks=chunk).persist()
        dw = da.from_array(w, chunks=chunk).persist()
        out["dask_scatter_s"] = round(time.perf_counter() - t0, 1)
        model_params = {k: v for k, v in params.items() if k not in ("objective", "learning_rate", "seed",
                                                                        "verbose", "num_leaves")}
        t0 = time.perf_counter()
        model = lgb.DaskLGBMClassifier(client=client, n_estimators=rounds, learning_rate=params["learning_rate"],
                                       num_leaves=params["num_leaves"], random_state=params["seed"],
                                       verbose=-1, num_threads=1, **model_params)
        model.fit(dX, dy, sample_weight=dw, feature_name=FEATURE_NAMES, categorical_feature=categorical)
        out["dask_fit_s"] = round(time.perf_counter() - t0, 1)
        p_dask = np.asarray(model.to_local().predict_proba(Xt))[:, 1]
    out["dask_workers"] = workers
    out["dask_test_auc"] = round(float(roc_auc_score(yt, p_dask)), 5)
    out["max_abs_prediction_difference"] = float(np.max(np.abs(p_dask - p_client)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--partitions", type=int, default=5, help="first N member partitions of 20,000")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(run(args.data, args.partitions, args.rounds, args.workers), indent=2))


if __name__ == "__main__":
    main()
