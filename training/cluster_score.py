"""``offers score`` on a Dask cluster, without the client ever loading a history.

``offers score --workers N`` or ``--scheduler ADDRESS`` with a propensity model. The client
reads the catalog, the members table's ``member_id`` column and the pairs (when ``--pairs`` is
given); everything that grows with members' histories is read and scored on the workers, one
member partition (``PARTITION_MEMBERS`` consecutive rows of the members table) per task:

* **Plan (client).** Each pair's member is matched to its row of the members table; pairs are
  grouped by partition, and members outside the table (cold starts, scored with an empty history
  as in-process) form one more task. Without ``--pairs`` a task carries nothing but its bounds:
  its worker scores each of its members against every offer of the offers table, at the
  directory's decision moment, so the client never builds the members x offers frame either.
* **Score (worker).** A worker reads its partition's history from the Parquet directory
  (:func:`training.distributed.partition_history`), loads the model once per process (after the
  process started: LightGBM is not fork-safe), and computes features and propensities in blocks
  of whole members of about ``BLOCK_ROWS`` rows, so its memory is set by the partition and the
  block, not by how many offers there are. It returns one float64 array: the propensities of its rows, in order.
* **Write (client).** An ``--out`` ending in ``.parquet`` or ``.csv`` is one file holding every
  row in the in-process order (the pairs file's order; or members table order, then offers
  table order), written under a temporary name. Any other ``--out`` is a directory of
  ``part-NNNNN.parquet`` files, one per task, renamed into place only when all are written
  (:func:`offerdata.tables.staged_directory`); the client then holds one part at a time.

The propensities are those of :func:`training.score.score_pairs` in-process: the same features
(``tests/test_dask_features.py`` proves their equality) through the same model, compiled when
the run scores at least :data:`training.score.COMPILE_ROWS` rows, as in-process.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.features import channel_codes, compute_features, to_seconds
from models.model import PropensityModel
from offerdata import loader
from offerdata.tables import read_table, staged_directory
from training.distributed import as_finished, partition_history, worker_catalog
from training.errors import TrainingError

#: Feature rows computed and scored at once on a worker (83 float32 features: about 33 MB).
BLOCK_ROWS = 100_000


@dataclass(frozen=True)
class ScoreJob:
    """What every task of one run shares (paths and small arrays, not data)."""

    data_dir: str
    fingerprint: str
    model_dir: str
    compile: bool                  # compile the trees (the run scores at least COMPILE_ROWS rows)
    offers: np.ndarray             # every-offer runs: catalog indices of the offers table's offers
    as_of: int                     # every-offer runs: the decision moment, in seconds
    block_rows: int                # rows a worker scores at once (BLOCK_ROWS when the run started)


@dataclass
class ScoreTask:
    """One task: members-table rows ``lo``..``hi``-1 (``member_ids``; beyond them, cold-start ids) and the rows to score.

    ``m`` (member position within the task), ``o``, ``as_of`` and ``ch`` are None in an
    every-offer run: the worker scores each member against ``ScoreJob.offers``.
    """

    part: int
    lo: int
    hi: int
    member_ids: np.ndarray
    m: np.ndarray | None = None
    o: np.ndarray | None = None
    as_of: np.ndarray | None = None
    ch: np.ndarray | None = None


@functools.lru_cache(maxsize=2)
def worker_model(model_dir: str, compile_trees: bool) -> PropensityModel:
    """The propensity model of ``model_dir``, loaded once per worker process (and compiled when asked)."""
    from models.compiled import default_cache_dir

    model = PropensityModel.load(Path(model_dir))
    if compile_trees:
        model.try_compile(default_cache_dir())
    return model


def score_partition(job: ScoreJob, task: ScoreTask) -> np.ndarray:
    """The propensities of one task's rows, in its order, computed on a worker from the data directory."""
    catalog = worker_catalog(job.data_dir, job.fingerprint)
    model = worker_model(job.model_dir, job.compile)
    hist = partition_history(job.data_dir, catalog, task.lo, task.hi, task.member_ids)
    m, o, as_of, ch = _rows(job, task)
    out = np.empty(len(m), dtype=np.float64)
    for block in member_blocks(m, job.block_rows):
        X = compute_features(hist, catalog, m[block], o[block], as_of[block], ch[block], model.program)
        out[block] = model.predict(X)
    return out


