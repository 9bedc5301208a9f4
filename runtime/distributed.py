"""A ``dask.distributed`` client for the offline commands: a scheduler's address or local workers.

``offers train``, ``evaluate``, ``score``, ``batch`` and ``materialize`` take ``--scheduler
ADDRESS`` (or ``OFFERS_DASK_SCHEDULER``) to use a running Dask cluster, or ``--workers N`` for
a :class:`distributed.LocalCluster` of N single-threaded worker processes on this machine.
Without either, :func:`dask_client` yields None and dask is never imported: the commands run
in-process. This module owns only the connection; what runs on the workers lives with each
command (``training.distributed`` for features, :mod:`runtime.decisions.cluster_batch` and
:mod:`runtime.decisions.cluster_materialize` for the audience and the online store).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from models.errors import OffersError

#: The environment variable naming a Dask scheduler (``--scheduler`` wins over it).
SCHEDULER_ENV = "OFFERS_DASK_SCHEDULER"
#: Seconds to wait for a ``--scheduler`` to answer before giving up with a clear error.
CONNECT_TIMEOUT_ENV = "OFFERS_DASK_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT_S = 10.0


class ClusterError(OffersError):
    """The Dask cluster cannot be reached or used (bad address, workers seeing other data)."""


def scheduler_address(scheduler: str | None) -> str | None:
    """The scheduler to use: ``scheduler`` when given, else ``OFFERS_DASK_SCHEDULER``, else None."""
    return scheduler or os.environ.get(SCHEDULER_ENV) or None


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` or for a local cluster of ``workers`` processes.

    Yields None when neither is given (the in-process default; dask is not imported). A local
    cluster has ``workers`` single-threaded worker processes, so the parallelism is Dask's, not
    numpy's or LightGBM's threads; it is closed on exit. An address that does not answer within
    ``OFFERS_DASK_CONNECT_TIMEOUT`` seconds (default 10) raises :class:`ClusterError`.
    """
    if scheduler and workers:
        raise ClusterError("give either a Dask scheduler address or a number of local workers, not both")
    if not scheduler and not workers:
        yield None
        return
    from distributed import Client, LocalCluster

    cluster = None
    if workers:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
    else:
        timeout = float(os.environ.get(CONNECT_TIMEOUT_ENV) or DEFAULT_CONNECT_TIMEOUT_S)
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, ValueError, TypeError) as exc:  # distributed raises OSError on a timeout
            raise ClusterError(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def client_for(scheduler: str | None, workers: int | None) -> Any:
    """The Dask client context for a command's ``--scheduler``/``--workers`` (None inside: in-process).

    ``--workers`` wins over the environment's scheduler, not over an explicit ``--scheduler``
    (that is an error).
    """
    return dask_client(scheduler if workers else scheduler_address(scheduler), workers)


def as_finished(futures: list[Any], desc: str, progress: bool) -> Iterator[tuple[Any, Any]]:
    """``(future, result)`` for each of ``futures`` as it finishes, with a progress bar when asked
    (and there are at least two), releasing each future once the caller has taken its result so
    the cluster drops it; the one loop every command's partitioned tasks are gathered with."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    with tqdm(total=len(futures), desc=desc, unit="partition", disable=not progress or len(futures) < 2) as bar:
        for future in as_completed(futures):
            yield future, future.result()
            future.release()
            bar.update()
