"""LightGBM fits follow OMP_NUM_THREADS (training/threads.py)."""

from __future__ import annotations

import os
from functools import partial

import pytest

from training.threads import fit_plan, fit_threads, run_fits


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("3", 3), (" 2 ", 2)])
def test_a_positive_thread_limit_reaches_lightgbm(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert fit_threads() == expected


@pytest.mark.parametrize("value", [None, "", "0", "-1", "two", "1.5"])
def test_without_a_usable_limit_every_core_is_used(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert fit_threads() == (os.cpu_count() or 1)


@pytest.mark.parametrize(("omp", "jobs", "plan"), [("1", 9, (1, 1)), ("2", 9, (2, 1)), ("2", 1, (1, 2)),
                                                   ("8", 2, (2, 4)), ("16", 9, (4, 4))])
def test_independent_fits_share_the_thread_budget(monkeypatch: pytest.MonkeyPatch, omp: str, jobs: int,
                                                  plan: tuple[int, int]) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert fit_plan(jobs) == plan


def test_fits_side_by_side_give_the_models_of_fits_one_after_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_fits returns each job's own result under its key, and the models do not depend on the
    scheduling: two fits at once (one thread each) equal the same fits run in turn."""
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 6))
    y = (X[:, 0] + rng.normal(size=3000) > 0.5).astype(int)

    def job(seed: int):
        def fit(threads: int) -> str:
            params = {"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": seed, "num_threads": threads,
                      "bagging_fraction": 0.8, "bagging_freq": 1}
            return lgb.train(params, lgb.Dataset(X, y), num_boost_round=30).model_to_string()
        return fit

    runs = {}
    for omp in ("1", "2"):
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
        finished: list[int] = []
        runs[omp] = run_fits({seed: job(seed) for seed in (5, 6, 7)}, partial(finished.append, 1))
        assert list(runs[omp]) == [5, 6, 7] and len(finished) == 3
    assert runs["1"] == runs["2"]
    assert len(set(runs["1"].values())) == 3
