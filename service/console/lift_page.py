"""The lift page: what the offers earned, from the latest ``offers lift --json`` report.

Lift is measured offline over a window of the decision and event logs (``training.lift``;
minutes for a month of traffic), so the console does not recompute it per page view: it
shows the report a scheduled ``offers lift --json PATH`` last wrote (``OFFERS_LIFT_REPORT``,
default ``lift.json`` in the decision log's directory). A missing report gets the command
that makes one; an unreadable one gets its problem, never an error page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import g, render_template

from service.console.blueprint import bp
from service.console.charts import bar_chart
from service.console.session import signed_in
from service.state import current_state

#: the lift report's metrics, with how the page names them
METRICS = {"spend_minor": "Spend (minor units)", "visits": "Visits", "redemptions": "Redemptions"}


def report_path() -> Path:
    """Where the lift report is read from (see the module docstring)."""
    settings = current_state().settings
    return settings.lift_report or (settings.decision_log or settings.event_log) / "lift.json"


def read_report(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The report, or None and why it cannot be shown."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"the lift report {path} cannot be read: {exc}"
    rows = report.get("rows") if isinstance(report, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"group", "metric", "lift", "low", "high"}
                                              <= set(r) for r in rows):
        return None, f"the lift report {path} is not an offers lift --json report (no rows of lifts)"
    return report, None


def charts(rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Per metric, the lift per member of every group but the per-offer ones, as bars."""
    out = []
    for metric, name in METRICS.items():
        shown = [r for r in rows if r["metric"] == metric and not str(r["group"]).startswith("offer=")]
        if shown:
            out.append((name, bar_chart(f"{name}: lift per treated member", [
                (str(r["group"]), float(r["lift"]), f"{r['lift']:,.3f}") for r in shown])))
    return out


@bp.get("/lift")
@signed_in()
def lift() -> str:
    """The latest lift report's figures, charts and sample-ratio check."""
    path = report_path()
    report, problem = read_report(path)
    rows = report["rows"] if report is not None else []
    headline = {r["metric"]: r for r in rows if r["group"] == "all"}
    return render_template("console/lift.html", session=g.console, report=report, problem=problem, path=path,
                           rows=rows, headline=headline, charts=charts(rows), metrics=METRICS)