def member_blocks(m: np.ndarray, rows: int) -> list[np.ndarray]:
    """Row positions in blocks of whole members, about ``rows`` rows each (one member may exceed it).

    A member's rows must share a block: the group features (rank and size within a member's
    request for a campaign at one moment) read every row of the group in the same call.
    """
    if len(m) == 0:
        return []
    order = np.argsort(m, kind="stable")
    sorted_m = m[order]
    starts = np.flatnonzero(np.r_[True, sorted_m[1:] != sorted_m[:-1]])
    blocks, begin = [], 0
    for start in [*starts[1:].tolist(), len(m)]:
        if start - begin >= rows or start == len(m):
            blocks.append(np.sort(order[begin:start]))
            begin = start
    return blocks


def _rows(job: ScoreJob, task: ScoreTask) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A task's (member position, offer, as_of, channel) rows: its pairs, or its members x every offer."""
    if task.m is not None and task.o is not None and task.as_of is not None and task.ch is not None:
        return task.m, task.o, task.as_of, task.ch
    n, k = len(task.member_ids), len(job.offers)
    return (np.repeat(np.arange(n, dtype=np.int64), k), np.tile(job.offers, n),
            np.full(n * k, job.as_of, dtype=np.int64), np.repeat(channel_codes(pd.Series(["app"])), n * k))


