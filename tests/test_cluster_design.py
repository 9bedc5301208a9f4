"""The training design on a real two-worker Dask ``LocalCluster`` equals the in-process design.

``training.cluster_design`` labels, samples and computes features one member partition per
task, and the client never loads a history. Every part of the design must still be the one
:func:`training.design.design_from_dataset` builds from the whole history: the cut-off, the
rows in order (with their labels and sampling weights), the feature matrices bit for bit, the
drift reference, the redemptions the popularity baseline counts and the campaign model's
coupon lines. Partitions are made small (300 members, 7 tasks), so rows, reference members
and coupon lines come from several partitions and are put back together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from offerdata import loader
from offerdata.directory import default_program
from training import cluster_design, design
from training.dataset import Dataset, load_dataset
from training.design import Design, design_from_dataset
from training.train import TrainingError, feature_matrix, read_program

pytestmark = pytest.mark.slow  # a LocalCluster and three whole designs: about a minute


@pytest.fixture(scope="module")
def syn_ds(syn_dir: Path) -> Dataset:
    return load_dataset(syn_dir)


@pytest.fixture
def small_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_design, "PARTITION_MEMBERS", 300)


def _in_process(ds: Dataset, train_end: str | None, censor: bool, program: Any) -> Design:
    return design_from_dataset(ds, train_end, censor, lambda rows, shown=False: feature_matrix(ds, rows, program))


def _assert_same(local: Design, remote: Design) -> None:
    assert remote.cut == local.cut
    assert (remote.first_exposure, remote.last_exposure) == (local.first_exposure, local.last_exposure)
    assert (remote.n_train_all, remote.n_test_all) == (local.n_train_all, local.n_test_all)
    assert remote.fingerprint == local.fingerprint
    for name in ("train", "test"):
        pd.testing.assert_frame_equal(getattr(remote, name), getattr(local, name))
        assert np.array_equal(getattr(remote, f"X_{name}"), getattr(local, f"X_{name}"), equal_nan=True), name
    assert local.X_reference is not None and remote.X_reference is not None
    assert np.array_equal(remote.X_reference, local.X_reference, equal_nan=True)
    pairs = [sorted(zip(r.time.tolist(), r.offer.tolist(), strict=True)) for r in (local.redemptions, remote.redemptions)]
    assert pairs[0] == pairs[1]
    assert (remote.coupons is None) == (local.coupons is None)
    if local.coupons is not None and remote.coupons is not None:
        assert np.array_equal(remote.coupons.line_key, local.coupons.line_key)
        assert np.array_equal(remote.coupons.basket_key, local.coupons.basket_key)
        assert remote.coupons.start == local.coupons.start


def _no_whole_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading a whole history, or any member range, fail in this (the client's) process."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the client loaded a history")

    monkeypatch.setattr(loader, "load_history", refuse)
    monkeypatch.setattr(loader, "load_member_range", refuse)
    import training.dataset

    monkeypatch.setattr(training.dataset, "load_history", refuse)


def test_cluster_design_equals_the_in_process_design(dask_client: object, syn_ds: Dataset, syn_dir: Path,
                                                     small_partitions: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default cut-off, no sampling: rows, features, reference and coupon lines all equal."""
    program, _ = read_program(default_program(syn_dir))
    local = _in_process(syn_ds, None, False, program)
    _no_whole_history(monkeypatch)
    remote = cluster_design.cluster_design(dask_client, syn_dir, None, False, program)
    assert local.coupons is not None and len(local.coupons.line_key)
    assert len(local.train) > 10_000 and local.train["label"].sum() > 100
    _assert_same(local, remote)


def test_cluster_design_samples_the_rows_the_in_process_design_samples(
        dask_client: object, syn_ds: Dataset, syn_dir: Path, small_partitions: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Negatives and test members sampled at the global rate, labels censored at a given cut-off."""
    local_full = _in_process(syn_ds, "2025-09-01", True, None)
    monkeypatch.setattr(design, "MAX_TRAIN_ROWS", len(local_full.train) // 3)
    monkeypatch.setattr(design, "MAX_TEST_ROWS", len(local_full.test) // 2)
    local = _in_process(syn_ds, "2025-09-01", True, None)
    _no_whole_history(monkeypatch)
    remote = cluster_design.cluster_design(dask_client, syn_dir, "2025-09-01", True, None)
    # sampled: every positive kept, negatives weighted back up, whole test members, no coupon lines
    assert local.train["label"].sum() == local_full.train["label"].sum()
    assert len(local.train) < len(local_full.train) / 2 and (local.train["weight"] > 1).any()
    assert len(local.test) < len(local_full.test) * 0.7 and local.coupons is None
    _assert_same(local, remote)


def test_cluster_design_refuses_what_in_process_refuses(dask_client: object, syn_dir: Path) -> None:
    with pytest.raises(TrainingError, match="lies outside the data's exposures"):
        cluster_design.cluster_design(dask_client, syn_dir, "2001-01-01", False, None)


def test_evaluate_on_the_cluster_gives_the_in_process_metrics(dask_client: object, syn_dir: Path, trained_registry: Path,
                                                              small_partitions: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``offers evaluate`` on the cluster: the test rows sampled (whole members) and featurised by
    the workers, the client loading no history, the metrics those of the in-process run."""
    from training.evaluate import evaluate_version

    monkeypatch.setattr(design, "MAX_TEST_ROWS", 8_000)
    local = evaluate_version(syn_dir, trained_registry, bootstrap_reps=0)
    _no_whole_history(monkeypatch)
    remote = evaluate_version(syn_dir, trained_registry, bootstrap_reps=0, client=dask_client)
    assert 0 < local["rows"] < 12_000 and local["positives"] > 0
    assert remote == local
