"""The offers page: the catalog with each offer's status at the service's clock, its caps, every
budget's burn in its current period (issues and money reserved against its limit) as a server-rendered chart, and each
offer's issued and redeemed counts and redemption rate from the latest ``offers lift`` report
(the same file the lift page reads: counted over the durable logs, not per page view).

Each offer's live status (active, paused, retired: :mod:`runtime.catalog`) is shown too; admin
sessions get a pause/resume button and an edit link per offer (:mod:`.offer_forms`)."""

from __future__ import annotations

from typing import Any

from flask import g, render_template, request

from runtime.decisions import campaign_limits
from runtime.stores import StoreUnavailable
from service.console.blueprint import bp
from service.console.charts import bar_chart
from service.console.lift_page import read_report, report_path
from service.console.model_page import page_message
from service.console.session import signed_in
from service.state import current_decisions, current_state


def status(offer: Any, now: Any) -> str:
    """``upcoming``, ``active`` or ``ended`` at the (local, naive) moment ``now``."""
    if offer.starts_at is not None and offer.starts_at > now:
        return "upcoming"
    if offer.ends_at is not None and offer.ends_at <= now:
        return "ended"
    return "active"


def budgets(catalog: Any, now: Any) -> tuple[list[dict[str, Any]], str | None]:
    """Each budget's limits and use in its current period at ``now`` (local) from the store (one
    read), and an error when it is away. Shared budgets (``budgets:``) are listed with their offers."""
    limits: dict[str, dict[str, Any]] = {}
    refs = campaign_limits.budget_refs(catalog, now)
    for rule, (_, period) in zip(catalog.budget_rules, refs, strict=True):
        limits[rule.key] = {"key": rule.key, "count_limit": rule.count, "minor_limit": rule.minor,
                            "period": period, "pacing": rule.pacing, "offers": []}
    for offer in catalog.offers:
        for key in offer.budget_keys:
            limits[key]["offers"].append(offer.offer_id)
    try:
        usage = current_state().store.budget_usage(refs)
    except StoreUnavailable:
        return list(limits.values()), "the online store is unavailable: budget use is unknown"
    for (key, _), used in usage.items():
        entry = limits[key]
        entry["count"], entry["minor"] = used.count, used.minor
        share = [used.count / entry["count_limit"] if entry["count_limit"] else None,
                 used.minor / entry["minor_limit"] if entry["minor_limit"] else None]
        entry["burn"] = max((s for s in share if s is not None), default=None)
    return list(limits.values()), None


def funnel_rows(report: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The report's per-offer counts when every row is well formed, else None (never a broken page)."""
    rows = report.get("funnel") if isinstance(report, dict) else None
    if not isinstance(rows, list):
        return None

    def count(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    ok = all(isinstance(r, dict) and isinstance(r.get("offer_id"), str) and count(r.get("issued"))
             and count(r.get("redeemed")) and (r.get("rate") is None or isinstance(r.get("rate"), int | float))
             for r in rows)
    return rows if ok else None


@bp.get("/offers")
@signed_in()
def offers() -> str:
    """The catalog and budget burn (see the module docstring)."""
    setup = current_decisions().require().setup
    now = setup.moment().local
    catalog = setup.catalog.offers
    rows = [{"offer": o, "status": status(o, now), "live": setup.withheld.get(o.offer_id, "active")}
            for o in catalog]
    live_counts = {s: sum(r["live"] == s for r in rows) for s in ("paused", "retired")}
    found, error = budgets(setup.catalog, now)
    chart = bar_chart("Budget burn: share of each budget's limit reserved so far",
                      [(b["key"], b["burn"], f"{b['burn']:.0%}") for b in found if b.get("burn") is not None],
                      maximum=1.0) if found and error is None else None
    counts = {s: sum(r["status"] == s for r in rows) for s in ("active", "upcoming", "ended")}
    path = report_path()
    report, funnel_error = read_report(path)
    funnel = funnel_rows(report)
    if report is not None and funnel is None:
        funnel_error = f"the lift report {path} has no readable issued and redeemed counts (made by an older offers lift?)"
    return render_template("console/offers.html", session=g.console, rows=rows, budgets=found,
                           budget_error=error, chart=chart, now=now, counts=counts, funnel=funnel,
                           funnel_until=(report or {}).get("until"), funnel_error=funnel_error, funnel_path=path,
                           live_counts=live_counts, catalog_version=setup.catalog_version,
                           message=page_message(request.args))
