"""Budget periods and pacing: which counter a budget draws on now, and how much of it may be spent.

A budget (an offer's ``budget:``, an ``offer_defaults`` kind's, or an entry of the program's
``budgets:`` section shared by an offer list, a campaign, a funder or a kind) limits issues
(``count``) and/or money (``money``: the offers' full cost) per **period**, in the program's
time zone:

* ``day`` - from local midnight to the next; counter id ``d2024-06-03``;
* ``week`` - ISO weeks, Monday 00:00 to the next Monday; counter id ``w2024-23``;
* ``month`` - the calendar month; counter id ``m2024-06``;
* ``total`` - no period: one counter (``total``) for the budget's whole life.

Each period has its own counter in the store, so a new period starts from zero by itself
(no reset job); the counter's key lives until its period has ended plus :data:`GRACE_SECONDS`.

**Pacing** spreads a budget over its period, released slot by slot: a day has 24 hourly
slots, a week 7 daily slots, a month one slot per day. With ``s = (slots started) / (slots in
the period)`` at the decision (local clock time: 1/24 from midnight, 2/24 from 01:00... 1 in
the last slot) and ``L`` the period's limit, at most ``allowance(L, s)`` may be spent so far:

* ``none`` - ``L`` (spend as fast as traffic comes);
* ``even`` - ``ceil(L x s)``: the same share in every slot;
* ``front_loaded`` - ``ceil(L x (2s - s^2))``: the release rate starts at twice the even rate
  and falls linearly to zero at the period's end, so three quarters of the budget may go in
  the first half (the curve Adobe's "front-loaded" capping describes: more early, all of it
  by the end).

A slot's share is released at its start, so the first hour of a day can spend already. An
offer refused only by pacing (the full limit would still allow it) is ``BUDGET_PACED``;
refused by the limit itself, ``BUDGET_EXHAUSTED``. Pacing needs a bounded period: with
``total`` it is a config error. Everything here is pure: the runtime passes the local moment in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pandas as pd

Period = Literal["day", "week", "month", "total"]
Pacing = Literal["none", "even", "front_loaded"]
PERIODS: tuple[str, ...] = ("day", "week", "month", "total")
#: How long a period's counter outlives its period (late reads, reports, a DST hour).
GRACE_SECONDS = 2 * 86_400


@dataclass(frozen=True)
class BudgetRule:
    """One budget as the catalog keeps it: its key, limits (None: unlimited), period and pacing."""

    key: str
    count: int | None
    minor: int | None
    period: str = "total"
    pacing: str = "none"


def period_bounds(period: str, local: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Start and end (naive local) of the ``period`` containing ``local``; None for ``total``."""
    day = pd.Timestamp(local).normalize()
    if period == "day":
        return day, day + pd.Timedelta(days=1)
    if period == "week":
        start = day - pd.Timedelta(days=day.day_of_week)
        return start, start + pd.Timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        return start, start + pd.DateOffset(months=1)
    if period == "total":
        return None
    raise ValueError(f"unknown budget period {period!r}; one of {', '.join(PERIODS)}")


def period_id(period: str, local: pd.Timestamp) -> str:
    """The counter id of the ``period`` containing ``local`` (``d2024-06-03``, ``w2024-23``...)."""
    ts = pd.Timestamp(local)
    if period == "day":
        return f"d{ts:%Y-%m-%d}"
    if period == "week":
        year, week, _ = ts.isocalendar()
        return f"w{year:04d}-{week:02d}"
    if period == "month":
        return f"m{ts:%Y-%m}"
    if period == "total":
        return "total"
    raise ValueError(f"unknown budget period {period!r}; one of {', '.join(PERIODS)}")


def released_share(period: str, local: pd.Timestamp) -> float:
    """The share of the period's pacing slots started by ``local`` (hours of a day, days of a week
    or month), in (0, 1]; 1 for ``total``."""
    bounds = period_bounds(period, local)
    if bounds is None:
        return 1.0
    start, end = bounds
    ts = pd.Timestamp(local)
    if period == "day":
        return (int((ts - start) // pd.Timedelta(hours=1)) + 1) / 24
    days = (end - start).days
    return min(int((ts - start) // pd.Timedelta(days=1)) + 1, days) / days


def allowance(limit: int, pacing: str, share: float) -> int:
    """How much of ``limit`` may be spent once ``share`` of the period is released (module docstring)."""
    if pacing == "none" or share >= 1.0:
        return limit
    if pacing == "even":
        curve = share
    elif pacing == "front_loaded":
        curve = 2 * share - share * share
    else:
        raise ValueError(f"unknown pacing {pacing!r}; one of none, even, front_loaded")
    return min(limit, math.ceil(limit * curve - 1e-9))


def paced(rule: BudgetRule, local: pd.Timestamp) -> tuple[int | None, int | None]:
    """The rule's count and money allowances at ``local`` (None where unlimited)."""
    share = released_share(rule.period, local)
    return (None if rule.count is None else allowance(rule.count, rule.pacing, share),
            None if rule.minor is None else allowance(rule.minor, rule.pacing, share))


def counter_ttl(period: str, local: pd.Timestamp, total_ttl: int) -> int:
    """Seconds a period's counter must live from ``local``: to the period's end plus the grace
    (``total_ttl`` for ``total``, renewed by every reservation)."""
    bounds = period_bounds(period, local)
    if bounds is None:
        return total_ttl
    return max(int((bounds[1] - pd.Timestamp(local)).total_seconds()), 1) + GRACE_SECONDS
