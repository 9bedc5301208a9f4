"""The training design built on a Dask cluster, without the client ever loading a history.

``offers train --workers N`` or ``--scheduler ADDRESS``. The client reads the catalog, the
members table's row count and validates the directory; everything that grows with members is
read and reduced on the workers, one member partition (``PARTITION_MEMBERS`` consecutive rows
of the members table) per task, in three passes:

1. **survey**: each partition's labelled exposures give a histogram of exposure days (for the
   default cut-off), the first and last exposure, the channel counts and the partition's
   redemptions as two small arrays (the popularity baseline reads every member's);
2. **count** at the cut-off: training rows and their redemptions, test rows and members who had
   joined, which set the negative-sampling rate, the test share and the drift reference's
   members exactly as the in-process run sets them;
3. **design**: each partition reads its whole history from the Parquet directory, samples its
   rows with the global rate and share (a row's draw is a hash of its ids, not a position in a
   stream) and returns only the sampled rows, their float32 features, its drift-reference
   rows' features and, when training rows are not sampled, its coupon lines.

The client then holds what the fit needs: at most ``MAX_TRAIN_ROWS`` + ``MAX_TEST_ROWS`` rows
with their features, 12 bytes per redemption, and the reference block. The rows are put in
the in-process order (exposure time, then position in the exposures file), so the design, and
the model fitted on it, are those of :func:`training.design.design_from_dataset` (``tests/test_cluster_design.py``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.features import compute_features, to_seconds
from offerdata import loader
from runtime.memory import release_free_memory
from training.baselines import Redemptions
from training.campaign_model import CouponLines
from training.dataset import fingerprint as data_fingerprint
from training.dataset import labelled_rows
from training.design import (
    Design,
    ReferencePlan,
    apply_test_share,
    apply_training_rate,
    channel_counts,
    check_cut,
    check_positives,
    cut_from_days,
    day_counts,
    empty_features,
    exposure_days,
    moment_seconds,
    reference_plan,
    split_rows,
    test_share,
    training_rate,
)
from training.distributed import as_finished, worker_catalog
from training.errors import TrainingError

#: Members per task; read when the design is built, so a test can make partitions small.
PARTITION_MEMBERS = loader.PARTITION_MEMBERS


@dataclass(frozen=True)
class Survey:
    """Pass 1 of one partition: what the cut-off, the reference and popularity need."""

    rows: int
    days: pd.Series
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    channels: np.ndarray
    redemptions: Redemptions


@dataclass(frozen=True)
class Counts:
    """Pass 2 of one partition, at the cut-off."""

    train: int
    train_positives: int
    test: int
    joined: int


@dataclass(frozen=True)
class DesignTask:
    """Pass 3's instructions for one partition: the cut-off, the global sampling decisions and
    the partition's share of the drift reference (``ranks`` among its joined members, and the
    channel codes of its reference rows)."""

    cut: pd.Timestamp
    censor_labels: bool
    rate: float | None
    share: float | None
    ranks: np.ndarray
    channels: np.ndarray
    plan: ReferencePlan | None
    coupons: bool
    train: bool = True


@dataclass
class Block:
    """Pass 3's result for one partition."""

    train: pd.DataFrame
    X_train: np.ndarray
    test: pd.DataFrame
    X_test: np.ndarray
    X_reference: np.ndarray
    coupons: CouponLines | None


