"""``offers lift``: the engine's incremental spend, visits and redemptions against its holdout
(see training.lift)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import pandas as pd


def local_moment(value: str | None, name: str) -> pd.Timestamp | None:
    """A local program time from an ISO date or timestamp option (naive: the program's zone)."""
    import pandas as pd

    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date or timestamp", param_hint=name) from exc
    return ts.tz_localize(None) if ts.tzinfo is not None else ts


@click.command("lift")
@click.option("--log", "log_dir", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Decision log directory (OFFERS_DECISION_LOG, default the event log's), with its events.")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Contract data directory holding the outcomes (transactions, redemptions).")
@click.option("--program", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Program config: its time zone and holdout share (default DATA/program.yaml).")
@click.option("--since", default=None, help="First decision time to count (program-local ISO date or time).")
@click.option("--until", default=None, help="End of the window (exclusive; default: the latest outcome).")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="HTML report to write.")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the figures as JSON.")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
def lift(log_dir: Path, data_dir: Path, program: Path | None, since: str | None, until: str | None, out: Path,
         json_out: Path | None, confidence: float, seed: int) -> None:
    """How much the offers earned: treated members against the program's holdout, with intervals."""
    from models.program import load_program
    from offerdata.directory import default_program
    from training.lift import lift_report, render_html

    program = program or default_program(data_dir)
    config = load_program(program) if program is not None else None
    zone = config.timezone if config is not None else "UTC"
    share = config.decisions.holdout.share if config is not None else None
    report = lift_report(log_dir, data_dir, zone, share, local_moment(since, "--since"), local_moment(until, "--until"),
                         confidence, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report), encoding="utf-8")
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    srm = report.sample_ratio
    click.echo(f"{report.decisions:,} decisions, {report.members:,} members until {report.until}; control "
               f"{srm.observed_share:.2%}" + ("" if srm.expected_share is None else
                                              f" of {srm.expected_share:.2%} configured")
               + ("" if srm.ok else " (SAMPLE RATIO MISMATCH)"))
    for row in report.rows:
        if row.group == "all":
            click.echo(f"  {row.metric:<12} lift {row.lift:,.3f} per member "
                       f"[{row.low:,.3f}, {row.high:,.3f}], incremental total {row.incremental_total:,.0f}")
    for note in report.notes:
        click.echo(f"warning: {note}", err=True)
    click.echo(f"wrote {out}" + (f" and {json_out}" if json_out else ""))
