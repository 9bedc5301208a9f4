"""The decision core as it was before it kept exclusions as arrays: a test oracle.

:func:`reference` decides member after member exactly as ``models.decision`` did when it
built every object eagerly (one ``order`` per member, the excluded list and the increments
on the spot), and returns each decision as plain data (:func:`plain`'s shape), so tests can
check that the restructured core answers the same, field for field. It reuses the
building blocks the restructuring did not touch (eligibility, values, ``order``,
``choose``, texts); what it re-states is the part that moved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.arbitration import member_values, order, saturated, weights
from models.caps import NO_COUNTERS, BudgetState, CapCounters, increments, member_cap_flags
from models.catalog import KIND_CODE, Catalog
from models.decision import Decision, _score_reason
from models.eligibility import CODE, REASONS, member_arrays, passed_reasons, static_reasons
from models.member import MemberContext
from models.policy import choose, in_holdout
from models.promotions import CHALLENGE, RETENTION, member_mechanics, offer_text, tier_promo

Plain = tuple[Any, ...]


def plain(d: Decision) -> Plain:
    """A decision as nested tuples of everything a caller can read from it."""
    offers = tuple(tuple(getattr(o, f.name) for f in dataclasses.fields(o)) for o in d.offers)
    return (d.member_id, offers, tuple(tuple(e) for e in d.excluded), d.holdout, d.policy, d.explored,
            d.cold_start, d.fallback, tuple(tuple(i) for i in d.increments), d.seed)


def reference(catalog: Catalog, members: Sequence[MemberContext], candidates: Sequence[str],
              props: np.ndarray | None, *, as_of: pd.Timestamp, channel: str | None,
              counters: Sequence[CapCounters] | None, budget: BudgetState, seeds: Sequence[int],
              contrib: np.ndarray | None = None, feature_names: Sequence[str] | None = None,
              max_offers: int | None = None) -> list[Plain]:
    """Decide for ``members`` in order (``props``: members x candidates or None), the old way."""
    program, settings = catalog.program, catalog.program.decisions
    as_of = pd.Timestamp(as_of)
    members = list(members)
    counters = list(counters) if counters is not None else [NO_COUNTERS] * len(members)
    ids = list(candidates)
    cand = catalog.positions(ids)
    pos = np.maximum(cand, 0)
    m, c = len(members), len(cand)
    props = np.full((m, c), np.nan) if props is None else np.asarray(props, dtype=np.float64)
    ma = member_arrays(catalog, members, as_of)
    codes = static_reasons(catalog, cand, members, ma, as_of, channel)
    mechanics = [member_mechanics(program, mem, as_of) for mem in members]
    kinds = np.where(cand >= 0, catalog.kind[pos], -1)
    for kind, attr in ((CHALLENGE, "challenge_code"), (RETENTION, "retention_code")):
        for j in np.flatnonzero(kinds == KIND_CODE[kind]):
            for i, mech in enumerate(mechanics):
                if codes[i, j] == 0:
                    codes[i, j] = getattr(mech, attr)
    face, value_minor = member_values(catalog, pos, ma)
    levers, weight = weights(catalog, pos, ma, value_minor)
    pop = catalog.popularity[pos]
    known = ~np.isnan(props)
    n_known = known.sum(axis=1)
    mean_known = np.where(n_known > 0, np.where(known, props, 0.0).sum(axis=1) / np.maximum(n_known, 1), np.nan)
    filled = np.where(known, props, np.where(np.isnan(pop)[None, :], mean_known[:, None], pop[None, :]))
    fallback_props = np.where(np.isnan(pop), settings.fallback_prior, pop)
    n_slots = max_offers or settings.max_offers
    out = []
    for i, member in enumerate(members):
        holdout = in_holdout(member.member_id, settings.holdout.salt, settings.holdout.share)
        cold = not member.known_history or n_known[i] == 0
        policy = "holdout" if holdout else "cold_start" if cold else "personalised"
        p_row = fallback_props if policy != "personalised" else filled[i]
        row = codes[i].copy()
        send = catalog.send_cost[pos]
        floor = settings.min_net_value
        if policy == "personalised" and floor is not None:  # "no offer" beats a loss
            row[(row == 0) & (p_row * weight[i] - send < program.to_minor(floor))] = CODE["COST_EXCEEDS_VALUE"]
        freq, capped = member_cap_flags(catalog, pos, counters[i])
        for j in range(c):
            if row[j] == 0 and freq[j]:
                row[j] = CODE["FREQUENCY_CAPPED"]
            elif row[j] == 0 and capped[j]:
                row[j] = CODE["MEMBER_CAP_REACHED"]
        if catalog.budget_keys:
            affordable = budget.affordable(pos)
            row[(row == 0) & ~affordable] = CODE["BUDGET_EXHAUSTED"]
        priority = p_row * weight[i] - send
        rank = order(catalog, pos, priority, value_minor[i])
        exploration = settings.exploration if policy == "personalised" else None
        cols, probs, explored = choose(catalog, pos, row == 0, rank, budget, n_slots, exploration,
                                       np.random.default_rng(seeds[i]), p_row, weight[i], priority)
        tier_rank = member.tier.tier_rank if member.tier is not None else 0
        offers, incs = [], []
        for r, (col, prob) in enumerate(zip(cols, probs, strict=True), start=1):
            p = int(cand[col])
            offer = catalog.offers[p]
            used_fallback = policy != "personalised" or not known[i, col]
            reasons = passed_reasons(offer, member, channel)
            promo = tier_promo(offer, program, tier_rank)
            if promo:
                reasons.append(f"TIER_MECHANIC:{promo}")
            reasons.append(_score_reason(policy, used_fallback, catalog, p))
            if levers[i, col] != 1.0:
                reasons.append(f"LEVER:x{levers[i, col]:.2f}")
            if offer.funder and offer.cost_share:
                reasons.append(f"FUNDED_BY:{offer.funder}:{offer.cost_share:.0%}")
            if not used_fallback and contrib is not None and feature_names is not None:
                values = np.asarray(contrib[i][col], dtype=np.float64)[: len(feature_names)]
                top = np.argsort(-np.abs(values), kind="stable")[:3]
                reasons.extend(f"FEATURE:{feature_names[k]}={values[k]:+.3f}" for k in top if values[k] != 0)
            if explored:
                reasons.append("EXPLORATION")
            offers.append((offer.offer_id, r, offer.kind, offer.title,
                           offer_text(program, offer, member, mechanics[i], float(face[i, col]), as_of),
                           float(face[i, col]), float(value_minor[i, col]), float(p_row[col]), float(priority[col]),
                           explored, prob, promo, tuple(reasons), offer.requires_coupon, used_fallback,
                           None, float(send[col])))
            incs.extend(tuple(inc) for inc in increments(catalog, p))
        excluded = [(ids[j], REASONS[row[j]]) for j in range(c) if row[j]]
        if cols:
            full = saturated(catalog, pos, cols) & (row == 0)
            full[cols] = False
            excluded.extend((ids[j], "DIVERSITY_LIMIT") for j in range(c) if full[j])
        out.append((member.member_id, tuple(offers), tuple(excluded), policy == "holdout", policy, explored,
                    policy == "cold_start", any(o[14] for o in offers), tuple(incs), seeds[i]))
    return out
