"""Budgets and contact policy at a decision's moment: which counters, what allowances, which caps.

The decision core and the store speak in counters and limits; this module turns the program's
budgets (:mod:`models.budgets`) and contact policy (:mod:`models.limits_config`) into them for
one moment, in the program's time zone:

* :func:`budget_refs` - the budget counters (key, current period id) a decision reads;
* :func:`usage` - those counters as the decision core's :class:`~models.caps.BudgetUsage`;
* :func:`claims` - what one issued offer reserves from each of its budgets (limits, paced
  allowances, charge, the counter's TTL);
* :func:`contact_limits` - the contact caps a decision on a channel counts against;
* :func:`quiet` - whether the channel is in quiet hours (then nothing is sent: ``QUIET_HOURS``).

Quiet hours are a function of the moment alone, so checking them here, at every decision
(real time and batch alike), is as strict as checking them in the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from models.budgets import counter_ttl, paced, period_id
from models.caps import BudgetUsage
from models.catalog import Catalog, Offer
from models.program import Program
from models.units import ALL_USED
from runtime.stores import BudgetClaim, BudgetCounter, BudgetRef, ContactLimit


def budget_refs(catalog: Catalog, local: pd.Timestamp, offer_ids: Sequence[str] | None = None) -> list[BudgetRef]:
    """The budgets' counters for the period containing ``local`` (naive program time): every
    budget's, or only those the offers ``offer_ids`` draw on (a decision reads its candidates')."""
    rules = catalog.budget_rules
    if offer_ids is not None:
        wanted = sorted({b for o in offer_ids for b in catalog.budget_links[catalog.index[o]]})
        rules = tuple(rules[b] for b in wanted)
    return [(rule.key, period_id(rule.period, local)) for rule in rules]


def usage(catalog: Catalog, counters: Mapping[BudgetRef, BudgetCounter] | None, local: pd.Timestamp) -> BudgetUsage:
    """The current periods' consumption by budget key; unknown (store down) counts as exhausted.
    A counter not in ``counters`` counts as unused (the caller reads those of its candidates)."""
    keys = catalog.budget_keys
    if counters is None:
        return BudgetUsage(count=dict.fromkeys(keys, ALL_USED), minor=dict.fromkeys(keys, ALL_USED))
    refs = budget_refs(catalog, local)
    found = [counters.get(ref, BudgetCounter()) for ref in refs]
    return BudgetUsage(count={k: c.count for k, c in zip(keys, found, strict=True)},
                       minor={k: c.minor for k, c in zip(keys, found, strict=True)})


def claims(catalog: Catalog, offer: Offer, local: pd.Timestamp) -> tuple[BudgetClaim, ...]:
    """What issuing ``offer`` at ``local`` reserves from each budget it draws on (a ``total``
    counter gets the store's budget TTL, renewed by every reservation)."""
    out = []
    for b in catalog.budget_links[catalog.index[offer.offer_id]]:
        rule = catalog.budget_rules[b]
        count, minor = paced(rule, local) if rule.pacing != "none" else (None, None)
        ttl = None if rule.period == "total" else counter_ttl(rule.period, local, 0)
        out.append(BudgetClaim(rule.key, period_id(rule.period, local), rule.count, rule.minor, offer.charge_minor,
                               ttl, paced_count=count, paced_minor=minor))
    return tuple(out)


def contact_limits(program: Program, channel: str | None, local: pd.Timestamp) -> tuple[ContactLimit, ...]:
    """The contact caps a decision on ``channel`` at ``local`` counts against, with their period ids."""
    return tuple(ContactLimit(c.name, period_id(c.period, local), c.max_offers, c.max_contacts)
                 for c in program.contact_policy.caps_for(channel))


def quiet(program: Program, channel: str | None, local: pd.Timestamp) -> bool:
    """Whether ``channel`` is in quiet hours at ``local``: no offer is sent (``QUIET_HOURS``)."""
    return program.contact_policy.quiet(channel, local)
