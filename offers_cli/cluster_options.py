"""``--scheduler`` and ``--workers``: the Dask options every offline command shares (runtime.distributed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def cluster_options(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--scheduler ADDRESS`` and ``--workers N`` to a command; ``what`` says what runs on the cluster."""
    def add(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option("--workers", type=click.IntRange(1, 1024), default=None,
                               help=f"Run {what} on a local Dask cluster of this many single-threaded "
                                    "worker processes (docs/scale-out.md).")(command)
        return click.option("--scheduler", default=None, metavar="ADDRESS",
                            help=f"Run {what} on the Dask cluster at this scheduler address, e.g. "
                                 "tcp://10.0.0.5:8786 (default: $OFFERS_DASK_SCHEDULER; neither: in-process).")(command)
    return add
