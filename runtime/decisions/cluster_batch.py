"""``offers batch`` on a Dask cluster: one task per member partition, budgets reserved in Redis.

The client plans and writes; the workers decide:

* **Plan (client).** The audience's ids are matched to rows of the members table (only its
  ``member_id`` column is read) and grouped by partition, ``PARTITION_MEMBERS`` consecutive rows
  (:data:`offerdata.loader.PARTITION_MEMBERS`, the partitions of training's features). A task
  carries its members' ids, their positions in the audience file and how to chunk them; no
  history passes through the client.
* **Decide (worker).** A worker loads its partition's histories and profiles straight from the
  Parquet data directory (:func:`offerdata.loader.load_member_range`), materializes them into
  its own in-process store, loads the model itself (once per worker process, after the
  process started: LightGBM is not fork-safe) and runs every chunk through
  :meth:`~runtime.decisions.pipeline.DecisionPipeline.decide_many`, the one decision path,
  exactly as the in-process batch (:mod:`runtime.decisions.audience`) does. It returns its
  partition's rows.
* **Write (client).** Rows go to a directory of Parquet part files (``--out`` without a
  ``.parquet``/``.csv`` suffix: one ``part-NNNNN.parquet`` per task, as tasks finish) or to the
  single file the in-process batch writes (rows grouped by partition). Either is written
  under a temporary name and renamed into place when complete, so a failure leaves nothing.

**Same decisions.** Member ``m`` explores with ``seed_for(seed, m)`` and decision ``i`` of the
file is ``batch-<run>-<i>``, as in-process. A decision depends on its chunk only through the
members the store knows nothing of (cold starts: coupon offers leave the candidates when a
whole chunk is unknown), so the plan keeps that: an unknown member joins the worker chunk of
the first known member of its in-process chunk of :data:`~runtime.decisions.audience.CHUNK`,
and an in-process chunk with no known member is decided as that very chunk. Without a binding
budget the rows are those of the in-process batch (``tests/test_dask_batch.py``).

**Budgets across partitions.** In-process, budgets are counted in the batch's own memory,
from zero, in file order. On a cluster the partitions run at once, so budget counters must be
shared: every worker reserves them in Redis (``REDIS_URL``) through :class:`SharedBudgetStore`,
whose atomic budget scripts let a budget of K issue at most K across the whole audience.
The counters live under a key prefix of the run's own (``<prefix>b<run>``), so a batch counts from
zero as in-process and never spends the live service's budgets; they carry TTLs and are
deleted at the end. A program with budgets and no Redis is refused (:class:`AudienceError`).
Which members get a binding budget depends on the order partitions run in, not on file order.
Member caps and contact caps are one member's, so a partition's store holds them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.registry import Registry
from models.uplift import load_serving_model
from offerdata import loader
from offerdata.tables import read_table, staged_directory
from offerdata.validate import require_valid
from runtime.catalog.changelog import CatalogLog, ChangeRecord
from runtime.decisions.audience import (
    CHUNK,
    SCHEMA,
    AudienceError,
    AudienceSummary,
    AudienceWriter,
    read_members,
)
from runtime.decisions.campaign_limits import budget_refs
from runtime.decisions.cluster_worker import decide_partition, redis_settings
from runtime.decisions.outcome_json import rfc3339
from runtime.decisions.setup import DecisionSetup
from runtime.settings import Settings

Progress = Callable[[int], None]


@dataclass(frozen=True)
class BatchJob:
    """What every task of one run shares (small and picklable: paths, not data)."""

    data_dir: str
    program: str | None
    as_of: str                       # the client's decision moment, pinned (an ISO timestamp)
    fingerprint: str                 # the catalog the client loaded; a worker seeing another fails
    model_dir: str                   # the resolved version's directory (an alias cannot move mid-run)
    channel: str
    n: int | None
    seed: int
    run_id: str
    changes: tuple[ChangeRecord, ...] = ()
    decision_log: str | None = None
    #: Redis settings for the shared budget counters (None: the program has no budget)
    budget_store: dict[str, Any] | None = None


@dataclass
class BatchTask:
    """One task: a partition's audience members (or a chunk of unknown ones) and their chunks."""

    part: int                        # its part file's number
    lo: int | None                   # members-table rows lo..hi-1 to load (None: nobody known)
    hi: int | None
    chunks: list[np.ndarray] = field(default_factory=list)  # audience positions, one array per call
    ids: dict[int, str] = field(default_factory=dict)       # audience position -> member id
    expected: list[str] = field(default_factory=list)       # its known members (the worker checks its data)