def partition_rows(data_dir: str, fingerprint: str, lo: int, hi: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The partition's members rows, labelled exposures (``m`` counted from the data set's first
    member) and redemptions, read from the data directory on the worker."""
    from offerdata.loader import member_rows, read_sent_exposures
    from offerdata.tables import read_table

    catalog = worker_catalog(data_dir, fingerprint)
    members = member_rows(data_dir, lo, hi)
    ids = members["member_id"].astype(str).tolist()
    exposures = read_sent_exposures(data_dir, ["member_id", "offer_id", "exposed_at", "channel"], member_ids=ids,
                                    positions=True)
    redemptions = read_table(data_dir, "redemptions", columns=["member_id", "offer_id", "redeemed_at"], member_ids=ids)
    offers = read_table(data_dir, "offers", columns=["offer_id", "campaign_id", "starts_at", "ends_at"])
    index = pd.Index(np.asarray(ids, dtype=object))

    def member_index(values: pd.Series) -> np.ndarray:
        found = index.get_indexer(pd.Index(np.asarray(values, dtype=object)))
        return np.where(found >= 0, found + lo, -1).astype(np.int64)

    return members, labelled_rows(exposures, offers, redemptions, member_index, catalog), redemptions


def survey_partition(data_dir: str, fingerprint: str, lo: int, hi: int) -> Survey:
    """Pass 1 on a worker (see the module docstring)."""
    catalog = worker_catalog(data_dir, fingerprint)
    _, rows, redemptions = partition_rows(data_dir, fingerprint, lo, hi)
    times = rows["exposed_at"]
    red = Redemptions(to_seconds(redemptions["redeemed_at"]),
                      catalog.offer_index(redemptions["offer_id"].astype(str)).astype(np.int32))
    return Survey(len(rows), day_counts(exposure_days(times)), times.min() if len(rows) else None,
                  times.max() if len(rows) else None, channel_counts(rows["ch"].to_numpy()), red)


def count_partition(data_dir: str, fingerprint: str, lo: int, hi: int, cut: pd.Timestamp,
                    censor_labels: bool) -> Counts:
    """Pass 2 on a worker: rows on each side of ``cut`` and members joined by then."""
    members, rows, _ = partition_rows(data_dir, fingerprint, lo, hi)
    train, test = split_rows(rows, cut, censor_labels)
    joined = to_seconds(members["joined_at"]) <= moment_seconds(cut)
    return Counts(len(train), int(train["label"].sum()), len(test), int(joined.sum()))


def design_partition(data_dir: str, fingerprint: str, lo: int, hi: int, task: DesignTask, program: Any) -> Block:
    """Pass 3 on a worker: the partition's sampled rows and features, read from its own history."""
    catalog = worker_catalog(data_dir, fingerprint)
    members, rows, _ = partition_rows(data_dir, fingerprint, lo, hi)
    train, test = split_rows(rows, task.cut, task.censor_labels)
    train, test = apply_training_rate(train, task.rate), apply_test_share(test, task.share)
    if not task.train:
        train = train.iloc[0:0]
    history = loader.load_member_range(data_dir, catalog, lo, hi)

    def features(frame: pd.DataFrame) -> np.ndarray:
        if frame.empty:
            return empty_features(0)
        return compute_features(history, catalog, frame["m"].to_numpy() - lo, frame["o"].to_numpy(),
                                frame["as_of"].to_numpy(), frame["ch"].to_numpy(), program)

    X_reference = empty_features(0)
    if task.plan is not None and len(task.ranks):
        joined = np.flatnonzero(to_seconds(members["joined_at"]) <= task.plan.at)
        X_reference = features(task.plan.rows(joined[task.ranks] + lo, task.channels))
    coupons = CouponLines.of_history(history, lo) if task.coupons else None
    return Block(train, features(train), test, features(test), X_reference, coupons)


