"""``offers catalog``: the live catalog from the command line (list, history, pause, resume, retire, put).

The same change log and validation as the admin API (:mod:`runtime.catalog`), written directly
to the catalog directory every worker follows; the audit trail names ``cli:<user>``. Useful when
the service is down, or in scripts. The start-up catalog is loaded from ``--data`` and
``--program`` as the service loads it.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import click
import yaml

from offers_cli.batch import live_catalog_dir


def _options(f: Any) -> Any:
    f = click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False), default=None,
                     help="The catalog directory; default OFFERS_CATALOG_DIR, else $OFFERS_EVENT_LOG/catalog.")(f)
    f = click.option("--program", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
                     help="The program config (default: the data directory's).")(f)
    return click.option("--data", "data_dir", required=True,
                        type=click.Path(path_type=Path, exists=True, file_okay=False),
                        help="The data directory the service loads (the start-up catalog).")(f)


def _editor(data_dir: Path, program: Path | None, directory: Path | None) -> Any:
    """The start-up catalog's editor over the change log of ``directory`` (a usage error when unknown)."""
    from offerdata.directory import default_program
    from runtime.catalog.changelog import CatalogLog
    from runtime.catalog.edits import CatalogEditor
    from runtime.decisions.setup import DecisionSetup

    directory = directory or live_catalog_dir()
    if directory is None:
        raise click.UsageError("say where the catalog is: --dir, OFFERS_CATALOG_DIR or OFFERS_EVENT_LOG")
    setup = DecisionSetup.load(data_dir, program or default_program(data_dir))
    return CatalogEditor(CatalogLog(directory), setup.catalog)


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _run(action: Any) -> Any:
    """Run an edit; the library's refusals become a message and exit code 1."""
    from runtime.catalog.changelog import CatalogLogError
    from runtime.catalog.edits import InvalidChange, OfferNotFound, OfferRetired, VersionMismatch

    try:
        return action()
    except InvalidChange as exc:
        raise click.ClickException("the offer is not valid:\n  " + "\n  ".join(
            f"{p}: {m}" for p, m in exc.issues)) from None
    except OfferNotFound as exc:
        raise click.ClickException(f"the catalog has no offer {exc.args[0]!r}") from None
    except (OfferRetired, VersionMismatch, CatalogLogError) as exc:
        raise click.ClickException(str(exc)) from None


def _done(record: Any) -> None:
    click.echo(f"{record.offer_id}: {record.op} -> {record.status} (catalog version {record.version}, {record.who})")


@click.group()
def catalog() -> None:
    """The live catalog: list offers with their status, their history, pause, resume, retire, put."""


@catalog.command("list")
@_options
def list_offers(data_dir: Path, program: Path | None, directory: Path | None) -> None:
    """Every offer with its status and version."""
    from runtime.catalog.live import apply_changes

    editor = _editor(data_dir, program, directory)
    live = _run(lambda: apply_changes(editor.base, editor.log.read()))
    click.echo(f"catalog version {live.version}")
    for offer in live.catalog.offers:
        click.echo(f"{offer.offer_id}\t{live.status(offer.offer_id)}\tv{live.offer_version(offer.offer_id)}"
                   f"\t{offer.source}\t{offer.title}")


@catalog.command()
@click.argument("offer_id")
@_options
def history(offer_id: str, data_dir: Path, program: Path | None, directory: Path | None) -> None:
    """The offer's changes as JSON lines: version, when, who, what."""
    editor = _editor(data_dir, program, directory)
    for record in _run(editor.log.read):
        if record.offer_id == offer_id:
            click.echo(json.dumps(record.to_dict(), sort_keys=True))


@catalog.command()
@click.argument("offer_id")
@_options
def pause(offer_id: str, data_dir: Path, program: Path | None, directory: Path | None) -> None:
    """Pause an offer: never issued until resumed."""
    editor = _editor(data_dir, program, directory)
    _done(_run(lambda: editor.patch(offer_id, {"status": "paused"}, _who())))


@catalog.command()
@click.argument("offer_id")
@_options
def resume(offer_id: str, data_dir: Path, program: Path | None, directory: Path | None) -> None:
    """Resume a paused offer."""
    editor = _editor(data_dir, program, directory)
    _done(_run(lambda: editor.patch(offer_id, {"status": "active"}, _who())))


@catalog.command()
@click.argument("offer_id")
@_options
def retire(offer_id: str, data_dir: Path, program: Path | None, directory: Path | None) -> None:
    """Retire an offer: never issued again."""
    editor = _editor(data_dir, program, directory)
    _done(_run(lambda: editor.retire(offer_id, _who())))


@catalog.command()
@click.argument("offer_id")
@click.option("--file", "file", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The offer as YAML, with the keys of an offer in the program file.")
@_options
def put(offer_id: str, file: Path, data_dir: Path, program: Path | None, directory: Path | None) -> None:
    """Create an offer, or replace its whole definition, from a YAML file."""
    try:
        body = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{file} is not valid YAML: {exc}") from None
    if not isinstance(body, dict):
        raise click.ClickException(f"{file} must hold one offer as a mapping of offer keys")
    editor = _editor(data_dir, program, directory)
    _done(_run(lambda: editor.put(offer_id, body, _who())))
