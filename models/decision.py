"""The decision core: candidates and propensities in, a ranked, explained decision out.

:func:`decide` serves one member (the real-time service), :func:`decide_batch` many
(audience-wide campaigns); both run :func:`_decide`, which checks eligibility and
scores as (members x candidates) arrays and then fills each member's slate in member
order, so global budgets are consumed first come, first served across a batch.

The core never calls the model: the caller passes propensities aligned with the
candidates (NaN: no score) and, optionally, LightGBM ``pred_contrib`` rows for reasons.
Counters come in as plain mappings (:mod:`models.caps`); every decision lists the
increments it implies. Randomness comes only from ``seed``.

Policies (``Decision.policy``):

* ``personalised``: model propensities; an offer without a score falls back to its
  popularity, else the member's mean propensity (flagged ``fallback``).
* ``cold_start``: a member without history or without any score: popularity where
  known, else ``decisions.fallback_prior`` (so offers rank by value).
* ``holdout``: the control group, always the same non-personalised fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from models.arbitration import member_values, order, saturated, weights
from models.caps import (
    NO_COUNTERS,
    BudgetState,
    BudgetUsage,
    CapCounters,
    CounterIncrement,
    increments,
    member_cap_flags,
)
from models.catalog import KIND_CODE, Catalog
from models.eligibility import CODE, REASONS, member_arrays, passed_reasons, static_reasons
from models.member import MemberContext
from models.policy import choose, in_holdout, seed_for
from models.promotions import (
    CHALLENGE,
    RETENTION,
    Mechanics,
    member_mechanics,
    offer_text,
    tier_promo,
)

TOP_FEATURES = 3


@dataclass(frozen=True)
class RankedOffer:
    """One offer in a decision, with how it was scored, chosen and why."""

    offer_id: str
    rank: int
    kind: str
    title: str
    text: str | None
    value: float
    value_minor: float
    propensity: float
    priority: float
    explored: bool
    probability: float
    tier_promo: str | None
    reasons: tuple[str, ...]
    requires_coupon: bool
    fallback: bool


class Excluded(NamedTuple):
    """A candidate that did not make it, with its reason code (see :data:`REASONS`)."""

    offer_id: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """The outcome for one member: offers in rank order, exclusions, flags and increments."""

    member_id: str
    offers: tuple[RankedOffer, ...]
    excluded: tuple[Excluded, ...]
    holdout: bool
    policy: str
    explored: bool
    cold_start: bool
    fallback: bool
    increments: tuple[CounterIncrement, ...]
    seed: int


def decide(catalog: Catalog, member: MemberContext, candidates: Sequence[str], propensities: object = None, *,
           as_of: pd.Timestamp, channel: str | None = None, counters: CapCounters | None = None,
           budgets: BudgetUsage | BudgetState | None = None, contributions: np.ndarray | None = None,
           feature_names: Sequence[str] | None = None, seed: int = 0, max_offers: int | None = None) -> Decision:
    """Decide which offers one member gets.

    Parameters
    ----------
    catalog
        The offer catalog (it carries the program).
    member
        The member's context.
    candidates
        Offer ids to consider; ids the catalog lacks come back excluded as UNKNOWN_OFFER.
    propensities
        Model propensities aligned with ``candidates`` (None or NaN: no score).
    as_of
        Decision time (naive, in the program's local time).
    channel
        The channel the offers go to; None skips channel checks.
    counters
        The member's cap counters; budgets: global budget usage so far (a
        :class:`~models.caps.BudgetState` is consumed in place).
    contributions, feature_names
        Optional ``pred_contrib`` rows aligned with ``candidates`` (a last bias column
        is ignored) and their feature names, for the top-feature reasons.
    seed
        Seed of the exploration draw (derive it from the decision id with
        :func:`models.policy.seed_for`); the same inputs and seed give the same decision.
    max_offers
        Slate size; default ``decisions.max_offers``.
    """
    props = None if propensities is None else np.asarray(propensities, dtype=np.float64)[None, :]
    contrib = None if contributions is None else np.asarray(contributions)[None]
    state = budgets if isinstance(budgets, BudgetState) else BudgetState(catalog, budgets)
    return _decide(catalog, [member], candidates, props, as_of, channel, [counters or NO_COUNTERS], state,
                   contrib, feature_names, [seed], max_offers)[0]


def decide_batch(catalog: Catalog, members: Sequence[MemberContext], candidates: Sequence[str],
                 propensities: np.ndarray | None = None, *, as_of: pd.Timestamp, channel: str | None = None,
                 counters: Sequence[CapCounters] | None = None, budgets: BudgetUsage | BudgetState | None = None,
                 contributions: np.ndarray | None = None, feature_names: Sequence[str] | None = None,
                 seed: int = 0, max_offers: int | None = None) -> list[Decision]:
    """Decide for many members at once (same candidates; ``propensities`` is members x candidates).

    Budgets are consumed in member order across the whole batch. Member ``i`` gets the
    seed ``seed_for(seed, member_id)``, so its decision equals ``decide(...,
    seed=seed_for(seed, member_id))`` when budgets do not bind.
    """
    props = None if propensities is None else np.asarray(propensities, dtype=np.float64)
    state = budgets if isinstance(budgets, BudgetState) else BudgetState(catalog, budgets)
    seeds = [seed_for(seed, m.member_id) for m in members]
    return _decide(catalog, list(members), candidates, props, as_of, channel,
                   list(counters) if counters is not None else [NO_COUNTERS] * len(members), state,
                   None if contributions is None else np.asarray(contributions), feature_names, seeds, max_offers)


def decisions_frame(decisions: Sequence[Decision]) -> pd.DataFrame:
    """A tidy frame: one row per returned offer (for campaign exports and analysis)."""
    rows = [{"member_id": d.member_id, "rank": o.rank, "offer_id": o.offer_id, "kind": o.kind, "text": o.text,
             "priority": o.priority, "propensity": o.propensity, "probability": o.probability,
             "explored": o.explored, "tier_promo": o.tier_promo, "fallback": o.fallback,
             "holdout": d.holdout, "policy": d.policy}
            for d in decisions for o in d.offers]
    columns = ["member_id", "rank", "offer_id", "kind", "text", "priority", "propensity", "probability",
               "explored", "tier_promo", "fallback", "holdout", "policy"]
    return pd.DataFrame(rows, columns=columns)


def _decide(catalog: Catalog, members: list[MemberContext], candidates: Sequence[str], props: np.ndarray | None,
            as_of: pd.Timestamp, channel: str | None, counters: list[CapCounters], budget: BudgetState,
            contrib: np.ndarray | None, feature_names: Sequence[str] | None, seeds: list[int],
            max_offers: int | None) -> list[Decision]:
    program = catalog.program
    settings = program.decisions
    as_of = pd.Timestamp(as_of)
    ids = list(candidates)
    cand = catalog.positions(ids)
    pos = np.maximum(cand, 0)
    m, c = len(members), len(cand)
    if props is None:
        props = np.full((m, c), np.nan)
    if props.shape != (m, c):
        raise ValueError(f"propensities have shape {props.shape}, but {m} members x {c} candidates were given")
    ma = member_arrays(catalog, members, as_of)
    codes = static_reasons(catalog, cand, members, ma, as_of, channel)
    mechanics = [member_mechanics(program, mem, as_of) for mem in members]
    _apply_mechanics(catalog, cand, codes, mechanics)
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
        freq, capped = member_cap_flags(catalog, pos, counters[i])
        np.putmask(row, (row == 0) & freq, CODE["FREQUENCY_CAPPED"])
        np.putmask(row, (row == 0) & capped, CODE["MEMBER_CAP_REACHED"])
        if catalog.budget_keys:
            np.putmask(row, (row == 0) & ~budget.affordable(pos), CODE["BUDGET_EXHAUSTED"])
        eligible = row == 0
        priority = p_row * weight[i]
        rank = order(catalog, pos, priority, value_minor[i])
        rng = np.random.default_rng(seeds[i])
        exploration = settings.exploration if policy == "personalised" else None
        cols, probs, explored = choose(catalog, pos, eligible, rank, budget, n_slots, exploration, rng,
                                       p_row, weight[i])
        out.append(_build(catalog, member, i, ids, cand, row, cols, probs, explored, policy, known[i], p_row, priority,
                          face[i], value_minor[i], levers[i], mechanics[i], as_of, channel, contrib, feature_names,
                          seeds[i]))
    return out


def _apply_mechanics(catalog: Catalog, cand: np.ndarray, codes: np.ndarray, mechanics: list[Mechanics]) -> None:
    """Exclude challenge and retention offers for members the mechanic does not apply to."""
    kinds = np.where(cand >= 0, catalog.kind[np.maximum(cand, 0)], -1)
    for kind, attr in ((CHALLENGE, "challenge_code"), (RETENTION, "retention_code")):
        cols = np.flatnonzero(kinds == KIND_CODE[kind])
        if len(cols):
            member_code = np.array([getattr(mech, attr) for mech in mechanics], dtype=np.int64)[:, None]
            block = codes[:, cols]
            codes[:, cols] = np.where(block == 0, member_code, block)


def _build(catalog: Catalog, member: MemberContext, i: int, ids: list[str], cand: np.ndarray, row: np.ndarray, cols: list[int],
           probs: list[float], explored: bool, policy: str, known: np.ndarray, p_row: np.ndarray,
           priority: np.ndarray, face: np.ndarray, value_minor: np.ndarray, levers: np.ndarray, mech: Mechanics,
           as_of: pd.Timestamp, channel: str | None, contrib: np.ndarray | None,
           feature_names: Sequence[str] | None, seed: int) -> Decision:
    program = catalog.program
    tier_rank = member.tier.tier_rank if member.tier is not None else 0
    offers, incs = [], []
    for r, (col, prob) in enumerate(zip(cols, probs, strict=True), start=1):
        p = int(cand[col])
        offer = catalog.offers[p]
        used_fallback = policy != "personalised" or not known[col]
        reasons = passed_reasons(offer, member, channel)
        promo = tier_promo(offer, program, tier_rank)
        if promo:
            reasons.append(f"TIER_MECHANIC:{promo}")
        reasons.append(_score_reason(policy, used_fallback, catalog, p))
        if levers[col] != 1.0:
            reasons.append(f"LEVER:x{levers[col]:.2f}")
        if offer.funder and offer.cost_share:
            reasons.append(f"FUNDED_BY:{offer.funder}:{offer.cost_share:.0%}")
        if not used_fallback and contrib is not None and feature_names is not None:
            reasons.extend(_top_features(contrib[i][col], feature_names))
        if explored:
            reasons.append("EXPLORATION")
        offers.append(RankedOffer(
            offer_id=offer.offer_id, rank=r, kind=offer.kind, title=offer.title,
            text=offer_text(program, offer, member, mech, float(face[col]), as_of),
            value=float(face[col]), value_minor=float(value_minor[col]), propensity=float(p_row[col]),
            priority=float(priority[col]), explored=explored, probability=prob, tier_promo=promo,
            reasons=tuple(reasons), requires_coupon=offer.requires_coupon, fallback=used_fallback))
        incs.extend(increments(catalog, p))
    bad = np.flatnonzero(row)
    excluded = [Excluded(ids[j], REASONS[code]) for j, code in zip(bad.tolist(), row[bad].tolist(), strict=True)]
    if cols:
        full = saturated(catalog, np.maximum(cand, 0), cols) & (row == 0)
        full[cols] = False
        excluded.extend(Excluded(ids[j], "DIVERSITY_LIMIT") for j in np.flatnonzero(full).tolist())
    return Decision(member_id=member.member_id, offers=tuple(offers), excluded=tuple(excluded),
                    holdout=policy == "holdout", policy=policy, explored=explored, cold_start=policy == "cold_start",
                    fallback=any(o.fallback for o in offers), increments=tuple(incs), seed=seed)


def _score_reason(policy: str, used_fallback: bool, catalog: Catalog, p: int) -> str:
    if policy == "holdout":
        return "HOLDOUT_FALLBACK"
    if not used_fallback:
        return "MODEL_PROPENSITY"
    source = "POPULARITY" if not np.isnan(catalog.popularity[p]) else (
        "VALUE" if policy == "cold_start" else "MEMBER_MEAN")
    return f"{'COLD_START' if policy == 'cold_start' else 'NEW_OFFER'}_FALLBACK:{source}"


def _top_features(row: np.ndarray, names: Sequence[str]) -> list[str]:
    values = np.asarray(row, dtype=np.float64)[: len(names)]
    top = np.argsort(-np.abs(values), kind="stable")[:TOP_FEATURES]
    return [f"FEATURE:{names[k]}={values[k]:+.3f}" for k in top if values[k] != 0]
