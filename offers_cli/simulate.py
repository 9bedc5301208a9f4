"""``offers simulate``: a program change's effect on a sample, as a table and an HTML report
(see runtime.decisions.simulation)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
from jinja2 import Environment, select_autoescape

from models.data_contract import CHANNELS

REPORT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Simulation: {{ new.program }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}
table{border-collapse:collapse;margin:1rem 0}th,td{padding:.3rem .7rem;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}.up{color:#0a6b2d}.down{color:#a40000}
.bar{fill:#3b6ea8}.bar.cur{fill:#b9c7d9}
</style></head><body>
<h1>What the new program would do</h1>
<p>{{ new.members }} sampled members, {{ channel }} channel, as of {{ as_of }}, model {{ model or "none (the fallback policy)" }}.
Current: <code>{{ current.program }}</code>. New: <code>{{ new.program }}</code>.</p>
<h2>Members reached</h2>
<table><tr><th>config</th><th>members with an offer</th><th>share</th></tr>
{% for side in (current, new) %}<tr><td>{{ side.label }}</td><td>{{ side.reached }}</td>
<td>{{ "%.1f%%" % (100 * side.reached / side.members if side.members else 0) }}</td></tr>{% endfor %}</table>
<h2>Offers issued</h2>
<table><tr><th>offer</th><th>current</th><th>new</th><th>change</th><th>chart (light: current)</th></tr>
{% for row in offers %}<tr><td>{{ row.offer_id }} <small>{{ row.title }}</small></td><td>{{ row.current }}</td>
<td>{{ row.new }}</td><td class="{{ 'up' if row.change > 0 else 'down' if row.change < 0 else '' }}">{{ "%+d" % row.change }}</td>
<td><svg width="200" height="16" role="img" aria-label="{{ row.current }} then {{ row.new }}">
<rect class="bar cur" x="0" y="0" height="7" width="{{ 200 * row.current / top }}"/>
<rect class="bar" x="0" y="8" height="7" width="{{ 200 * row.new / top }}"/></svg></td></tr>{% endfor %}</table>
<h2>Budget burn</h2>
{% if budgets %}<table><tr><th>budget</th><th>period</th><th>issues current</th><th>issues new</th><th>issue limit (paced now)</th>
<th>money current</th><th>money new</th><th>money limit (paced now)</th></tr>
{% for b in budgets %}<tr><td>{{ b.budget }}</td><td>{{ b.period }}{% if b.pacing != "none" %}, {{ b.pacing }}{% endif %}</td>
<td>{{ b.current_count }}</td><td>{{ b.new_count }}</td>
<td>{{ b.limit_count if b.limit_count is not none else "-" }}{% if b.pacing != "none" and b.paced_count is not none %} ({{ b.paced_count }}){% endif %}</td>
<td>{{ money(b.current_minor) }}</td><td>{{ money(b.new_minor) }}</td>
<td>{{ money(b.limit_minor) if b.limit_minor is not none else "-" }}{% if b.pacing != "none" and b.paced_minor is not none %} ({{ money(b.paced_minor) }}){% endif %}</td></tr>{% endfor %}
</table>{% else %}<p>No offer of either config has a budget.</p>{% endif %}
<h2>Why offers were left out (new config)</h2>
<table><tr><th>reason</th><th>current</th><th>new</th></tr>
{% for reason in reasons %}<tr><td>{{ reason }}</td><td>{{ current.excluded[reason] }}</td><td>{{ new.excluded[reason] }}</td></tr>{% endfor %}
</table></body></html>
"""


