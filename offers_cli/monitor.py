"""``offers monitor``: drift and data quality from the decision and event logs (see training.monitor)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from offers_cli.lift import local_moment


@click.command("monitor")
@click.option("--log", "log_dir", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Directory of the decision and event logs (OFFERS_EVENT_LOG).")
@click.option("--registry", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Model registry holding the logged versions and their drift references.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Contract data: recompute a sample's features for feature drift, and name unknown offers "
                   "and products.")
@click.option("--program", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Program config for its time zone (default DATA/program.yaml, else UTC).")
@click.option("--since", default=None, help="First decision or event time (program-local ISO date or time).")
@click.option("--until", default=None, help="End of the window (exclusive).")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="HTML report to write.")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the figures as JSON.")
def monitor(log_dir: Path, registry: Path, data_dir: Path | None, program: Path | None, since: str | None,
            until: str | None, out: Path, json_out: Path | None) -> None:
    """Score and feature drift per model version against its training reference, and event data quality."""
    from models.errors import OffersError
    from models.program import load_program
    from offerdata.directory import default_program
    from training.monitor import monitor_report, render_html

    config = program or (default_program(data_dir) if data_dir is not None else None)
    zone = load_program(config).timezone if config is not None else "UTC"
    try:
        report = monitor_report(log_dir, registry, data_dir, zone, local_moment(since, "--since"), local_moment(until, "--until"))
    except OffersError as exc:
        raise click.ClickException(str(exc)) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report), encoding="utf-8")
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    for version, entry in report.versions.items():
        if entry["reference"]:
            worst = next(iter(entry.get("feature_psi", {}).items()), None)
            click.echo(f"model {version}: {entry['decisions']:,} decisions, score PSI {entry['score_psi']:.4f} "
                       f"({entry['score_level']})" + ("" if worst is None else
                                                       f", largest feature PSI {worst[1]:.4f} ({worst[0]})"))
        else:
            click.echo(f"model {version}: {entry['decisions']:,} decisions, no drift reference")
    ev = report.events
    click.echo(f"events: {ev['events']:,}; rejected lines {ev['rejected_lines']:,}, duplicates {ev['duplicates']:,}"
               + "".join(f", {k} {ev[k]:,}" for k in ("future_timestamp", "unknown_offer", "unknown_product")
                         if k in ev))
    for note in report.notes:
        click.echo(f"warning: {note}", err=True)
    click.echo(f"wrote {out}" + (f" and {json_out}" if json_out else ""))
