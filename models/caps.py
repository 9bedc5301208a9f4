"""Caps and budgets: the counters a decision reads, and the increments it reports.

The core is pure: the caller passes the counters it keeps (the service in Redis, a
batch job in memory) as plain mappings, and gets back, with every decision, the
increments that decision implies. Applying them is the caller's job.

* Member caps (per offer, within the offer's ``caps.window_days``): impressions
  (FREQUENCY_CAPPED), issues and redemptions (MEMBER_CAP_REACHED). An offer passes
  while ``count < limit``; a returned offer adds one impression and one issue.
* Global budgets (per budget key, shared by offers that name the same key, a campaign or a
  funder): a count of issues and/or money per period, paced (:mod:`models.budgets`). A
  returned offer *reserves* one issue and its full cost from each budget it draws on at
  once, so a budget holds even if every issued offer is redeemed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from models.budgets import paced
from models.catalog import Catalog


@dataclass(frozen=True)
class CapCounters:
    """One member's counters, each keyed by offer id, counted within the offer's cap window."""

    impressions: Mapping[str, int] = field(default_factory=dict)
    issues: Mapping[str, int] = field(default_factory=dict)
    redemptions: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetUsage:
    """Global budget consumption so far, keyed by budget key."""

    count: Mapping[str, int] = field(default_factory=dict)
    minor: Mapping[str, int] = field(default_factory=dict)


class CounterIncrement(NamedTuple):
    """One counter a decision would increment: ``scope`` member or global, ``subject``
    impression, issue, budget_count or budget_minor, ``key`` an offer id or budget key."""

    scope: str
    subject: str
    key: str
    amount: int
    window_days: int | None = None


NO_COUNTERS = CapCounters()


def member_cap_flags(catalog: Catalog, cand: np.ndarray, counters: CapCounters) -> tuple[np.ndarray, np.ndarray]:
    """Which candidates hit a frequency cap and which a member cap.

    Returns
    -------
    frequency, member
        Boolean arrays aligned with ``cand`` (catalog positions).
    """
    freq = _reached(catalog, cand, catalog.cap_impressions, counters.impressions)
    issued = _reached(catalog, cand, catalog.cap_issues, counters.issues)
    redeemed = _reached(catalog, cand, catalog.cap_redemptions, counters.redemptions)
    return freq, issued | redeemed


def _reached(catalog: Catalog, cand: np.ndarray, limits: np.ndarray, counts: Mapping[str, int]) -> np.ndarray:
    lim = limits[cand]
    out = np.zeros(len(cand), dtype=bool)
    if not counts:
        return out
    offers = catalog.offers
    for j in np.flatnonzero(lim > 0):
        if counts.get(offers[cand[j]].offer_id, 0) >= lim[j]:
            out[j] = True
    return out


class BudgetState:
    """Remaining global budget per budget key, consumed as offers are chosen (mutable).

    ``usage`` is keyed by budget key and counts the current period of each budget (the caller
    reads the period's counter, :func:`models.budgets.period_id`). With ``as_of`` (naive local)
    the paced allowance (:func:`models.budgets.paced`) binds too: an offer that fits the
    period's limit but not the allowance is paced, not exhausted. An offer drawing on several
    budgets (its own, a campaign's, a funder's) must fit every one of them.
    """

    def __init__(self, catalog: Catalog, usage: BudgetUsage | None = None, as_of: pd.Timestamp | None = None):
        usage = usage or BudgetUsage()
        keys = catalog.budget_keys
        self.catalog = catalog
        used_n = np.array([usage.count.get(k, 0) for k in keys], dtype=np.int64)
        used_m = np.array([usage.minor.get(k, 0) for k in keys], dtype=np.int64)
        self.count = catalog.budget_count_limit - used_n
        self.minor = catalog.budget_minor_limit - used_m
        self.paced_count, self.paced_minor = self.count.copy(), self.minor.copy()
        if as_of is not None:
            for b, rule in enumerate(catalog.budget_rules):
                if rule.pacing != "none":
                    n, m = paced(rule, as_of)
                    if n is not None:
                        self.paced_count[b] = n - used_n[b]
                    if m is not None:
                        self.paced_minor[b] = m - used_m[b]

    def copy(self) -> BudgetState:
        """An independent copy (to simulate a slate without consuming the real budget)."""
        twin = object.__new__(BudgetState)
        twin.catalog, twin.count, twin.minor = self.catalog, self.count.copy(), self.minor.copy()
        twin.paced_count, twin.paced_minor = self.paced_count.copy(), self.paced_minor.copy()
        return twin

    def refusals(self, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which candidates (catalog positions) a budget refuses: (exhausted, paced only)."""
        cat = self.catalog
        lo, lb = cat.link_offer, cat.link_budget
        charge = cat.charge[lo]
        full = (self.count[lb] >= 1) & (self.minor[lb] >= charge)
        pace = (self.paced_count[lb] >= 1) & (self.paced_minor[lb] >= charge)
        exhausted = np.zeros(len(cat), dtype=bool)
        slowed = np.zeros(len(cat), dtype=bool)
        exhausted[lo[~full]] = True
        slowed[lo[~pace]] = True
        return exhausted[cand], slowed[cand] & ~exhausted[cand]

    def affordable(self, cand: np.ndarray) -> np.ndarray:
        """Whether each candidate (catalog positions) still fits its budgets and their pacing."""
        if not len(self.catalog.link_offer):
            return np.ones(len(cand), dtype=bool)
        exhausted, slowed = self.refusals(cand)
        return ~(exhausted | slowed)

    def consume(self, position: int) -> None:
        """Reserve one issue and the offer's cost from each of its budgets."""
        charge = self.catalog.charge[position]
        for b in self.catalog.budget_links[position]:
            self.count[b] -= 1
            self.minor[b] -= charge
            self.paced_count[b] -= 1
            self.paced_minor[b] -= charge


def increments(catalog: Catalog, position: int) -> list[CounterIncrement]:
    """The counters returning the offer at ``position`` increments."""
    offer = catalog.offers[position]
    window = offer.caps.window_days
    out = [CounterIncrement("member", "impression", offer.offer_id, 1, window),
           CounterIncrement("member", "issue", offer.offer_id, 1, window)]
    for key in offer.budget_keys:
        out.append(CounterIncrement("global", "budget_count", key, 1))
        if offer.charge_minor:
            out.append(CounterIncrement("global", "budget_minor", key, offer.charge_minor))
    return out
