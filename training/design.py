"""The training design: which exposures a run fits and tests on, sampled, with their features.

Two builders give the same :class:`Design`, row for row and bit for bit:

* :func:`design_from_dataset`, in-process, from a :class:`~training.dataset.Dataset` (the whole
  history in memory);
* :func:`training.cluster_design.cluster_design`, on a Dask cluster, where the client never
  loads a history: each worker labels, samples and computes features for one member partition.

So that both give the same rows, every choice is defined in a way that does not depend on how
the members are split:

* **the default cut-off** is the day of the lower 75th-percentile exposure time, which a
  histogram of exposure days gives exactly (:func:`cut_from_days`);
* **row order** is exposure time, then the row's position in the exposures file (what the
  whole-table load gives; each partition's rows carry their file position, so the client puts
  them back in that order);
* **negative sampling** draws each row's uniform number from a hash of its member and offer
  ids and the seed (:func:`row_uniform`), with the rate set by the global counts;
* **the test sample** keeps whole members chosen by a hash of their id;
* **the drift reference** draws members by rank among those joined by the cut-off and channels
  from the exposures' channel counts (:func:`reference_plan`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.features import FEATURE_NAMES, FeatureVocabulary, to_seconds
from training.baselines import Redemptions
from training.campaign_model import CouponLines
from training.dataset import Dataset
from training.errors import TrainingError

MAX_TRAIN_ROWS = 2_000_000  # above this, negatives are down-sampled (and weighted back up)
MAX_TEST_ROWS = 2_000_000   # above this, the test block is a sample of members (groups stay whole)
#: Rows of the drift reference sample at most (members x valid offers).
REFERENCE_ROWS = 20_000
#: Valid offers sampled at most for the drift reference.
REFERENCE_OFFERS = 200
DAY = 86_400


@dataclass
class Design:
    """What one training run fits, tests and registers with, besides the model itself.

    ``X_reference`` holds the features of the drift reference rows (members x offers valid at
    the cut-off), or is None when no offer was valid then (the held-out rows stand in).
    ``coupons`` is given only when training rows were not sampled (the campaign model needs
    every training group whole).
    """

    catalog: FeatureVocabulary
    fingerprint: str
    cut: pd.Timestamp
    first_exposure: pd.Timestamp
    last_exposure: pd.Timestamp
    train: pd.DataFrame
    test: pd.DataFrame
    X_train: np.ndarray
    X_test: np.ndarray
    n_train_all: int
    n_test_all: int
    X_reference: np.ndarray | None
    redemptions: Redemptions
    coupons: CouponLines | None
    timings: dict[str, float]


def exposure_days(exposed_at: pd.Series) -> np.ndarray:
    """Whole days since the epoch of each exposure time (the histogram's bins)."""
    return to_seconds(exposed_at) // DAY


def day_counts(days: np.ndarray) -> pd.Series:
    """Exposures per day, indexed by day number: what a partition reports for the cut-off."""
    return pd.Series(days).value_counts(sort=False)


def cut_from_days(counts: pd.Series) -> pd.Timestamp:
    """The default cut-off: the day holding the lower 75th-percentile exposure (a quarter to test).

    ``counts`` is exposures per day number (summed over partitions). The lower order statistic
    is the ``floor(0.75 (n - 1))``-th exposure in time order, and the cut-off is its day.
    """
    counts = counts.groupby(level=0).sum().sort_index()
    n = int(counts.sum())
    k = int(np.floor(0.75 * (n - 1)))
    day = int(counts.index[int(np.searchsorted(np.cumsum(counts.to_numpy()), k, side="right"))])
    return pd.Timestamp(day * DAY, unit="s")


def default_train_end(ds: Dataset) -> pd.Timestamp:
    """The day of the lower 75th-percentile exposure time (:func:`cut_from_days`): a quarter of
    exposures for testing."""
    return cut_from_days(day_counts(exposure_days(ds.exposures["exposed_at"])))


def moment_seconds(moment: pd.Timestamp) -> int:
    """``moment`` as int64 seconds since the epoch, as the features count time."""
    return int(to_seconds(pd.DatetimeIndex([moment]))[0])


def check_cut(cut: pd.Timestamp, first: pd.Timestamp, last: pd.Timestamp) -> None:
    """Refuse a cut-off that leaves no training or no test exposure."""
    if not first < cut <= last:
        raise TrainingError(f"--train-end {cut.date()} lies outside the data's exposures "
                            f"({first.date()} to {last.date()})")


def check_positives(positives: int, cut: pd.Timestamp) -> None:
    """Refuse a cut-off with too few training redemptions to fit anything."""
    if positives < 20:
        raise TrainingError(f"only {positives} redemptions before {cut.date()}: too few to train; "
                            "choose a later --train-end")


def split_rows(rows: pd.DataFrame, cut: pd.Timestamp, censor_labels: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows (exposed before ``cut``) and test rows, order kept.

    With ``censor_labels`` a training row counts as redeemed only if the redemption came
    before ``cut``, as a model trained on that day would have seen it.
    """
    before = (rows["exposed_at"] < cut).to_numpy()
    train = rows[before].copy()
    if censor_labels:
        train["label"] = (train["label"].astype(bool) & (train["redeemed_at"] < cut)).astype(np.int8)
    return train.reset_index(drop=True), rows[~before].reset_index(drop=True)


def split(ds: Dataset, train_end: pd.Timestamp, censor_labels: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and test rows of ``ds`` at ``train_end`` (:func:`split_rows`); refuses a cut-off
    outside the data or with too few training redemptions."""
    check_cut(train_end, ds.first_exposure, ds.last_exposure)
    train, test = split_rows(ds.exposures, train_end, censor_labels)
    check_positives(int(train["label"].sum()), train_end)
    return train, test


def row_uniform(rows: pd.DataFrame, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per row from a hash of its member and offer ids and ``seed``.

    The same row gets the same number whichever partition or process draws it.
    """
    keys = (rows["member_id"].astype(str) + "\x1f" + rows["offer_id"].astype(str)).to_numpy(dtype=object)
    hashed = pd.util.hash_array(keys, hash_key=f"offers{seed:010d}")
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def training_rate(n_rows: int, n_positives: int, limit: int | None = None) -> float | None:
    """The share of negatives to keep so about ``limit`` rows remain (None: keep every row).

    ``limit`` defaults to :data:`MAX_TRAIN_ROWS` as it is when called."""
    limit = MAX_TRAIN_ROWS if limit is None else limit
    n_neg = n_rows - n_positives
    if n_rows <= limit or n_neg == 0:
        return None
    return max(limit - n_positives, 1) / n_neg


def apply_training_rate(train: pd.DataFrame, rate: float | None, seed: int = 0) -> pd.DataFrame:
    """Every positive and the negatives whose :func:`row_uniform` is below ``rate``, weighted 1/rate."""
    train = train.copy()
    train["weight"] = 1.0
    if rate is None or train.empty:
        return train
    positives = (train["label"] == 1).to_numpy()
    train = train[positives | (row_uniform(train, seed) < rate)].copy()
    train.loc[train["label"] == 0, "weight"] = 1.0 / rate
    return train.reset_index(drop=True)


def sample_training_rows(train: pd.DataFrame, limit: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Every positive and a uniform sample of negatives, weighted by the inverse sampling rate.

    Keeps the fitted probabilities unbiased (the weights restore the base rate) while
    bounding the feature matrix; below ``limit`` rows nothing is sampled (weight 1).
    """
    return apply_training_rate(train, training_rate(len(train), int((train["label"] == 1).sum()), limit), seed)


def test_share(n_rows: int, limit: int | None = None) -> float | None:
    """The share of members whose test rows to keep so about ``limit`` remain (None: all;
    ``limit`` defaults to :data:`MAX_TEST_ROWS` as it is when called)."""
    limit = MAX_TEST_ROWS if limit is None else limit
    return None if n_rows <= limit else limit / n_rows


def apply_test_share(test: pd.DataFrame, share: float | None) -> pd.DataFrame:
    """The test rows of the members whose id hashes below ``share`` (whole members only)."""
    if share is None:
        return test
    bucket = pd.util.hash_array(test["member_id"].to_numpy(dtype=object)) % 10_000
    return test[bucket < int(share * 10_000)].reset_index(drop=True)


def sample_test_members(test: pd.DataFrame, limit: int | None = None) -> pd.DataFrame:
    """The test rows of a hash-chosen share of members, so at most about ``limit`` rows remain."""
    return apply_test_share(test, test_share(len(test), limit))


@dataclass(frozen=True)
class ReferencePlan:
    """Which rows the drift reference scores: ``offers`` x the members of ``ranks``.

    ``ranks`` are sorted positions among the members who joined by ``at`` (in members-table
    order); ``channels`` holds one channel code per row, member-major.
    """

    at: int
    offers: np.ndarray
    ranks: np.ndarray
    channels: np.ndarray

    def rows(self, members: np.ndarray, channels: np.ndarray | None = None) -> pd.DataFrame:
        """Feature rows (m, o, as_of, ch) for ``members`` (the member indices of some ranks)."""
        ch = self.channels if channels is None else channels
        n = len(members) * len(self.offers)
        return pd.DataFrame({"m": np.repeat(np.asarray(members, dtype=np.int64), len(self.offers)),
                             "o": np.tile(self.offers, len(members)), "as_of": np.full(n, self.at, dtype=np.int64),
                             "ch": ch[:n]})


def reference_plan(catalog: FeatureVocabulary, cut: pd.Timestamp, n_joined: int, channel_counts: np.ndarray,
                   seed: int = 0) -> ReferencePlan | None:
    """The drift reference's rows at ``cut``: seeded samples of valid offers and joined members.

    Serving scores every member against every offer valid at the moment, so the reference is
    that population, not the exposures. None when no offer is valid at ``cut`` or nobody had
    joined (the held-out rows then stand in).
    """
    rng = np.random.default_rng(seed)
    at = moment_seconds(cut)
    offers = np.flatnonzero((catalog.offer_start <= at) & (at < catalog.offer_end))
    if not len(offers) or not n_joined:
        return None
    if len(offers) > REFERENCE_OFFERS:
        offers = np.sort(rng.choice(offers, REFERENCE_OFFERS, replace=False))
    n_members = min(n_joined, max(1, REFERENCE_ROWS // len(offers)))
    ranks = np.sort(rng.choice(n_joined, n_members, replace=False))
    n = n_members * len(offers)
    total = channel_counts.sum()
    channels = (rng.choice(len(channel_counts), n, p=channel_counts / total).astype(np.int64) - 1 if total
                else np.zeros(n, dtype=np.int64))
    return ReferencePlan(at, offers, ranks, channels)


def joined_by(history_joined: np.ndarray, at: int) -> np.ndarray:
    """Member indices (ascending) of those who joined at or before ``at``."""
    return np.flatnonzero(history_joined <= at)


def channel_counts(ch: np.ndarray) -> np.ndarray:
    """Exposures per channel code, the unknown channel (-1) first: the reference draws in these proportions."""
    from models.data_contract import CHANNELS

    return np.bincount(np.asarray(ch, dtype=np.int64) + 1, minlength=len(CHANNELS) + 1).astype(np.float64)


def design_from_dataset(ds: Dataset, train_end: str | pd.Timestamp | None, censor_labels: bool,
                        features: Callable[..., np.ndarray]) -> Design:
    """The design in-process, from the whole history in memory.

    ``features(rows, shown=False)`` computes a feature matrix for ``rows`` of ``ds``
    (:func:`training.train.feature_matrix` with the program; ``shown``: with a progress bar).
    """
    import time

    timings: dict[str, float] = {}
    cut = default_train_end(ds) if train_end is None else pd.Timestamp(train_end)
    train, test = split(ds, cut, censor_labels)
    n_train_all, n_test_all = len(train), len(test)
    train, test = sample_training_rows(train), sample_test_members(test)
    t0 = time.perf_counter()
    X_train = features(train, shown=True)
    X_test = features(test, shown=True)
    plan = reference_plan(ds.catalog, cut, int((ds.history.joined_at <= moment_seconds(cut)).sum()),
                          channel_counts(ds.exposures["ch"].to_numpy()))
    X_reference = None
    if plan is not None:
        X_reference = features(plan.rows(joined_by(ds.history.joined_at, plan.at)[plan.ranks]))
    timings["features"] = time.perf_counter() - t0
    coupons = CouponLines.of_history(ds.history) if len(train) == n_train_all else None
    return Design(ds.catalog, ds.fingerprint, cut, ds.first_exposure, ds.last_exposure, train, test, X_train, X_test,
                  n_train_all, n_test_all, X_reference, Redemptions.of_history(ds.history), coupons, timings)


def empty_features(n: int) -> np.ndarray:
    """A float32 feature block of ``n`` rows."""
    return np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
