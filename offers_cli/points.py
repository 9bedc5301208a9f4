"""``offers points rebuild`` and ``offers points report``: the ledger's audit and its redemptions.

``report`` sums the points redeemed per reward and per charity cause from the log.

The ledger's audit (docs/points.md): every posting the service made is in the durable log
(``points-*.ndjson``) before it was applied. This replays them, member by member, through the
same rule the store runs, and compares each rebuilt balance with the live one in Redis
(``REDIS_URL``). Exit 0 when every member matches, 1 when any differs (listed).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import click


@click.group()
def points() -> None:
    """The points ledger: audit balances against the durable log, report redemptions."""


@points.command()
@click.option("--log", "log_dir", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="The service's durable log directory (OFFERS_EVENT_LOG), holding points-*.ndjson.")
@click.option("--since", default=None, help="From this moment (RFC 3339, inclusive).")
@click.option("--until", default=None, help="Until this moment (RFC 3339, exclusive).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def report(log_dir: Path, since: str | None, until: str | None, as_json: bool) -> None:
    """Points redeemed per reward and per charity cause, from the log (no Redis needed)."""
    from runtime.points.rebuild import burns_by_reward, read_log

    bounds = [_moment(v, name) if v else None for v, name in ((since, "--since"), (until, "--until"))]
    try:
        rows = burns_by_reward(read_log(log_dir), *bounds)
    except (OSError, ValueError, KeyError) as exc:
        raise click.ClickException(f"the points log in {log_dir} cannot be read: {exc}") from exc
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no redemptions in the log for this period")
    for row in rows:
        cause = f" for {row['cause']}" if row["cause"] else ""
        click.echo(f"{row['reward_id']} ({row['kind']}){cause}: {row['redemptions']:,} redemptions, "
                   f"{row['points']:,} points, {row['members']:,} members")


def _moment(text: str, name: str) -> int:
    """An RFC 3339 option as epoch seconds; a usage error naming the option otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an RFC 3339 timestamp", param_hint=name) from None
    if moment.tzinfo is None:
        raise click.BadParameter("give the offset (2024-06-15T12:00:00+00:00)", param_hint=name)
    return int(moment.timestamp())


@points.command()
@click.option("--log", "log_dir", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="The service's durable log directory (OFFERS_EVENT_LOG), holding points-*.ndjson.")
@click.option("--at", "at", default=None,
              help="The moment to compare at, RFC 3339 (default: now); expiry due by then is applied.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def rebuild(log_dir: Path, at: str | None, as_json: bool) -> None:
    """Rebuild every balance from the log and compare it with Redis (REDIS_URL)."""
    from runtime.points.rebuild import rebuild as replay_log
    from runtime.settings import SettingsError, load_settings
    from runtime.stores import StoreUnavailable, build_store

    try:
        moment = datetime.fromisoformat(at) if at else datetime.now(UTC)
    except ValueError:
        raise click.BadParameter(f"{at!r} is not an RFC 3339 timestamp", param_hint="--at") from None
    if moment.tzinfo is None:
        raise click.BadParameter("give the offset (2024-06-15T12:00:00+00:00)", param_hint="--at")
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if settings.redis_url is None:
        raise click.ClickException("offers points rebuild compares with the online store: set REDIS_URL")
    started = time.perf_counter()
    store = build_store(settings)
    try:
        result = replay_log(log_dir, store, int(moment.timestamp()))
    except StoreUnavailable as exc:
        raise click.ClickException(f"Redis is unavailable: {exc}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise click.ClickException(f"the points log in {log_dir} cannot be read: {exc}") from exc
    finally:
        store.close()
    total = sum(int(a["balance"]) for a in result.accounts.values())
    summary = {"members": result.members, "points": total, "mismatches": len(result.mismatches),
               "seconds": round(time.perf_counter() - started, 2)}
    if as_json:
        click.echo(json.dumps({**summary, "differing": {m: {"rebuilt": r, "live": live}
                                                         for m, (r, live) in result.mismatches.items()}}))
    else:
        click.echo(f"rebuilt {result.members:,} members ({total:,} points) from {log_dir} in {summary['seconds']}s")
        for member, (rebuilt, live) in sorted(result.mismatches.items())[:50]:
            click.echo(f"  {member}: rebuilt {rebuilt}, live {live}")
        click.echo("every balance matches" if not result.mismatches
                   else f"{len(result.mismatches):,} members differ")
    if result.mismatches:
        raise SystemExit(1)