def plan_pairs(pairs: pd.DataFrame, table_ids: pd.Index, offer_index: np.ndarray,
               partition_members: int) -> tuple[list[ScoreTask], list[np.ndarray]]:
    """Tasks for given pairs, and for each the positions of its pairs in ``pairs`` (kept in file order)."""
    row = table_ids.get_indexer(pd.Index(pairs["member_id"].to_numpy(), dtype=object))
    channel = pairs["channel"] if "channel" in pairs else pd.Series(["app"] * len(pairs))
    ch, as_of = channel_codes(channel), to_seconds(pairs["as_of"])
    part = np.where(row >= 0, row // partition_members, -1)
    tasks: list[ScoreTask] = []
    positions: list[np.ndarray] = []
    for p in np.unique(part[part >= 0]).tolist():
        sel = np.flatnonzero(part == p)
        lo = int(p) * partition_members
        hi = min(lo + partition_members, len(table_ids))
        tasks.append(ScoreTask(len(tasks), lo, hi, np.asarray(table_ids[lo:hi], dtype=object),
                               row[sel] - lo, offer_index[sel], as_of[sel], ch[sel]))
        positions.append(sel)
    cold = np.flatnonzero(part < 0)
    if len(cold):
        ids = pairs["member_id"].to_numpy()[cold]
        uniques, m = np.unique(ids.astype(str), return_inverse=True)
        n = len(table_ids)
        tasks.append(ScoreTask(len(tasks), n, n, np.asarray(uniques, dtype=object), m.astype(np.int64),
                               offer_index[cold], as_of[cold], ch[cold]))
        positions.append(cold)
    return tasks, positions


def cluster_score(client: Any, data_dir: str | os.PathLike[str], registry: str | os.PathLike[str], version: str,
                  pairs: pd.DataFrame | None, out: str | os.PathLike[str], progress: bool = False) -> tuple[int, str]:
    """Score ``pairs`` (None: every member x every offer at the directory's decision moment) with
    the model ``version`` names on the cluster ``client`` is connected to, and write ``out``
    (module docstring, "Write"). Returns the rows written and the model version.

    An uplift model reads members' attributes, not histories, so it scores in-process
    (:func:`training.score.score_uplift_pairs`) and writes one file.
    """
    from models.registry import Registry
    from models.uplift import is_uplift
    from offerdata.directory import decision_moment
    from offerdata.loader import load_catalog
    from offerdata.validate import require_valid
    from training.dataset import fingerprint as data_fingerprint
    from training.score import COMPILE_ROWS, all_pairs, score_uplift_pairs, write_frame

    model_dir = Registry(registry).path(version)
    if is_uplift(model_dir):
        scored = score_uplift_pairs(data_dir, model_dir, pairs if pairs is not None else all_pairs(data_dir))
        write_frame(scored, out)
        return len(scored), str(scored["model_version"].iloc[0]) if len(scored) else version
    require_valid(data_dir)
    path = str(Path(data_dir).resolve())
    model = PropensityModel.load(model_dir)  # refuse a bad artifact here, before any task runs
    catalog = load_catalog(path)
    table_ids = pd.Index(read_table(path, "members", columns=["member_id"])["member_id"].astype(str), dtype=object)
    size = loader.PARTITION_MEMBERS
    if pairs is None:
        moment = decision_moment(path)
        if moment is None:
            raise TrainingError(f"{data_dir} has no decision_moment.txt: pass --pairs with an as_of per pair")
        offer_ids = read_table(path, "offers", columns=["offer_id"])["offer_id"].astype(str).to_numpy()
        offers = catalog.offer_index(pd.Series(offer_ids))
        as_of = pd.Timestamp(moment).tz_localize(None)
        tasks = [ScoreTask(i, lo, min(lo + size, len(table_ids)), np.asarray(table_ids[lo:lo + size], dtype=object))
                 for i, lo in enumerate(range(0, len(table_ids), size))]
        total = len(table_ids) * len(offer_ids)
        positions: list[np.ndarray] = []
    else:
        offers = catalog.offer_index(pairs["offer_id"])
        if (offers < 0).any():
            unknown = pairs.loc[offers < 0, "offer_id"].unique()
            raise TrainingError(f"{len(unknown)} offer id(s) in the pairs are not in the catalog "
                                f"(e.g. {', '.join(map(repr, unknown[:3]))})")
        tasks, positions = plan_pairs(pairs, table_ids, offers, size)
        total = len(pairs)
    job = ScoreJob(path, data_fingerprint(path), str(model_dir.resolve()), total >= COMPILE_ROWS,
                   offers if pairs is None else np.zeros(0, dtype=np.int64),
                   int(to_seconds(pd.Series([as_of]))[0]) if pairs is None else 0, BLOCK_ROWS)
    run_id = uuid.uuid4().hex[:12]
    futures = [client.submit(score_partition, job, task, pure=False, key=f"offers-score-{run_id}-{task.part}")
               for task in tasks]

    def frame_of(task: ScoreTask, scores: np.ndarray) -> pd.DataFrame:
        """A task's rows with their scores: its pairs, or its members x every offer."""
        if pairs is None:
            n, k = len(task.member_ids), len(offer_ids)
            frame = pd.DataFrame({"member_id": np.repeat(task.member_ids, k), "offer_id": np.tile(offer_ids, n),
                                  "as_of": np.full(n * k, np.datetime64(as_of.to_datetime64(), "ns"))})
        else:
            frame = pairs.iloc[positions[task.part]].reset_index(drop=True)
        frame["propensity"] = scores
        frame["model_version"] = model.version
        return frame

    target = Path(out)
    try:
        if target.suffix.lower() not in (".parquet", ".csv"):
            return _write_parts(target, tasks, futures, frame_of, run_id, progress), model.version
        if pairs is None:
            frames = [frame_of(t, scores) for t, scores in zip(tasks, _in_task_order(futures, progress), strict=True)]
            frame = (pd.concat(frames, ignore_index=True) if frames
                     else frame_of(ScoreTask(0, 0, 0, np.zeros(0, dtype=object)), np.zeros(0)))
        else:
            frame = pairs.copy()
            frame["propensity"] = np.nan
            column = frame.columns.get_loc("propensity")
            for t, scores in zip(tasks, _in_task_order(futures, progress), strict=True):
                frame.iloc[positions[t.part], column] = scores
            frame["model_version"] = model.version
        write_frame(frame, target)
        return len(frame), model.version
    finally:
        client.cancel(futures)


def _finished(futures: list[Any], progress: bool) -> Iterator[tuple[int, np.ndarray]]:
    """(task number, its scores) as tasks finish (the number is the last part of the task's key)."""
    for future, scores in as_finished(futures, "score (dask)", progress):
        yield int(str(future.key).rsplit("-", 1)[1]), scores


def _in_task_order(futures: list[Any], progress: bool) -> list[np.ndarray]:
    """Every task's scores, in task order (the one-file output keeps the in-process order)."""
    scores: list[np.ndarray] = [np.zeros(0)] * len(futures)
    for part, block in _finished(futures, progress):
        scores[part] = block
    return scores


def _write_parts(target: Path, tasks: list[ScoreTask], futures: list[Any], frame_of: Any, run_id: str,
                 progress: bool) -> int:
    """Each task's scored rows as ``part-NNNNN.parquet`` of a directory renamed to ``target`` when all are written."""
    if target.exists() and not target.is_dir():
        raise TrainingError(f"--out {target} is a file: a partitioned output is a directory "
                            "(end --out in .parquet or .csv for one file)")
    rows = 0
    with staged_directory(target, run_id) as tmp:
        for part, scores in _finished(futures, progress):
            frame = frame_of(tasks[part], scores)
            frame.to_parquet(tmp / f"part-{part:05d}.parquet", index=False)
            rows += len(frame)
    return rows
