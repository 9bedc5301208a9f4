"""From a member's history and profile to what the decision core needs about them.

:func:`member_inputs` turns a :class:`~models.features.History` (one member, as the
service reads it from its store, or many, as batch jobs load them) into each member's
:class:`~models.member.MemberContext` and :class:`~models.caps.CapCounters`. It is one
vectorised function for every caller, so a member gets the same inputs from the
real-time endpoint, the batch endpoint and ``offers batch``.

Only events strictly before ``as_of`` count, like features:

* tier state: the tier engine over the purchase lines (:func:`models.tiers.tier_states`);
* typical basket: mean basket (sum of a basket's lines) over the last 365 days;
* recent spend (``min_recent_spend``): spend over the last :data:`RECENT_DAYS` days;
* has history: any purchase line; a member without one gets the cold-start policy;
* bought products and categories: every product line (computed only when an offer
  targets buyers);
* segment, birth month, channels, join date and ``attr_*`` attributes: the member's profile;
* points balance and points by expiry: the ledger's account (when the program keeps one),
  with the expiry due at ``as_of`` applied to a copy.

Cap counters merge two sources and take the larger count per offer, so nothing is
counted twice: the history records (exposures and redemptions, which ``offers
materialize`` loaded from the data and events extend) and the online state's counters
(impressions, redemptions and decisions' issues, kept by events and reservations; the
only source for the program's own offers, which have no records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models import points_account
from models.caps import CapCounters
from models.features import History
from models.features.history import UNKNOWN
from models.member import MemberContext
from models.tiers import NAT, TierState, tier_state_list
from models.units import NO_TIME
from runtime.decisions.setup import DecisionSetup, local_time
from runtime.points.challenge_runs import purchases_of, runs
from runtime.stores import MemberProfile, MemberState

RECENT_DAYS = 90
BASKET_DAYS = 365
DAY = 86_400


@dataclass(frozen=True)
class MemberInputs:
    """One member's context and cap counters for the decision core."""

    context: MemberContext
    counters: CapCounters


def member_inputs(setup: DecisionSetup, hist: History, as_of: pd.Timestamp,
                  profiles: Sequence[MemberProfile | None] | None = None,
                  states: Sequence[MemberState | None] | None = None,
                  accounts: Sequence[Mapping[str, int] | None] | None = None) -> list[MemberInputs]:
    """Inputs of every member of ``hist`` at ``as_of`` (naive local), in ``hist`` order.

    ``profiles``, ``states`` and ``accounts`` (points accounts as stored) are aligned with
    ``hist.member_ids`` when given.
    """
    n = hist.n_members
    t = setup.seconds(as_of)
    ids = [str(m) for m in hist.member_ids]
    lm = (hist.line_time < t) & (hist.line_member >= 0)
    mem, times = hist.line_member[lm].astype(np.int64), hist.line_time[lm]
    amounts, baskets, products = hist.line_amount[lm], hist.line_basket[lm], hist.line_product[lm]

    tiers = _tiers(setup, hist.joined_at, mem, times, amounts, as_of)
    lines = np.bincount(mem, minlength=n)
    recent = np.bincount(mem, weights=amounts * (times >= t - RECENT_DAYS * DAY), minlength=n)
    basket = _typical_basket(n, mem, baskets, amounts, times >= t - BASKET_DAYS * DAY)
    bought = _bought(setup, n, mem, products) if setup.catalog.needs_bought.any() else None
    counters = _record_counts(setup, hist, t)
    now = setup.epoch(as_of)
    out = []
    for i, member_id in enumerate(ids):
        profile = profiles[i] if profiles is not None else None
        joined = int(hist.joined_at[i])
        account = accounts[i] if accounts is not None else None
        balance, expiry = _points(setup, account, member_id, now)
        plans = points_account.active_plans(account, now) if account else frozenset()
        state = states[i] if states is not None else None
        challenges = runs(setup, state, purchases_of(setup, hist, i, t)) if setup.program.points.challenges else ()
        context = MemberContext(
            member_id=member_id, tier=tiers[i],
            segment=profile.segment if profile else None,
            birth_month=profile.birth_month if profile else None,
            joined_at=None if joined == NO_TIME else pd.Timestamp(joined, unit="s"),
            channels=frozenset(profile.channels) if profile and profile.channels is not None else None,
            bought_products=bought[0][i] if bought else frozenset(),
            bought_categories=bought[1][i] if bought else frozenset(),
            typical_basket_minor=None if np.isnan(basket[i]) else round(basket[i]),
            recent_spend_minor=round(recent[i]), has_history=bool(lines[i]),
            points_balance=balance, points_expiry=expiry, challenges=challenges, plans=plans,
            attributes=profile.attributes or () if profile else ())
        out.append(MemberInputs(context, _merge_counters(setup, counters[i], state, now)))
    return out


