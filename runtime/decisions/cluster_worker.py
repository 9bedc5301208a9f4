"""What a Dask worker runs for ``offers batch`` and ``offers materialize`` (runtime.decisions.cluster_*).

Everything here runs inside a worker process. What a task needs besides its members (the
decision setup, the model, the Redis connection) is built on first use and kept for the
process's life, keyed by what identifies it, so a worker loads the model once and after its
process started (LightGBM is not fork-safe), and keeps one Redis connection pool.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.features import History
from runtime.distributed import ClusterError

if TYPE_CHECKING:
    from runtime.decisions.cluster_batch import BatchJob, BatchTask
    from runtime.decisions.decision_log import DecisionLog
    from runtime.decisions.setup import DecisionSetup
    from runtime.settings import Settings
    from runtime.stores import MemberProfile, Store

_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Any] = {}


def _cached(key: tuple[Any, ...], build: Any) -> Any:
    """``build()`` once per worker process for ``key`` (the process's lifetime cache)."""
    with _lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]


def worker_setup(data_dir: str, program: str | None, as_of: str, fingerprint: str,
                 changes: tuple[Any, ...] = ()) -> DecisionSetup:
    """The decision setup the client built, rebuilt here from the same paths, moment and live
    catalog changes; a worker that sees another catalog than the client fails the task."""
    def build() -> DecisionSetup:
        from runtime.catalog.live import apply_changes
        from runtime.decisions.setup import DecisionSetup

        setup = DecisionSetup.load(data_dir, program, as_of)
        if setup.fingerprint != fingerprint:
            raise ClusterError(f"a Dask worker sees another catalog at {data_dir} (fingerprint {setup.fingerprint}, "
                               f"the client's is {fingerprint}); workers need the client's data directory")
        if changes:
            live = apply_changes(setup.catalog, list(changes))
            setup = setup.with_catalog(live.catalog, live.withheld, live.version)
        return setup

    return _cached(("setup", data_dir, program, as_of, fingerprint, len(changes),
                    changes[-1].version if changes else None), build)


def worker_model(model_dir: str) -> Any:
    """The model of ``model_dir``, loaded (and its trees compiled) once per worker process."""
    def build() -> Any:
        from models.compiled import default_cache_dir
        from models.model import PropensityModel
        from models.uplift import load_serving_model

        model = load_serving_model(Path(model_dir))
        if isinstance(model, PropensityModel):
            model.try_compile(default_cache_dir())  # same scores either way; compiled trees are faster
        return model

    return _cached(("model", model_dir), build)


def redis_settings(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The client's Redis fields and TTLs as plain values for :func:`worker_redis` (no other
    setting, so no API key or console secret travels to the workers)."""
    values = {k: v for k, v in settings.model_dump().items()
              if k.startswith("redis_") or k.endswith("_ttl_seconds")}
    return {**values, **overrides}


def worker_redis(values: dict[str, Any]) -> Store:
    """A Redis store for ``values`` (settings fields), one per worker process: its own connections."""
    def build() -> Store:
        from runtime.settings import settings_for
        from runtime.stores import build_store

        return build_store(settings_for(**values))

    return _cached(("redis", tuple(sorted((k, repr(v)) for k, v in values.items()))), build)


def _decision_log(directory: str) -> DecisionLog:
    """This worker process's decision log writer for ``directory`` (its own segments: host and pid)."""
    def build() -> DecisionLog:
        from runtime.decisions.decision_log import KIND, DecisionLog
        from runtime.events.log import EventLog

        return DecisionLog(EventLog(Path(directory), kind=KIND))

    return _cached(("decision-log", directory), build)


def partition_members(setup: DecisionSetup, data_dir: str, lo: int, hi: int,
                      expected: list[str] | None = None) -> tuple[History, list[MemberProfile]]:
    """Members-table rows ``lo``..``hi``-1 with their histories and profiles, read from the data
    directory (only their row groups), with the stable basket codes the online store keeps.
    ``expected`` ids must all be among them (else the worker reads other data than the client)."""
    from offerdata.loader import load_member_range
    from runtime.decisions.materialize import profiles

    hist = load_member_range(data_dir, setup.features, lo, hi, stable_baskets=True)
    if expected is not None:
        missing = set(expected) - set(np.asarray(hist.member_ids, dtype=object).astype(str).tolist())
        if missing:
            raise ClusterError(f"a Dask worker reads other members from {data_dir}: rows {lo} to {hi - 1} of its "
                               f"members table lack {len(missing)} of the client's (e.g. {sorted(missing)[0]!r})")
    return hist, profiles(setup, data_dir, hist, only_these=True)


