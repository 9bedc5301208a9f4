"""The ``offers`` command: one entry point for everything a user runs.

Each sub-command is a thin layer over an importable API (``offerdata``,
``training``, ``runtime``, ``service``); user mistakes surface as
:class:`click.ClickException` (a message and exit code 1), never as a traceback: commands
convert the errors they expect with a hint, and :class:`OffersGroup` converts any other
project error (:class:`models.errors.OffersError`) that reaches it.
"""

from __future__ import annotations

from typing import Any

import click

from models.errors import OffersError
from offers_cli.batch import batch
from offers_cli.catalog import catalog
from offers_cli.data import data
from offers_cli.demo import demo
from offers_cli.lift import lift
from offers_cli.materialize import materialize
from offers_cli.monitor import monitor
from offers_cli.points import points
from offers_cli.serve import serve
from offers_cli.simulate import simulate
from offers_cli.train import evaluate, models, score, train


class OffersGroup(click.Group):
    """A command group that turns any project error into its message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the sub-command; an :class:`OffersError` it lets through becomes a ClickException."""
        try:
            return super().invoke(ctx)
        except OffersError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=OffersGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loyalty-offers")
def cli() -> None:
    """Personalized loyalty offers: data, training, decisions and the serving API."""


cli.add_command(data)
cli.add_command(demo)
for command in (train, evaluate, score, models):
    cli.add_command(command)
cli.add_command(serve)
cli.add_command(materialize)
cli.add_command(batch)
cli.add_command(catalog)
cli.add_command(lift)
cli.add_command(monitor)
cli.add_command(points)
cli.add_command(simulate)

if __name__ == "__main__":  # pragma: no cover
    cli()