def _points(setup: DecisionSetup, account: Mapping[str, int] | None, member_id: str,
            now: int) -> tuple[int | None, tuple[tuple[int, int], ...]]:
    """The member's spendable balance and points by expiry (local seconds) at ``now`` (epoch);
    (None, ()) when the program keeps no ledger or the account was not read."""
    if account is None or not setup.program.points.enabled:
        return None, ()
    view = points_account.view_at(account, member_id, now)
    expiry = tuple((setup.seconds(local_time(pd.Timestamp(x, unit="s", tz="UTC"), setup.zone)), int(p))
                   for a, x, p in view["lots"] if x and a <= now)
    return int(view["balance"]), expiry


def _tiers(setup: DecisionSetup, joined_at: np.ndarray, mem: np.ndarray, times: np.ndarray,
           amounts: np.ndarray, as_of: pd.Timestamp) -> list[TierState]:
    """Tier states with the tier engine, straight from the arrays (no frame per member)."""
    joined = np.where(joined_at == NO_TIME, NAT, joined_at * 1_000_000_000)
    return tier_state_list(setup.program, mem, times * 1_000_000_000, np.rint(amounts).astype(np.int64),
                           len(joined_at), as_of, joined)


def _typical_basket(n: int, mem: np.ndarray, baskets: np.ndarray, amounts: np.ndarray,
                    window: np.ndarray) -> np.ndarray:
    if not window.any():
        return np.full(n, np.nan)
    mem, baskets = mem[window], baskets[window]
    order = np.lexsort((baskets, mem))
    m, b = mem[order], baskets[order]
    first = np.r_[True, (m[1:] != m[:-1]) | (b[1:] != b[:-1])]  # a member's basket starts here
    count = np.bincount(m[first], minlength=n)
    spent = np.bincount(mem, weights=amounts[window], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, spent / np.maximum(count, 1), np.nan)


def _bought(setup: DecisionSetup, n: int, mem: np.ndarray,
            products: np.ndarray) -> tuple[list[frozenset[str]], list[frozenset[str]]]:
    fc = setup.features
    known = products >= 0
    pairs = np.unique(np.stack([mem[known], products[known].astype(np.int64)], axis=1), axis=0)
    by_member: list[list[int]] = [[] for _ in range(n)]
    for m, p in pairs.tolist():
        by_member[m].append(p)
    prods = [frozenset(str(fc.product_ids[p]) for p in ps) for ps in by_member]
    cats = [frozenset(c for c in (fc.category_levels[fc.product_category[p]] for p in ps) if c != UNKNOWN)
            for ps in by_member]
    return prods, cats


def _record_counts(setup: DecisionSetup, hist: History, t: int) -> list[dict[str, dict[str, int]]]:
    """Per member, {subject: {offer_id: count}} of capped offers from history records."""
    out: list[dict[str, dict[str, int]]] = [{"impression": {}, "redeem": {}} for _ in range(hist.n_members)]
    ids = setup.features.offer_ids
    for subject, members, offers, times in (("impression", hist.exp_member, hist.exp_offer, hist.exp_time),
                                            ("redeem", hist.red_member, hist.red_offer, hist.red_time)):
        windows = setup.record_windows[subject]
        ok = (times < t) & (members >= 0) & (offers >= 0)
        if not ok.any():
            continue
        w = windows[np.maximum(offers, 0)]
        ok &= ~np.isnan(w) & (times >= t - np.where(np.isnan(w), 0, w))
        n_offers = len(ids)
        keys, counts = np.unique(members[ok].astype(np.int64) * n_offers + offers[ok], return_counts=True)
        for key, c in zip(keys.tolist(), counts.tolist(), strict=True):
            out[key // n_offers][subject][str(ids[key % n_offers])] = c
    return out


def _merge_counters(setup: DecisionSetup, records: dict[str, dict[str, int]], state: MemberState | None,
                    now: int) -> CapCounters:
    counts: dict[str, dict[str, int]] = {"impression": dict(records["impression"]), "issue": {},
                                         "redeem": dict(records["redeem"])}
    if state is not None:
        for (subject, offer_id), counter in state.counters.items():
            windows = setup.cap_windows.get(subject)
            if windows is None or offer_id not in windows:
                continue
            window = windows[offer_id]
            n = counter.count_since(None if window is None else now - window)
            if n > counts[subject].get(offer_id, 0):
                counts[subject][offer_id] = n
    return CapCounters(impressions=counts["impression"], issues=counts["issue"], redemptions=counts["redeem"])