def decide_partition(job: BatchJob, task: BatchTask) -> tuple[pd.DataFrame, int]:
    """One task of ``offers batch``: its members' decisions as output rows (without the run's
    model version, moment and channel columns), and how many members it decided."""
    from models.policy import seed_for
    from runtime.decisions.audience import offer_rows
    from runtime.decisions.materialize import materialize
    from runtime.decisions.model_holder import FixedModel
    from runtime.decisions.outcome import DecisionRequest
    from runtime.decisions.pipeline import DecisionPipeline
    from runtime.settings import settings_for
    from runtime.stores import build_store
    from runtime.stores.memory import MemoryStore

    setup = worker_setup(job.data_dir, job.program, job.as_of, job.fingerprint, job.changes)
    model = worker_model(job.model_dir)
    clock = lambda: setup.clock.now().timestamp()  # noqa: E731 - the in-process batch's store clock
    local = build_store(settings_for(), clock=clock)
    assert isinstance(local, MemoryStore)
    store: MemoryStore = local
    if job.budget_store is not None:
        from runtime.stores.redis_store import RedisStore
        from runtime.stores.shared_budgets import SharedBudgetStore

        shared = worker_redis(job.budget_store)
        assert isinstance(shared, RedisStore)
        store = SharedBudgetStore(shared, keys=local.keys, ttls=local.ttls, wall_clock=clock)
    if task.lo is not None and task.hi is not None:
        hist, member_profiles = partition_members(setup, job.data_dir, task.lo, task.hi, task.expected)
        materialize(store, setup, hist, member_profiles)
        del hist, member_profiles  # the store holds the partition's records now
    logged = _decision_log(job.decision_log) if job.decision_log is not None else None
    pipeline = DecisionPipeline(setup, store, FixedModel(model, setup.clock.now), decision_log=logged)
    when = setup.clock.now()
    req = DecisionRequest(member_id="", channel=job.channel, n=job.n, placement="offers batch", as_of=when,
                          source="offers_batch")
    frames = []
    for chunk in task.chunks:
        ids = [task.ids[i] for i in chunk.tolist()]
        outcomes = pipeline.decide_many(ids, req, [f"batch-{job.run_id}-{i}" for i in chunk.tolist()],
                                        [seed_for(job.seed, m) for m in ids])
        frame = offer_rows(outcomes, setup.program.currency.minor_units)
        frame["_pos"] = frame["member_id"].map(dict(zip(ids, chunk.tolist(), strict=True)))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[c for c in offer_rows([], setup.program.currency.minor_units).columns]), 0
    rows = pd.concat(frames, ignore_index=True).sort_values(["_pos", "rank"], kind="stable")
    return rows.drop(columns="_pos").reset_index(drop=True), sum(len(c) for c in task.chunks)


def materialize_partition(data_dir: str, program: str | None, as_of: str, fingerprint: str, lo: int, hi: int,
                          redis: dict[str, Any],
                          model_dir: str | None, channels: tuple[str, ...]) -> tuple[int, int, int, int]:
    """One task of ``offers materialize``: members-table rows ``lo``..``hi``-1 written into Redis
    (pipelines of :data:`~runtime.decisions.materialize.CHUNK` members on this worker's own
    connections), then, with a propensity model, their score vectors cached for ``channels`` at
    ``as_of``. Returns (members, records, bytes of history, vectors cached)."""
    import pandas as pd

    from models.model import PropensityModel
    from runtime.decisions.materialize import warm_cache, write_members

    setup = worker_setup(data_dir, program, as_of, fingerprint)
    hist, member_profiles = partition_members(setup, data_dir, lo, hi)
    store = worker_redis(redis)
    written = write_members(store, hist, member_profiles)
    warmed = 0
    if model_dir is not None:
        model = worker_model(model_dir)
        if isinstance(model, PropensityModel):
            warmed = warm_cache(store, setup, model, hist, setup.moment(pd.Timestamp(as_of)).local, channels)
    return written.members, written.records, written.bytes, warmed
