"""``offers materialize``: load a data directory into the online store (Redis) and warm it.

Validates the data, writes every member's history records and profile in bounded
pipelines (progress bar), then, with ``--registry``, scores every member with history
against the offers valid at the clock's time and caches the vectors for the champion.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from offers_cli.cluster_options import cluster_options


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Contract data directory.")
@click.option("--registry", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Model registry: warm the score cache for its champion.")
@click.option("--program", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Program config (as the service uses: OFFERS_PROGRAM).")
@click.option("--clock", default=None,
              help="Decision time the cache is warmed for: wall, data or an ISO timestamp "
                   "(default OFFERS_CLOCK, else wall).")
@click.option("--channel", "channels", multiple=True,
              help="Channel(s) to warm scores for (default: the channel most exposures used).")
@cluster_options("the writes, one task per member partition with its own Redis connections,")
def materialize(data_dir: Path, registry: Path | None, program: Path | None, clock: str | None,
                channels: tuple[str, ...], scheduler: str | None, workers: int | None) -> None:
    """Write every member's history and profile into Redis (REDIS_URL) and warm the score cache."""
    from tqdm.auto import tqdm

    from models.model import ArtifactError
    from models.registry import Registry, RegistryError
    from models.uplift import UpliftModel, load_serving_model
    from offerdata.tables import DataDirError
    from offerdata.validate import require_valid
    from runtime.decisions.clock import ClockError
    from runtime.decisions.materialize import default_channel, load_members, warm_cache
    from runtime.decisions.materialize import materialize as write_members
    from runtime.decisions.setup import DecisionSetup
    from runtime.distributed import ClusterError, client_for
    from runtime.settings import SettingsError, load_settings
    from runtime.stores import StoreUnavailable, build_store

    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if settings.redis_url is None:
        raise click.ClickException("offers materialize writes the online store: set REDIS_URL (without Redis the "
                                   "service materializes OFFERS_DATA into each worker at start-up)")
    started = time.perf_counter()
    try:
        with client_for(scheduler, workers) as client:
            if client is not None:
                _on_cluster(client, settings, data_dir, registry, program, clock, channels)
                click.echo(f"done in {time.perf_counter() - started:.1f}s")
                return
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        require_valid(data_dir)
        setup = DecisionSetup.load(data_dir, program, clock or os.environ.get("OFFERS_CLOCK", "wall"))
        hist, profiles = load_members(setup, data_dir)
        model = load_serving_model(Registry(registry).path("champion")) if registry is not None else None
    except (DataDirError, ClockError, RegistryError, ArtifactError) as exc:
        raise click.ClickException(str(exc)) from exc
    store = build_store(settings)
    try:
        store.ping()
        with tqdm(total=hist.n_members, unit="member", desc="materialize") as bar:
            summary = write_members(store, setup, hist, profiles, progress=bar.update)
        click.echo(f"wrote {summary.members:,} members ({summary.records:,} records, "
                   f"{summary.bytes / 1e6:.1f} MB of history) under catalog {setup.fingerprint}; "
                   f"generation {summary.generation}")
        if isinstance(model, UpliftModel):  # scores from attributes, never cached: nothing to warm
            click.echo(f"model {model.version} is an uplift model: its scores are computed per decision, not cached")
        elif model is not None:
            as_of = setup.moment().local
            chosen = list(channels) or [default_channel(data_dir)]
            with tqdm(unit="member", desc="warm cache") as bar:
                warmed = warm_cache(store, setup, model, hist, as_of, chosen, progress=bar.update)
            click.echo(f"cached {warmed:,} score vectors for model {model.version}, channel(s) "
                       f"{', '.join(chosen)}, as of {setup.clock.describe()} "
                       f"({len(setup.universe(as_of).scorable)} scorable offers valid then)")
    except StoreUnavailable as exc:
        raise click.ClickException(f"Redis is unavailable: {exc}") from exc
    finally:
        store.close()
    click.echo(f"done in {time.perf_counter() - started:.1f}s")


def _on_cluster(client: object, settings: object, data_dir: Path, registry: Path | None, program: Path | None,
                clock: str | None, channels: tuple[str, ...]) -> None:
    """``offers materialize`` on the Dask cluster ``client`` (runtime.decisions.cluster_materialize):
    the client reads no history; each worker writes its partition and warms its cache."""
    from tqdm.auto import tqdm

    from models.model import ArtifactError
    from models.registry import Registry, RegistryError
    from models.uplift import UpliftModel, load_serving_model
    from offerdata.tables import DataDirError
    from offerdata.validate import require_valid
    from runtime.decisions.clock import ClockError
    from runtime.decisions.cluster_materialize import materialize_on_cluster, member_count
    from runtime.decisions.materialize import default_channel
    from runtime.decisions.setup import DecisionSetup
    from runtime.settings import Settings
    from runtime.stores import StoreUnavailable, build_store

    assert isinstance(settings, Settings)
    try:
        require_valid(data_dir)
        setup = DecisionSetup.load(data_dir, program, clock or os.environ.get("OFFERS_CLOCK", "wall"))
        model_dir = Registry(registry).path("champion") if registry is not None else None
        model = load_serving_model(model_dir) if model_dir is not None else None
        total = member_count(data_dir)
    except (DataDirError, ClockError, RegistryError, ArtifactError) as exc:
        raise click.ClickException(str(exc)) from exc
    warm = model is not None and not isinstance(model, UpliftModel)
    chosen = (list(channels) or [default_channel(data_dir)]) if warm else []
    store = build_store(settings)
    try:
        store.ping()
        with tqdm(total=total, unit="member", desc="materialize (dask)") as bar:
            done = materialize_on_cluster(client, store, settings, setup, data_dir, program,
                                          model_dir if warm else None, chosen, progress=bar.update)
        summary = done.summary
        click.echo(f"wrote {summary.members:,} members ({summary.records:,} records, "
                   f"{summary.bytes / 1e6:.1f} MB of history) under catalog {setup.fingerprint} from "
                   f"{done.partitions} partition(s); generation {summary.generation}")
        if isinstance(model, UpliftModel):
            click.echo(f"model {model.version} is an uplift model: its scores are computed per decision, not cached")
        elif model is not None:
            as_of = setup.moment().local
            click.echo(f"cached {done.warmed:,} score vectors for model {model.version}, channel(s) "
                       f"{', '.join(chosen)}, as of {setup.clock.describe()} "
                       f"({len(setup.universe(as_of).scorable)} scorable offers valid then)")
    except StoreUnavailable as exc:
        raise click.ClickException(f"Redis is unavailable: {exc}") from exc
    finally:
        store.close()