def cluster_design(client: Any, data_dir: str | os.PathLike[str], train_end: str | pd.Timestamp | None,
                   censor_labels: bool, program: Any, progress: bool = False, with_training: bool = True) -> Design:
    """:func:`training.design.design_from_dataset`'s design, built on the cluster ``client`` is connected to.

    ``with_training=False`` (``offers evaluate``): only the test rows, their features and the redemptions;
    no training rows, drift reference or coupon lines are computed or returned.
    """
    from offerdata.loader import load_catalog
    from offerdata.validate import require_valid

    started = time.perf_counter()
    require_valid(data_dir)
    path = str(Path(data_dir).resolve())
    catalog, fingerprint = load_catalog(path), data_fingerprint(path)
    n_members, size = loader.member_count(path), PARTITION_MEMBERS
    bounds = [(lo, min(lo + size, n_members)) for lo in range(0, n_members, size)]
    surveys: list[Survey] = _run(client, "survey", survey_partition, path, fingerprint, bounds, (), progress)
    seen = [s for s in surveys if s.rows]
    if not seen:
        raise TrainingError(f"no exposures in {data_dir}: nothing to train on")
    first = min(s.first for s in seen if s.first is not None)
    last = max(s.last for s in seen if s.last is not None)
    cut = cut_from_days(pd.concat([s.days for s in seen])) if train_end is None else pd.Timestamp(train_end)
    check_cut(cut, first, last)
    counts: list[Counts] = _run(client, "count", count_partition, path, fingerprint, bounds,
                                (cut, censor_labels), progress)
    n_train, n_test = sum(c.train for c in counts), sum(c.test for c in counts)
    positives = sum(c.train_positives for c in counts)
    check_positives(positives, cut)
    rate, share = training_rate(n_train, positives), test_share(n_test)
    joined = np.array([c.joined for c in counts], dtype=np.int64)
    plan = reference_plan(catalog, cut, int(joined.sum()), np.sum([s.channels for s in surveys], axis=0)) \
        if with_training else None
    loaded = time.perf_counter()
    tasks = _design_tasks(cut, censor_labels, rate, share, plan, joined, coupons=with_training and rate is None,
                          train=with_training)
    blocks: list[Block] = _run(client, "design", design_partition, path, fingerprint, bounds, (), progress,
                               per_task=[(t, program) for t in tasks])
    parts = {name: [getattr(b, name) for b in blocks] for name in ("train", "X_train", "test", "X_test")}
    X_reference = np.concatenate([b.X_reference for b in blocks]) if plan is not None else None
    coupons = CouponLines.concat([b.coupons for b in blocks if b.coupons is not None]) \
        if with_training and rate is None else None
    blocks.clear()  # from here each part is referenced once, so _assemble can let it go once placed
    train, X_train = _assemble(parts["train"], parts["X_train"])
    test, X_test = _assemble(parts["test"], parts["X_test"])
    parts.clear()
    release_free_memory()
    timings = {"load": loaded - started, "features": time.perf_counter() - loaded}
    return Design(catalog, fingerprint, cut, pd.Timestamp(first), pd.Timestamp(last), train, test, X_train, X_test,
                  n_train, n_test, X_reference, Redemptions.concat([s.redemptions for s in surveys]), coupons, timings)


def _design_tasks(cut: pd.Timestamp, censor_labels: bool, rate: float | None, share: float | None,
                  plan: ReferencePlan | None, joined: np.ndarray, coupons: bool, train: bool) -> list[DesignTask]:
    """One task per partition; the reference's global member ranks cut into each partition's own."""
    offsets = np.concatenate([[0], np.cumsum(joined)])
    ranks = plan.ranks if plan is not None else np.zeros(0, dtype=np.int64)
    width = len(plan.offers) if plan is not None else 0
    tasks = []
    for p in range(len(joined)):
        lo, hi = np.searchsorted(ranks, offsets[p]), np.searchsorted(ranks, offsets[p + 1])
        channels = plan.channels[lo * width:hi * width] if plan is not None else np.zeros(0, dtype=np.int64)
        tasks.append(DesignTask(cut, censor_labels, rate, share, ranks[lo:hi] - offsets[p], channels, plan, coupons,
                                train))
    return tasks


def _assemble(frames: list[pd.DataFrame], blocks: list[np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
    """The partitions' rows in the in-process order (exposure time, then position in the exposures
    file), without their ``file_row``, and their feature blocks moved along.

    Both lists are emptied as they are consumed: the caller hands over its only references, so
    the partitions' copies are freed while the assembled ones fill, instead of both being held
    to the end (about 1.8 GB at 2M + 2M sampled rows).
    """
    rows = pd.concat(frames, ignore_index=True)
    frames.clear()
    order = np.lexsort((rows["file_row"].to_numpy(), rows["exposed_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)))
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    out = empty_features(len(rows))
    start = 0
    for i in range(len(blocks)):
        block, blocks[i] = blocks[i], empty_features(0)  # let each block go once it is placed
        out[position[start:start + len(block)]] = block
        start += len(block)
    return rows.iloc[order].drop(columns="file_row").reset_index(drop=True), out


def _run(client: Any, name: str, fn: Any, data_dir: str, fingerprint: str, bounds: list[tuple[int, int]],
         args: tuple[Any, ...], progress: bool, per_task: list[tuple[Any, ...]] | None = None) -> list[Any]:
    """``fn(data_dir, fingerprint, lo, hi, *args, *per_task[i])`` for every partition, results in partition order."""
    futures = {}
    for i, (lo, hi) in enumerate(bounds):
        extra = per_task[i] if per_task is not None else ()
        future = client.submit(fn, data_dir, fingerprint, lo, hi, *args, *extra, pure=False,
                               key=f"offers-{name}-{lo}-{os.urandom(4).hex()}")
        futures[future] = i
    results: list[Any] = [None] * len(bounds)
    for future, result in as_finished(list(futures), f"design: {name}", progress):
        results[futures.pop(future)] = result
    return results
