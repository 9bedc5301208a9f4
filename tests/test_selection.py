"""Expanding-window validation folds and the selection rule (training.selection)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.selection import pooled_ranking, select, validation_folds


def _rows(days: list[int], labels: list[int]) -> tuple[pd.Series, np.ndarray]:
    return pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D")), np.array(labels)


def test_folds_expand_oldest_first_and_each_fits_only_before_its_block() -> None:
    # 40 positives a day on days 0..9, negatives alongside
    days = [d for d in range(10) for _ in range(80)]
    labels = [int(i % 2 == 0) for i in range(len(days))]
    t, y = _rows(days, labels)
    folds = validation_folds(t, y, n_folds=3, min_positives=30)
    assert len(folds) == 3
    starts = [f.start for f in folds]
    assert starts == sorted(starts)
    for k, fold in enumerate(folds):
        assert (t[fold.fit] < fold.start).all() and (t[fold.validation] >= fold.start).all()
        assert not (fold.fit & fold.validation).any()
        if k + 1 < len(folds):  # a block ends where the next fold's block starts
            assert (t[fold.validation] < folds[k + 1].start).all()
            assert (folds[k + 1].fit >= fold.fit).all()  # expanding: the later fold fits on more
    # the last block starts at the day holding the positives' 75th percentile (day 7), whole
    assert folds[-1].start == pd.Timestamp("2024-01-01") + pd.Timedelta(days=7)
    assert folds[-1].fit.sum() + folds[-1].validation.sum() == len(y)


def test_earlier_folds_need_enough_positives_on_both_sides() -> None:
    # few early positives: only the last fold survives a high minimum
    days = [0] * 10 + [1] * 10 + [5] * 200 + [6] * 200
    labels = [1, 0] * 5 + [1, 0] * 5 + [1, 0] * 100 + [1, 0] * 100
    t, y = _rows(days, labels)
    assert len(validation_folds(t, y, n_folds=3, min_positives=30)) == 1
    assert len(validation_folds(t, y, n_folds=3, min_positives=3)) >= 2


def test_no_fold_without_positives_on_both_sides_of_the_block() -> None:
    t, y = _rows([0, 0, 1, 1], [0, 0, 1, 1])  # every positive in the block: nothing to fit on
    assert validation_folds(t, y) == []


def test_pooled_ranking_keeps_a_group_that_straddles_two_blocks_apart() -> None:
    t, y = _rows([0] * 40 + [3] * 40 + [6] * 40, ([1] + [0] * 3) * 30)
    folds = validation_folds(t, y, n_folds=3, min_positives=5)
    assert len(folds) >= 2
    groups = np.array(["m1|c1"] * len(y), dtype=object)  # one group id everywhere
    scores = [np.arange(f.validation.sum(), dtype=float) for f in folds]
    ys, ss, gs = pooled_ranking(folds, y, groups, scores)
    assert len(ys) == len(ss) == len(gs) == sum(int(f.validation.sum()) for f in folds)
    assert len(set(gs)) == len(folds)  # one group per fold, not one across models


@pytest.mark.parametrize(("monotone", "free", "chosen"), [
    (0.30, 0.31, "binary_monotone"),  # within one standard error: keep the constrained default
    (0.20, 0.40, "binary"),
])
def test_select_prefers_the_default_unless_beaten_by_a_standard_error(monotone: float, free: float,
                                                                      chosen: str) -> None:
    candidates = {"binary_monotone": {"val": {"hit@1": monotone, "groups": 200}},
                  "binary": {"val": {"hit@1": free, "groups": 200}}}
    assert select(candidates) == chosen
