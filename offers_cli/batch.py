"""``offers batch``: an audience's decisions to Parquet or CSV (see runtime.decisions.audience)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from models.data_contract import CHANNELS
from offers_cli.cluster_options import cluster_options


@click.command("batch")
@click.option("--registry", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Model registry (its champion scores).")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Contract data directory.")
@click.option("--members", "members_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Audience: Parquet/CSV with a member_id column, or one id per line.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output file, .parquet or .csv: one row per (member, offer). On a Dask cluster, a path "
                   "without either suffix is a directory of Parquet part files, one per member partition.")
@click.option("--program", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Program config (default: DATA/program.yaml when present).")
@click.option("--as-of", default=None,
              help="Decision time: wall, data or an ISO timestamp (default OFFERS_CLOCK, else "
                   "DATA/decision_moment.txt, else wall).")
@click.option("--channel", type=click.Choice(CHANNELS), default="email", show_default=True)
@click.option("--n", "n", type=click.IntRange(1, 50), default=None, help="Slate size (default: the program's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of exploration draws.")
@click.option("--version", default="champion", show_default=True, help="Model version or alias.")
@click.option("--decision-log", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Also log every decision here (decisions-*.ndjson), for offers data events and lift.")
@click.option("--catalog-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The live catalog's change log to apply (paused offers are never issued); default "
                   "OFFERS_CATALOG_DIR, else $OFFERS_EVENT_LOG/catalog when OFFERS_EVENT_LOG is set.")
@cluster_options("the decisions, one task per member partition (budgets then need REDIS_URL),")
def batch(registry: Path, data_dir: Path, members_file: Path, out: Path, program: Path | None, as_of: str | None,
          channel: str, n: int | None, seed: int, version: str, decision_log: Path | None,
          catalog_dir: Path | None, scheduler: str | None, workers: int | None) -> None:
    """Decide for a whole audience (bounded memory, progress bar), without the online store."""
    from tqdm.auto import tqdm

    from models.model import ArtifactError
    from models.registry import RegistryError
    from offerdata.directory import decision_moment, default_program
    from offerdata.tables import DataDirError
    from runtime.catalog.changelog import CatalogLogError
    from runtime.decisions.audience import AudienceError, read_members, run
    from runtime.decisions.clock import ClockError
    from runtime.distributed import ClusterError, client_for
    from runtime.events.log import EventLogError
    from runtime.settings import SettingsError, load_settings

    started = time.perf_counter()
    try:
        program = program or default_program(data_dir)
        moment = decision_moment(data_dir)
        as_of = as_of or os.environ.get("OFFERS_CLOCK") or (moment.isoformat() if moment is not None else "wall")
        catalog_dir = catalog_dir or live_catalog_dir()
        total = len(read_members(members_file))
        with client_for(scheduler, workers) as client, tqdm(total=total, unit="member", desc="decisions") as bar:
            if client is None:
                summary = run(data_dir, registry, members_file, out, program=program,
                              as_of=as_of, channel=channel, n=n, seed=seed,
                              version=version, progress=bar.update, decision_log=decision_log,
                              catalog_dir=catalog_dir)
            else:
                from runtime.decisions.cluster_batch import run_on_cluster

                summary = run_on_cluster(client, data_dir, registry, members_file, out, load_settings(),
                                         program=program, as_of=as_of, channel=channel, n=n, seed=seed,
                                         version=version, progress=bar.update, decision_log=decision_log,
                                         catalog_dir=catalog_dir)
    except (AudienceError, DataDirError, ClockError, RegistryError, ArtifactError, EventLogError,
            CatalogLogError, ClusterError, SettingsError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{summary.members:,} members ({summary.unknown:,} not in the data: cold starts), "
               f"{summary.offers:,} offers, model {summary.model_version}, as of {summary.as_of} -> {summary.out} "
               f"in {time.perf_counter() - started:.1f}s")


def live_catalog_dir() -> Path | None:
    """The live catalog's directory the service would use, from the environment (None: none set)."""
    if os.environ.get("OFFERS_CATALOG_DIR"):
        return Path(os.environ["OFFERS_CATALOG_DIR"])
    if os.environ.get("OFFERS_EVENT_LOG"):
        return Path(os.environ["OFFERS_EVENT_LOG"]) / "catalog"
    return None