def plan(wanted: list[str], table_ids: pd.Index, partition_members: int,
         chunk: int = CHUNK) -> list[BatchTask]:
    """Group the audience into tasks by partition, chunked so every decision sees what it would
    in-process (module docstring, "Same decisions")."""
    row = table_ids.get_indexer(pd.Index(wanted, dtype=object)) if wanted else np.zeros(0, dtype=np.int64)
    known = row >= 0
    pos = np.arange(len(wanted))
    tasks: dict[int, BatchTask] = {}
    cold: list[np.ndarray] = []
    for p in np.unique(row[known] // partition_members).tolist():
        lo = int(p) * partition_members
        tasks[int(p)] = BatchTask(part=len(tasks), lo=lo, hi=min(lo + partition_members, len(table_ids)))
    members_of: dict[int, list[list[int]]] = {p: [] for p in tasks}
    where: dict[int, tuple[int, int]] = {}            # anchor position -> (partition, its chunk)
    for i in pos[known].tolist():
        p = int(row[i]) // partition_members
        chunks = members_of[p]
        if not chunks or len(chunks[-1]) >= chunk:  # known members only, so far
            chunks.append([])
        chunks[-1].append(i)
        where[i] = (p, len(chunks) - 1)
    for lo in range(0, len(wanted), chunk):
        block = pos[lo:lo + chunk]
        if not known[block].any():
            cold.append(block)
            continue
        anchor = int(block[known[block]][0])
        p, c = where[anchor]
        members_of[p][c].extend(block[~known[block]].tolist())
    for p, task in tasks.items():
        task.chunks = [np.sort(np.asarray(c, dtype=np.int64)) for c in members_of[p]]
    out = list(tasks.values())
    per_task = max(1, partition_members // chunk)
    for k in range(0, len(cold), per_task):
        out.append(BatchTask(part=len(out), lo=None, hi=None, chunks=cold[k:k + per_task]))
    for task in out:
        task.ids = {i: wanted[i] for c in task.chunks for i in c.tolist()}
        task.expected = [m for i, m in task.ids.items() if known[i]]
    return out


def run_on_cluster(client: Any, data_dir: str | os.PathLike[str], registry: str | os.PathLike[str],
                   members_file: str | os.PathLike[str], out: str | os.PathLike[str],
                   settings: Settings, program: str | os.PathLike[str] | None = None, as_of: str = "wall",
                   channel: str = "email", n: int | None = None, seed: int = 0, version: str = "champion",
                   progress: Progress | None = None, decision_log: str | os.PathLike[str] | None = None,
                   catalog_dir: str | os.PathLike[str] | None = None,
                   partition_members: int | None = None) -> AudienceSummary:
    """:func:`runtime.decisions.audience.run` on the Dask cluster ``client`` is connected to.

    ``partition_members`` defaults to :data:`offerdata.loader.PARTITION_MEMBERS`.

    ``settings`` give the Redis that holds the run's budget counters (``REDIS_URL``); needed
    only when the program has budgets.
    """
    from distributed import as_completed

    from runtime.catalog.live import apply_changes

    require_valid(data_dir)
    target = Path(out)
    directory = target.suffix.lower() not in (".parquet", ".csv")
    if directory and target.exists() and not target.is_dir():
        raise AudienceError(f"--out {target} is a file: a partitioned output is a directory "
                            "(end --out in .parquet or .csv for one file)")
    setup = DecisionSetup.load(data_dir, program, as_of)
    changes: tuple[ChangeRecord, ...] = ()
    if catalog_dir is not None:
        changes = tuple(CatalogLog(catalog_dir).read())
        live = apply_changes(setup.catalog, list(changes))
        setup = setup.with_catalog(live.catalog, live.withheld, live.version)
    model_dir = Registry(registry).path(version)
    model = load_serving_model(model_dir)  # refuse a bad model here, with the in-process path's errors
    when = setup.clock.now()
    run_id = uuid.uuid4().hex[:12]
    budgets = None
    if setup.catalog.budget_rules:
        if settings.redis_url is None:
            keys = ", ".join(r.key for r in setup.catalog.budget_rules[:5])
            raise AudienceError(f"the program has budgets ({keys}); on a Dask cluster their reservations are shared "
                                "through Redis: set REDIS_URL, or run offers batch without --scheduler/--workers")
        budgets = redis_settings(settings, redis_prefix=f"{settings.redis_prefix[:4]}b{run_id[:10]}",
                                 redis_timeout_ms=max(settings.redis_timeout_ms, 2000),
                                 redis_connect_timeout_ms=max(settings.redis_connect_timeout_ms, 2000))
    if decision_log is not None:
        from runtime.decisions.decision_log import KIND
        from runtime.events.log import EventLog

        EventLog(Path(decision_log), kind=KIND).check_writable()
    wanted = read_members(members_file)
    table_ids = pd.Index(read_table(data_dir, "members", columns=["member_id"])["member_id"].astype(str),
                         dtype=object)
    tasks = plan(wanted, table_ids, partition_members or loader.PARTITION_MEMBERS)
    unknown = int((table_ids.get_indexer(pd.Index(wanted, dtype=object)) < 0).sum()) if wanted else 0
    del table_ids
    job = BatchJob(data_dir=str(Path(data_dir).resolve()), program=None if program is None else str(Path(program).resolve()),
                   as_of=when.isoformat(), fingerprint=setup.fingerprint, model_dir=str(model_dir.resolve()),
                   channel=channel, n=n, seed=seed, run_id=run_id, changes=changes,
                   decision_log=None if decision_log is None else str(Path(decision_log).resolve()),
                   budget_store=budgets)
    futures = [client.submit(decide_partition, job, task, pure=False, key=f"offers-batch-{run_id}-{task.part}")
               for task in tasks]
    stamp = {"model_version": model.version, "as_of": rfc3339(when), "channel": channel}
    offers = 0
    try:
        if directory:
            offers = write_parts(target, run_id, as_completed(futures), stamp, progress)
        else:
            offers = _write_file(target, iter(futures), stamp, progress)
    finally:
        client.cancel(futures)
        if budgets is not None:
            _drop_counters(budgets, setup, when)
    return AudienceSummary(members=len(wanted), unknown=unknown, offers=offers, model_version=model.version,
                           as_of=rfc3339(when), out=target)


def _stamped(frame: pd.DataFrame, stamp: dict[str, str]) -> pd.DataFrame:
    """A task's rows with the run's model version, moment and channel, in the output's columns."""
    for name, value in stamp.items():
        frame[name] = value
    return frame[SCHEMA.names]


def _write_file(target: Path, futures: Iterator[Any], stamp: dict[str, str], progress: Progress | None) -> int:
    """Every task's rows into one Parquet or CSV file, in task order (the in-process writer)."""
    writer = AudienceWriter(target)
    offers = 0
    try:
        for future in futures:
            frame, members = future.result()
            writer.write(_stamped(frame, stamp))
            offers += len(frame)
            future.release()
            if progress is not None:
                progress(members)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return offers


def write_parts(target: Path, run_id: str, finished: Iterator[Any], stamp: dict[str, str],
                 progress: Progress | None) -> int:
    """Each task's rows as ``part-NNNNN.parquet`` of a directory renamed to ``target`` once every
    part is written (:func:`offerdata.tables.staged_directory`); a failure leaves no directory."""
    offers = 0
    with staged_directory(target, run_id) as tmp:
        for future in finished:
            frame, members = future.result()
            part = int(str(future.key).rsplit("-", 1)[1])
            table = pa.Table.from_pandas(_stamped(frame, stamp), schema=SCHEMA, preserve_index=False)
            pq.write_table(table, tmp / f"part-{part:05d}.parquet")
            offers += len(frame)
            future.release()
            if progress is not None:
                progress(members)
    return offers


def _drop_counters(budgets: dict[str, Any], setup: DecisionSetup, when: pd.Timestamp) -> None:
    """Delete the run's budget counters (best effort: they also expire with their TTL)."""
    from redis.exceptions import RedisError

    from runtime.settings import settings_for
    from runtime.stores import StoreUnavailable, build_store
    from runtime.stores.redis_store import RedisStore

    store = build_store(settings_for(**budgets))
    try:
        assert isinstance(store, RedisStore)
        keys = [store.keys.budget(*ref) for ref in budget_refs(setup.catalog, setup.moment(when).local)]
        if keys:
            store.client.delete(*keys)
    except (RedisError, StoreUnavailable):
        pass  # cleanup only: the counters expire with their TTL anyway
    finally:
        store.close()
