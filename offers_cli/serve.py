"""``offers serve``: run the service under gunicorn with the project's configuration.

A thin layer: it turns options into ``OFFERS_*`` variables, validates the settings
(so a mistake is a one-line error here, not a traceback in every worker), then replaces
itself with ``gunicorn -c python:service.gunicorn_conf service.wsgi:app``; signals
(SIGTERM for a graceful stop) go straight to gunicorn.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


@click.command()
@click.option("--registry", type=click.Path(path_type=Path, exists=True),
              help="Model registry directory (OFFERS_REGISTRY).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Data directory (OFFERS_DATA).")
@click.option("--program", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Program config file (OFFERS_PROGRAM).")
@click.option("--clock", help="Decision time: wall, data or an ISO timestamp (OFFERS_CLOCK, default wall).")
@click.option("--bind", help="HOST:PORT to listen on (OFFERS_BIND, default 127.0.0.1:8000).")
@click.option("--workers", type=click.IntRange(1, 256),
              help="Worker processes (OFFERS_WORKERS, default cores + 1, at most 8).")
@click.option("--dry-run", is_flag=True, help="Print the gunicorn command and exit.")
def serve(registry: Path | None, data_dir: Path | None, program: Path | None, clock: str | None,
          bind: str | None, workers: int | None, dry_run: bool) -> None:
    """Serve the decision and feedback API with gunicorn (Redis from REDIS_URL, if set)."""
    from runtime.settings import SettingsError, load_settings

    given = {"OFFERS_REGISTRY": registry, "OFFERS_DATA": data_dir, "OFFERS_PROGRAM": program,
             "OFFERS_CLOCK": clock, "OFFERS_BIND": bind, "OFFERS_WORKERS": workers}
    for name, value in given.items():
        if value is not None:
            os.environ[name] = str(Path(value).resolve()) if isinstance(value, Path) else str(value)
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if not settings.api_keys:
        click.echo("warning: OFFERS_API_KEYS is empty; decisions and events need no key "
                   "(fine for a local demo only)", err=True)
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf", "service.wsgi:app"]
    if dry_run:
        click.echo(" ".join(argv))
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