@click.command("simulate")
@click.option("--program", "new_program", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The changed program config to try.")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Contract data directory.")
@click.option("--members", "members_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The sample: Parquet/CSV with a member_id column, or one id per line.")
@click.option("--current", "current_program", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The config live today (default: DATA/program.yaml when present, else the built-in default).")
@click.option("--registry", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Model registry whose champion scores both sides (default: none, the fallback policy).")
@click.option("--as-of", default=None, help="Decision time: wall, data or an ISO timestamp (default as offers batch).")
@click.option("--channel", type=click.Choice(CHANNELS), default="app", show_default=True)
@click.option("--n", "n", type=click.IntRange(1, 50), default=None, help="Slate size (default: the program's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of exploration draws (same on both sides).")
@click.option("--report", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write an HTML report here.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON instead of a table.")
def simulate(new_program: Path, data_dir: Path, members_file: Path, current_program: Path | None,
             registry: Path | None, as_of: str | None, channel: str, n: int | None, seed: int, report: Path | None,
             as_json: bool) -> None:
    """Show what a program change would do on a sample of members before it goes live: offers issued
    per offer, members reached, budget burn and exclusion reasons, under the current config and the new
    one (nothing is issued: each side decides on its own in-process store)."""
    from models.compiled import default_cache_dir
    from models.model import PropensityModel
    from models.registry import Registry
    from models.uplift import load_serving_model
    from offerdata.directory import decision_moment, default_program
    from offerdata.validate import require_valid
    from runtime.decisions.simulation import compare
    from runtime.decisions.simulation import simulate as run

    # every project error (invalid data or config, unknown registry, bad clock) reaches the user as
    # its message and exit code 1 through the command group
    require_valid(data_dir)
    current_program = current_program or default_program(data_dir)
    moment = decision_moment(data_dir)
    as_of = as_of or os.environ.get("OFFERS_CLOCK") or (moment.isoformat() if moment is not None else "wall")
    model = None
    if registry is not None:
        model = load_serving_model(Registry(registry).path("champion"))
        if isinstance(model, PropensityModel):
            model.try_compile(default_cache_dir())
    result = run(data_dir, members_file, new_program, current_program, as_of, channel, n, seed, model)
    offers, budgets = compare(result)
    if as_json:
        click.echo(json.dumps({"as_of": result.as_of.isoformat(), "channel": channel, "model": result.model_version,
                               "members": result.new.members,
                               "reached": {"current": result.current.reached, "new": result.new.reached},
                               "offers": offers, "budgets": budgets,
                               "excluded": {"current": dict(result.current.excluded), "new": dict(result.new.excluded)}},
                              indent=2))
    else:
        click.echo(_table(result, offers, budgets))
    if report is not None:
        report.write_text(_html(result, offers, budgets), encoding="utf-8")
        if not as_json:
            click.echo(f"report: {report}")


def _table(result: Any, offers: list[dict[str, Any]], budgets: list[dict[str, Any]]) -> str:
    """The comparison as plain text: reach, then offers, then budgets."""
    cur, new = result.current, result.new
    lines = [f"{new.members:,} members, {result.channel}, as of {result.as_of.isoformat()}",
             f"members reached: current {cur.reached:,}, new {new.reached:,} ({new.reached - cur.reached:+,})", "",
             f"{'offer':<28} {'current':>8} {'new':>8} {'change':>8}"]
    lines += [f"{str(r['offer_id'])[:28]:<28} {r['current']:>8,} {r['new']:>8,} {r['change']:>+8,}" for r in offers]
    if budgets:
        lines += ["", f"{'budget':<28} {'period':<12} {'issues now':>10} {'issues new':>10} {'limit':>8}"]
        lines += [f"{str(b['budget'])[:28]:<28} {b['period']!s:<12} {b['current_count']:>10,} {b['new_count']:>10,} "
                  f"{'-' if b['limit_count'] is None else format(b['limit_count'], ','):>8}" for b in budgets]
    return "\n".join(lines)


def _html(result: Any, offers: list[dict[str, Any]], budgets: list[dict[str, Any]]) -> str:
    """The HTML report (server-rendered, no scripts; inline SVG bars)."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    top = max([1, *(max(int(r["current"]), int(r["new"])) for r in offers)])
    reasons = sorted(set(result.current.excluded) | set(result.new.excluded),
                     key=lambda r: -result.new.excluded[r])
    return env.from_string(REPORT).render(
        current=result.current, new=result.new, offers=offers, budgets=budgets, top=top, reasons=reasons,
        as_of=result.as_of.isoformat(), channel=result.channel, model=result.model_version,
        money=lambda minor: "-" if minor is None else f"{minor / result.minor_units:,.2f}")
