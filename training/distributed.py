"""Offline work on a ``dask.distributed`` cluster: point-in-time features partitioned by member.

``offers train`` and ``offers evaluate`` take ``--scheduler ADDRESS`` (or ``OFFERS_DASK_SCHEDULER``)
to use a running Dask cluster, or ``--workers N`` for a :class:`distributed.LocalCluster` of N
single-threaded worker processes on this machine. Without either, nothing here runs and dask is
never imported: the commands compute in-process, as they always did.

What runs on the workers is the feature matrix, the costly part of training
(:func:`training.train.feature_matrix`). The rows are cut into the same member partitions the
in-process path uses (``PARTITION_MEMBERS`` consecutive rows of the members table), and each
partition is one task:

* the task carries only the partition's rows (member, offer, as_of, channel as small integer
  arrays) and its member ids; the worker reads the partition's history straight from the
  Parquet data directory (:func:`offerdata.loader.load_member_range`, which reads only the row
  groups holding those members on a table clustered by member) and the catalog once per
  worker process;
* it computes the features with :func:`models.features.compute_features` on that History,
  which is equal to the in-process partition for everything the features read, so the
  matrix is identical bit for bit (``tests/test_dask_features.py``);
* it returns the partition's float32 block, which the client writes into its rows.

A worker holds one partition's history and rows at a time, so its memory is set by
``PARTITION_MEMBERS``, not by the number of members. The workers must see the data directory
at the same path as the client (a shared file system); a worker that sees other data
(another fingerprint, other members) fails the task with :class:`ClusterError`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from runtime.distributed import (  # noqa: F401 - re-exported: the client lives in runtime
    CONNECT_TIMEOUT_ENV,
    DEFAULT_CONNECT_TIMEOUT_S,
    SCHEDULER_ENV,
    ClusterError,
    as_finished,
    dask_client,
    scheduler_address,
)

if TYPE_CHECKING:
    from models.features import FeatureVocabulary, History
    from models.program import Program
    from training.dataset import Dataset

def cluster_feature_matrix(client: Any, ds: Dataset, rows: pd.DataFrame, program: Program | None,
                           partition_members: int, progress: bool = False) -> np.ndarray:
    """:func:`training.train.feature_matrix` computed on the cluster ``client`` is connected to.

    One task per member partition (``partition_members`` consecutive member indices, the
    in-process partitions); each worker loads its partition from ``ds.data_dir``.
    """
    from models.features import FEATURE_NAMES

    out = np.empty((len(rows), len(FEATURE_NAMES)), dtype=np.float32)
    if rows.empty:
        return out
    data_dir = str(Path(ds.data_dir).resolve())
    m = rows["m"].to_numpy()
    part = m // partition_members
    futures = {}
    for p in np.unique(part):
        sel = np.flatnonzero(part == p)
        lo = int(p) * partition_members
        hi = min(lo + partition_members, ds.history.n_members)
        task = PartitionTask(lo=lo, hi=hi, member_ids=np.asarray(ds.history.member_ids[lo:hi], dtype=object),
                             m=m[sel] - lo, o=rows["o"].to_numpy()[sel], as_of=rows["as_of"].to_numpy()[sel],
                             ch=rows["ch"].to_numpy()[sel])
        future = client.submit(partition_features, data_dir, ds.fingerprint, task, program, pure=False,
                               key=f"offers-features-{lo}-{os.urandom(4).hex()}")
        futures[future] = sel
    for future, block in as_finished(list(futures), "features (dask)", progress):
        out[futures.pop(future)] = block
    return out


class PartitionTask:
    """One partition's work: member rows ``lo``..``hi``-1 and the feature rows that fall in it."""

    def __init__(self, lo: int, hi: int, member_ids: np.ndarray, m: np.ndarray, o: np.ndarray,
                 as_of: np.ndarray, ch: np.ndarray):
        self.lo, self.hi, self.member_ids = lo, hi, member_ids
        self.m, self.o, self.as_of, self.ch = m, o, as_of, ch


def partition_features(data_dir: str, fingerprint: str, task: PartitionTask, program: Program | None) -> np.ndarray:
    """The feature block of one partition, computed on a worker from the data directory.

    Members the client holds beyond the members table (cold starts added by ``offers score``)
    get empty histories, as :meth:`models.features.History.with_members` gives them in-process.
    """
    from models.features import compute_features

    catalog = worker_catalog(data_dir, fingerprint)
    hist = partition_history(data_dir, catalog, task.lo, task.hi, task.member_ids)
    return compute_features(hist, catalog, task.m, task.o, task.as_of, task.ch, program)


def partition_history(data_dir: str, catalog: FeatureVocabulary, lo: int, hi: int, member_ids: np.ndarray) -> History:
    """Members ``lo``..``hi``-1 of the members table read on a worker, checked against the
    ``member_ids`` the client expects there, plus empty histories for the ids beyond them
    (cold-start members the client holds beyond the members table)."""
    from offerdata.loader import load_member_range

    hist = load_member_range(data_dir, catalog, lo, hi)
    loaded = hist.n_members
    if not np.array_equal(np.asarray(hist.member_ids, dtype=object), member_ids[:loaded]):
        raise ClusterError(f"a Dask worker reads other members from {data_dir} (rows {lo} to {hi - 1} "
                           "of its members table differ from the client's)")
    if loaded < len(member_ids):
        hist = hist.with_members(member_ids[loaded:])
    return hist


@functools.lru_cache(maxsize=4)
def _catalog(data_dir: str, fingerprint: str) -> FeatureVocabulary:
    from offerdata.loader import load_catalog

    return load_catalog(data_dir)


def worker_catalog(data_dir: str, fingerprint: str) -> FeatureVocabulary:
    """The data directory's catalog, loaded once per worker process and data version.

    Checks the worker sees the data the client loaded (:func:`training.dataset.fingerprint`);
    otherwise the features would silently come from other data.
    """
    from training.dataset import fingerprint as data_fingerprint

    seen = data_fingerprint(data_dir)
    if seen != fingerprint:
        raise ClusterError(f"a Dask worker sees other data at {data_dir} (fingerprint {seen}, "
                           f"the client loaded {fingerprint}); workers need the client's data directory")
    return _catalog(data_dir, fingerprint)
