"""``offers materialize`` on a Dask cluster: each partition's members written by its own worker.

The client validates the data, writes the catalog record, reads only the members table's
length, and submits one task per partition of ``PARTITION_MEMBERS`` consecutive rows
(:data:`offerdata.loader.PARTITION_MEMBERS`). A worker reads its partition from the Parquet
data directory (:func:`offerdata.loader.load_member_range`), writes the members' history
records and profiles into Redis or a Redis Cluster through its own connections, a pipeline of
:data:`~runtime.decisions.materialize.CHUNK` members at a time, then, given a propensity
model (loaded once per worker process), warms their score cache. Once every task succeeded the
client writes the new generation marker, as the in-process :func:`~runtime.decisions.materialize.materialize`
does last, so an interrupted run leaves the store flagged as incomplete. The keys, values and
TTLs are those of the in-process run (basket codes are the stable ones on both paths), which
``tests/test_dask_batch.py`` checks key by key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from models.features.online import catalog_ids
from offerdata import loader
from offerdata.tables import read_table, require_table
from runtime.decisions.cluster_worker import materialize_partition, redis_settings
from runtime.decisions.materialize import MaterializeSummary, new_generation
from runtime.decisions.setup import DecisionSetup
from runtime.settings import Settings
from runtime.stores import Store


@dataclass(frozen=True)
class ClusterMaterialized:
    """What the workers wrote, summed, and the generation marker the client wrote last."""

    summary: MaterializeSummary
    warmed: int
    partitions: int


def member_count(data_dir: str | os.PathLike[str]) -> int:
    """Rows of the members table, from the Parquet footer when there is one (nothing else is read)."""
    path = require_table(data_dir, "members")
    if path.suffix == ".parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    return len(read_table(data_dir, "members", columns=["member_id"]))


def materialize_on_cluster(client: Any, store: Store, settings: Settings, setup: DecisionSetup,
                           data_dir: str | os.PathLike[str], program: str | os.PathLike[str] | None,
                           model_dir: str | os.PathLike[str] | None = None, channels: Sequence[str] = (),
                           progress: Callable[[int], None] | None = None,
                           partition_members: int | None = None) -> ClusterMaterialized:
    """Write every member (and warm the cache for ``model_dir`` on ``channels``) from the workers.

    ``store`` is the client's connection (catalog record and generation marker); the workers
    connect with ``settings``' Redis fields. The decision moment is pinned to the client's clock.
    ``partition_members`` defaults to :data:`offerdata.loader.PARTITION_MEMBERS`.
    """
    size_of = partition_members or loader.PARTITION_MEMBERS
    from distributed import as_completed

    store.put_catalog(setup.fingerprint, catalog_ids(setup.features))
    total = member_count(data_dir)
    as_of = setup.clock.now().isoformat()
    redis = redis_settings(settings)
    futures = [client.submit(materialize_partition, str(Path(data_dir).resolve()),
                             None if program is None else str(Path(program).resolve()), as_of, setup.fingerprint,
                             lo, min(lo + size_of, total), redis,
                             None if model_dir is None else str(Path(model_dir).resolve()), tuple(channels),
                             pure=False, key=f"offers-materialize-{lo}-{os.urandom(4).hex()}")
               for lo in range(0, total, size_of)]
    members = records = size = warmed = 0
    try:
        for future in as_completed(futures):
            m, r, b, w = future.result()
            members, records, size, warmed = members + m, records + r, size + b, warmed + w
            future.release()
            if progress is not None:
                progress(m)
    finally:
        client.cancel(futures)
    generation = new_generation(setup)
    store.put_generation(generation)
    return ClusterMaterialized(MaterializeSummary(members=members, records=records, bytes=size, generation=generation),
                               warmed=warmed, partitions=len(futures))
