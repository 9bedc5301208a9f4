"""``offers demo``: the README's main job, end to end on embedded defaults."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("demo"), show_default=True,
              help="Where the demo writes its data.")
def demo(workdir: Path) -> None:
    """Import The Complete Journey and validate it against the data contract."""
    from offerdata.completejourney import DatasetUnavailable, write_completejourney
    from offerdata.validate import validate

    data_dir = workdir / "data"
    click.echo(f"[1/2] importing The Complete Journey into {data_dir}")
    try:
        summary = write_completejourney(data_dir)
    except DatasetUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("      " + ", ".join(f"{k} {v:,}" for k, v in summary.rows.items()))
    click.echo(f"[2/2] validating {data_dir}")
    report = validate(data_dir)
    click.echo(report.render())
    if not report.ok:
        raise click.ClickException("the imported data failed validation")
