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

Objects only where they are read: the arbitration leaves, per member, arrays (the
candidates' reason codes and the chosen columns). A :class:`RankedOffer` is built for
each *returned* offer only; ``Decision.excluded`` and ``Decision.increments`` are built
from the arrays the first time they are read. Most callers never read them (batch lines
without ``include_excluded``, audience files, the service's commit), and over 100
candidates a member has dozens of exclusions: allocating a tuple for each was a large
share of a batch's decision time (much of it in the garbage collections they trigger).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from models.arbitration import member_values, net_values, order, value_terms
from models.caps import (
    NO_COUNTERS,
    BudgetState,
    BudgetUsage,
    CapCounters,
    member_cap_flags,
)
from models.catalog import KIND_CODE, Catalog
from models.decision_result import (
    ArbitrationArrays,
    Decision,
    Excluded,
    RankedOffer,
    decisions_frame,
)
from models.eligibility import CODE, member_arrays, passed_reasons, static_reasons
from models.member import MemberContext
from models.points import basket_points
from models.policy import choose, in_holdout, seed_for
from models.promotions import (
    CHALLENGE,
    RETENTION,
    Mechanics,
    member_mechanics,
    offer_text,
    tier_promo,
)
from models.request_context import RequestContext
from models.rule_checks import rule_checks

TOP_FEATURES = 3

__all__ = ["Decision", "Excluded", "RankedOffer", "decide", "decide_batch", "decisions_frame"]


def decide(catalog: Catalog, member: MemberContext, candidates: Sequence[str], propensities: object = None, *,
           as_of: pd.Timestamp, channel: str | None = None, counters: CapCounters | None = None,
           budgets: BudgetUsage | BudgetState | None = None, contributions: np.ndarray | None = None,
           feature_names: Sequence[str] | None = None, seed: int = 0, max_offers: int | None = None,
           uplift: object = None, request: RequestContext | None = None) -> Decision:
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
    uplift
        Incremental conversion probabilities from an uplift model, aligned with ``candidates``
        (None or NaN: no uplift score); where given, the offer is ranked by uplift x value -
        cost (:func:`models.arbitration.net_values`) and ``propensities`` are the treated-arm
        probabilities.
    request
        The request's context (store, cart, device, location, custom keys) that targeting
        rules read; None: no context (rules on it fail).
    """
    props = None if propensities is None else np.asarray(propensities, dtype=np.float64)[None, :]
    upl = None if uplift is None else np.asarray(uplift, dtype=np.float64)[None, :]
    contrib = None if contributions is None else np.asarray(contributions)[None]
    state = budgets if isinstance(budgets, BudgetState) else BudgetState(catalog, budgets, pd.Timestamp(as_of))
    return _decide(catalog, [member], candidates, props, as_of, channel, [counters or NO_COUNTERS], state,
                   contrib, feature_names, [seed], max_offers, upl, request)[0]


def decide_batch(catalog: Catalog, members: Sequence[MemberContext], candidates: Sequence[str],
                 propensities: np.ndarray | None = None, *, as_of: pd.Timestamp, channel: str | None = None,
                 counters: Sequence[CapCounters] | None = None, budgets: BudgetUsage | BudgetState | None = None,
                 contributions: np.ndarray | None = None, feature_names: Sequence[str] | None = None,
                 seed: int = 0, max_offers: int | None = None, uplift: np.ndarray | None = None,
                 request: RequestContext | None = None) -> list[Decision]:
    """Decide for many members at once (same candidates; ``propensities`` is members x candidates).

    Budgets are consumed in member order across the whole batch. Member ``i`` gets the
    seed ``seed_for(seed, member_id)``, so its decision equals ``decide(...,
    seed=seed_for(seed, member_id))`` when budgets do not bind.
    """
    return decide_members(catalog, members, candidates, propensities, as_of=as_of, channel=channel,
                          counters=counters, budgets=budgets, contributions=contributions,
                          feature_names=feature_names, seeds=[seed_for(seed, m.member_id) for m in members],
                          max_offers=max_offers, uplift=uplift, request=request)


def decide_members(catalog: Catalog, members: Sequence[MemberContext], candidates: Sequence[str],
                   propensities: np.ndarray | None = None, *, as_of: pd.Timestamp, channel: str | None = None,
                   counters: Sequence[CapCounters] | None = None, budgets: BudgetUsage | BudgetState | None = None,
                   contributions: np.ndarray | None = None, feature_names: Sequence[str] | None = None,
                   seeds: Sequence[int], max_offers: int | None = None,
                   uplift: np.ndarray | None = None, request: RequestContext | None = None) -> list[Decision]:
    """:func:`decide_batch` with each member's exploration seed given, for any number of members.

    The runtime's one decision path (:meth:`runtime.decisions.pipeline.DecisionPipeline.decide_many`)
    calls this for a real-time decision (one member, seeded by its decision id) and for a
    batch chunk (seeded by the batch seed and member id) alike.
    """
    props = None if propensities is None else np.asarray(propensities, dtype=np.float64)
    state = budgets if isinstance(budgets, BudgetState) else BudgetState(catalog, budgets, pd.Timestamp(as_of))
    if len(seeds) != len(members):
        raise ValueError(f"{len(seeds)} seeds for {len(members)} members")
    return _decide(catalog, list(members), candidates, props, as_of, channel,
                   list(counters) if counters is not None else [NO_COUNTERS] * len(members), state,
                   None if contributions is None else np.asarray(contributions), feature_names, list(seeds),
                   max_offers, None if uplift is None else np.asarray(uplift, dtype=np.float64), request)


@dataclass(frozen=True, eq=False)
class _Call:
    """What every member of one call shares, and their (members x candidates) arrays."""

    catalog: Catalog
    ids: list[str]
    cand: np.ndarray  # catalog position per candidate, -1 for ids the catalog lacks
    pos: np.ndarray  # the same with 0 for unknown ids (safe to index with)
    as_of: pd.Timestamp
    channel: str | None
    codes: np.ndarray  # static reason codes (0: eligible so far)
    mechanics: list[Mechanics]
    policies: list[str]
    props: np.ndarray  # propensity per member and candidate under each member's policy
    known: np.ndarray  # whether the model scored it
    uplift: np.ndarray  # the uplift model's incremental probability (NaN: none, or not personalised)
    value: np.ndarray  # what one conversion is worth, levers applied (minor units)
    priority: np.ndarray  # expected net value of sending it (minor units)
    rank: np.ndarray  # rank position under the deterministic tie-breaking, per member
    face: np.ndarray
    value_minor: np.ndarray
    levers: np.ndarray
    weight: np.ndarray
    contrib: np.ndarray | None
    feature_names: Sequence[str] | None
    clauses: np.ndarray | None  # each cell's failing rule clause (-1: none); None: no rules
    basket_points: np.ndarray | None = None  # points each member's current basket earns (None: no cart)


def _decide(catalog: Catalog, members: list[MemberContext], candidates: Sequence[str], props: np.ndarray | None,
            as_of: pd.Timestamp, channel: str | None, counters: list[CapCounters], budget: BudgetState,
            contrib: np.ndarray | None, feature_names: Sequence[str] | None, seeds: list[int],
            max_offers: int | None, uplift: np.ndarray | None = None,
            request: RequestContext | None = None) -> list[Decision]:
    """Decide for ``members`` in order: array work for all at once, then each member's
    caps, budgets and slate (budgets are consumed member after member)."""
    call = _prepare(catalog, members, candidates, props, pd.Timestamp(as_of), channel, contrib, feature_names,
                    uplift, request)
    settings = catalog.program.decisions
    n_slots = max_offers or settings.max_offers
    out = []
    for i, member in enumerate(members):
        row = _member_codes(call, i, counters[i], budget)
        policy = call.policies[i]
        if policy == "holdout" and settings.holdout.treatment == "nothing":
            # the holdout gets no offer at all: every eligible candidate is held back
            np.putmask(row, row == 0, CODE["HOLDOUT"])
            out.append(_decision(call, i, member, row, [], [], False, seeds[i]))
            continue
        exploration = settings.exploration if policy == "personalised" else None
        cols, probs, explored = choose(catalog, call.pos, row == 0, call.rank[i], budget, n_slots, exploration,
                                       np.random.default_rng(seeds[i]), call.props[i], call.weight[i],
                                       call.priority[i])
        out.append(_decision(call, i, member, row, cols, probs, explored, seeds[i]))
    return out


def _prepare(catalog: Catalog, members: list[MemberContext], candidates: Sequence[str], props: np.ndarray | None,
             as_of: pd.Timestamp, channel: str | None, contrib: np.ndarray | None,
             feature_names: Sequence[str] | None, uplift: np.ndarray | None = None,
             request: RequestContext | None = None) -> _Call:
    """Everything that does not depend on budgets consumed by earlier members, for all
    members at once: static eligibility, tier mechanics, values, policies, priorities, ranks.

    A personalised candidate whose expected net value is below ``decisions.min_net_value``
    is excluded as ``COST_EXCEEDS_VALUE``: sending it would cost more than it earns.
    """
    program = catalog.program
    ids = list(candidates)
    cand = catalog.positions(ids)
    pos = np.maximum(cand, 0)
    m, c = len(members), len(cand)
    if props is None:
        props = np.full((m, c), np.nan)
    if props.shape != (m, c):
        raise ValueError(f"propensities have shape {props.shape}, but {m} members x {c} candidates were given")
    if uplift is not None and uplift.shape != (m, c):
        raise ValueError(f"uplift has shape {uplift.shape}, but {m} members x {c} candidates were given")
    ma = member_arrays(catalog, members, as_of)
    basket = np.array(basket_points(program, [mem.tier.tier if mem.tier is not None else program.tier_names[0]
                                              for mem in members], [mem.plans for mem in members],
                                    None if request is None else request.cart_total), dtype=np.int64)
    if basket.any():  # a reward the balance plus the current basket covers is eligible
        ma = replace(ma, points_balance=ma.points_balance + basket)
    ruled = rule_checks(catalog, cand, members, as_of, request)
    codes = static_reasons(catalog, cand, members, ma, as_of, channel, None if ruled is None else ruled[0])
    mechanics = [member_mechanics(program, mem, as_of) for mem in members]
    _apply_mechanics(catalog, cand, codes, mechanics)
    face, value_minor = member_values(catalog, pos, ma)
    levers, value = value_terms(catalog, pos, ma, value_minor)
    weight = value - catalog.retailer_cost[pos][None, :]
    known = ~np.isnan(props)
    uplifted = np.zeros(m, dtype=bool) if uplift is None else ~np.isnan(uplift).all(axis=1)
    policies = _policies(catalog, members, known.any(axis=1), uplifted)
    used = _policy_propensities(catalog, pos, props, known, policies)
    personalised = np.array([p == "personalised" for p in policies], dtype=bool)
    upl = np.full((m, c), np.nan) if uplift is None else np.where(personalised[:, None], uplift, np.nan)
    priority = net_values(catalog, pos, used, weight, value, upl)
    floor = program.decisions.min_net_value
    if floor is not None:
        losing = personalised[:, None] & (priority < program.to_minor(floor)) & (codes == 0)
        np.putmask(codes, losing, CODE["COST_EXCEEDS_VALUE"])
    return _Call(catalog=catalog, ids=ids, cand=cand, pos=pos, as_of=as_of, channel=channel, codes=codes,
                 mechanics=mechanics, policies=policies, props=used, known=known, uplift=upl, value=value,
                 priority=priority,
                 rank=order(catalog, pos, priority, value_minor), face=face, value_minor=value_minor,
                 levers=levers, weight=weight, contrib=contrib, feature_names=feature_names,
                 clauses=None if ruled is None else ruled[1], basket_points=basket if basket.any() else None)


def _policies(catalog: Catalog, members: list[MemberContext], scored: np.ndarray,
              uplifted: np.ndarray) -> list[str]:
    """Each member's policy: the holdout group, cold start (no score, or a propensity score
    without history behind it), or personalised. An uplift model scores from the member's
    attributes, so its members are personalised without any history."""
    holdout = catalog.program.decisions.holdout
    return ["holdout" if in_holdout(mem.member_id, holdout.salt, holdout.share)
            else "personalised" if scored[i] and (mem.known_history or uplifted[i]) else "cold_start"
            for i, mem in enumerate(members)]


def _policy_propensities(catalog: Catalog, pos: np.ndarray, props: np.ndarray, known: np.ndarray,
                         policies: list[str]) -> np.ndarray:
    """The propensities each member's policy ranks by (members x candidates).

    Personalised: the model's, else the offer's popularity, else the member's mean over
    scored offers. Cold start and holdout: popularity, else ``decisions.fallback_prior``.
    """
    pop = catalog.popularity[pos]
    n_known = known.sum(axis=1)
    mean_known = np.where(n_known > 0, np.where(known, props, 0.0).sum(axis=1) / np.maximum(n_known, 1), np.nan)
    filled = np.where(known, props, np.where(np.isnan(pop)[None, :], mean_known[:, None], pop[None, :]))
    fallback = np.where(np.isnan(pop), catalog.program.decisions.fallback_prior, pop)
    personalised = np.array([p == "personalised" for p in policies], dtype=bool)
    return np.where(personalised[:, None], filled, fallback[None, :])


def _member_codes(call: _Call, i: int, counters: CapCounters, budget: BudgetState) -> np.ndarray:
    """Member ``i``'s reason code per candidate: the static checks, then frequency and
    member caps, then the global budgets as far as earlier members left them."""
    catalog, pos = call.catalog, call.pos
    row = call.codes[i].copy()
    freq, capped = member_cap_flags(catalog, pos, counters)
    np.putmask(row, (row == 0) & freq, CODE["FREQUENCY_CAPPED"])
    np.putmask(row, (row == 0) & capped, CODE["MEMBER_CAP_REACHED"])
    if catalog.budget_keys:
        exhausted, slowed = budget.refusals(pos)
        np.putmask(row, (row == 0) & exhausted, CODE["BUDGET_EXHAUSTED"])
        np.putmask(row, (row == 0) & slowed, CODE["BUDGET_PACED"])
    return row


def _apply_mechanics(catalog: Catalog, cand: np.ndarray, codes: np.ndarray, mechanics: list[Mechanics]) -> None:
    """Exclude challenge and retention offers for members the mechanic does not apply to."""
    kinds = np.where(cand >= 0, catalog.kind[np.maximum(cand, 0)], -1)
    for kind, attr in ((CHALLENGE, "challenge_code"), (RETENTION, "retention_code")):
        cols = np.flatnonzero(kinds == KIND_CODE[kind])
        if len(cols):
            member_code = np.array([getattr(mech, attr) for mech in mechanics], dtype=np.int64)[:, None]
            block = codes[:, cols]
            codes[:, cols] = np.where(block == 0, member_code, block)


def _decision(call: _Call, i: int, member: MemberContext, row: np.ndarray, cols: list[int], probs: list[float],
              explored: bool, seed: int) -> Decision:
    """Member ``i``'s decision: an object per returned offer; the exclusions and
    increments stay arrays until read."""
    policy = call.policies[i]
    offers = tuple(_ranked_offer(call, i, member, col, rank, prob, explored)
                   for rank, (col, prob) in enumerate(zip(cols, probs, strict=True), start=1))
    return Decision(member_id=member.member_id, offers=offers, holdout=policy == "holdout", policy=policy,
                    explored=explored, cold_start=policy == "cold_start", fallback=any(o.fallback for o in offers),
                    seed=seed, _arrays=ArbitrationArrays(call.catalog, call.ids, call.pos, row, tuple(cols),
                                                         call.weight[i], call.props[i],
                                                         None if call.clauses is None else call.clauses[i]))


def _ranked_offer(call: _Call, i: int, member: MemberContext, col: int, rank: int, prob: float,
                  explored: bool) -> RankedOffer:
    """The returned offer in column ``col`` of member ``i``, with its text and reasons."""
    catalog, program = call.catalog, call.catalog.program
    policy = call.policies[i]
    p = int(call.cand[col])
    offer = catalog.offers[p]
    used_fallback = policy != "personalised" or not call.known[i, col]
    promo = tier_promo(offer, program, member.tier.tier_rank if member.tier is not None else 0)
    face = float(call.face[i, col])
    uplift = float(call.uplift[i, col])
    return RankedOffer(
        offer_id=offer.offer_id, rank=rank, kind=offer.kind, title=offer.title,
        text=offer_text(program, offer, member, call.mechanics[i], face, call.as_of),
        value=face, value_minor=float(call.value_minor[i, col]), propensity=float(call.props[i, col]),
        priority=float(call.priority[i, col]), explored=explored, probability=prob, tier_promo=promo,
        reasons=_reasons(call, i, member, col, promo, used_fallback, explored), requires_coupon=offer.requires_coupon,
        fallback=used_fallback, uplift=None if np.isnan(uplift) else uplift,
        send_cost_minor=float(catalog.send_cost[p]))


def _reasons(call: _Call, i: int, member: MemberContext, col: int, promo: str | None, used_fallback: bool,
             explored: bool) -> tuple[str, ...]:
    """Why a returned offer was eligible, how it was scored and what shaped its priority."""
    catalog = call.catalog
    p = int(call.cand[col])
    offer = catalog.offers[p]
    reasons = passed_reasons(offer, member, call.channel,
                             0 if call.basket_points is None else int(call.basket_points[i]))
    if promo:
        reasons.append(f"TIER_MECHANIC:{promo}")
    uplift = call.uplift[i, col]
    reasons.append("MODEL_UPLIFT" if not np.isnan(uplift) else _score_reason(call.policies[i], used_fallback, catalog, p))
    reasons.extend(_economics(call, i, col))
    lever = call.levers[i, col]
    if lever != 1.0:
        reasons.append(f"LEVER:x{lever:.2f}")
    if offer.funder and offer.cost_share:
        reasons.append(f"FUNDED_BY:{offer.funder}:{offer.cost_share:.0%}")
    if not used_fallback and call.contrib is not None and call.feature_names is not None:
        reasons.extend(_top_features(call.contrib[i][col], call.feature_names))
    if explored:
        reasons.append("EXPLORATION")
    return tuple(reasons)


def _economics(call: _Call, i: int, col: int) -> list[str]:
    """The money behind a returned offer's rank, in major units, when there is more to it than
    propensity x value: an uplift score, a send cost or a known value per conversion.

    ``UPLIFT`` is the incremental conversion probability, ``INCREMENTAL_VALUE`` what those
    conversions earn (uplift x value), ``COST`` the expected cost of sending it (send cost plus
    the retailer's share of the redemptions expected) and ``NET_VALUE`` the difference: the
    offer's priority.
    """
    catalog = call.catalog
    p = int(call.pos[col])
    uplift = call.uplift[i, col]
    if np.isnan(uplift) and catalog.send_cost[p] == 0 and np.isnan(catalog.conversion_value[p]):
        return []
    major = float(catalog.program.currency.minor_units)
    cost = catalog.send_cost[p] + call.props[i, col] * catalog.retailer_cost[p]
    out = [] if np.isnan(uplift) else [f"UPLIFT:{uplift:+.4f}"]
    gain = call.priority[i, col] + cost
    out += [f"INCREMENTAL_VALUE:{gain / major:.2f}" if not np.isnan(uplift) else f"EXPECTED_VALUE:{gain / major:.2f}",
            f"COST:{cost / major:.2f}", f"NET_VALUE:{call.priority[i, col] / major:+.2f}"]
    return out


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
