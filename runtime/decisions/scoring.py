"""Propensities for members x candidate offers, computed the way training computes them.

Features come from :func:`models.features.compute_features` (under the model's own
program config, as in training) over a
:class:`~models.features.History`: the one-member history a real-time decision decodes
from its store records, or several members' histories stacked into one (batch
decisions), so a batch computes one feature matrix and makes one model call per chunk.
Only the candidates the model can score (the contract offers of the
:class:`~runtime.decisions.setup.Universe`) get rows; the program's own offers get NaN
(the decision core then falls back to popularity or the member's mean propensity).

An uplift model (:class:`models.uplift.UpliftModel`) scores from the members' ``attr_*``
attributes kept in their profiles, not from history: :func:`uplift_scores` gives each member
the treated-arm probability and the uplift of every offer the model knows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from models.features import History, channel_codes, compute_features
from models.features.points_features import AccountBook
from models.model import PropensityModel
from models.program import Program
from models.uplift import UpliftModel
from runtime.decisions.setup import DecisionSetup, Universe
from runtime.stores import MemberProfile


def stack(histories: Sequence[History]) -> History:
    """One History holding every member of ``histories`` (member indices shifted)."""
    if len(histories) == 1:
        return histories[0]
    offsets = np.cumsum([0, *(h.n_members for h in histories[:-1])])

    def cat(name: str, shift: bool = False) -> np.ndarray:
        parts = [getattr(h, name) + (off if shift else 0) for h, off in zip(histories, offsets, strict=True)]
        return np.concatenate(parts) if parts else np.zeros(0)

    return History(
        member_ids=np.concatenate([h.member_ids for h in histories]).astype(object),
        joined_at=cat("joined_at"),
        line_member=cat("line_member", True).astype(np.int32), line_time=cat("line_time"),
        line_basket=cat("line_basket"), line_product=cat("line_product"), line_amount=cat("line_amount"),
        line_coupon=cat("line_coupon"), line_discount=cat("line_discount"),
        exp_member=cat("exp_member", True).astype(np.int32), exp_time=cat("exp_time"), exp_offer=cat("exp_offer"),
        red_member=cat("red_member", True).astype(np.int32), red_time=cat("red_time"), red_offer=cat("red_offer"),
    )


def with_accounts(hist: History, accounts: Sequence[Mapping[str, Any] | None], now: int) -> History:
    """``hist`` whose point-balance features read ``accounts`` (the stored points accounts the
    decision fetched with the members' state, aligned with ``hist.member_ids``) at ``now``
    (epoch seconds), as training reads the ledger's calls replayed to the same moment."""
    return replace(hist, points=AccountBook(tuple(accounts), tuple(str(m) for m in hist.member_ids), now))


def subset(hist: History, members: np.ndarray) -> History:
    """A History of only ``members`` (indices into ``hist``), renumbered 0..k-1 in that order."""
    members = np.asarray(members, dtype=np.int64)
    new = np.full(hist.n_members, -1, dtype=np.int64)
    new[members] = np.arange(len(members))

    def pick(member: np.ndarray, *columns: np.ndarray) -> list[np.ndarray]:
        keep = (member >= 0) & (new[np.maximum(member, 0)] >= 0)
        return [new[member[keep]].astype(np.int32), *(c[keep] for c in columns)]

    lm, lt, lb, lp, la, lc, ld = pick(hist.line_member, hist.line_time, hist.line_basket, hist.line_product,
                                      hist.line_amount, hist.line_coupon, hist.line_discount)
    em, et, eo = pick(hist.exp_member, hist.exp_time, hist.exp_offer)
    rm, rt, ro = pick(hist.red_member, hist.red_time, hist.red_offer)
    return History(member_ids=hist.member_ids[members], joined_at=hist.joined_at[members],
                   line_member=lm, line_time=lt, line_basket=lb, line_product=lp, line_amount=la, line_coupon=lc,
                   line_discount=ld, exp_member=em, exp_time=et, exp_offer=eo, red_member=rm, red_time=rt,
                   red_offer=ro, points=None if hist.points is None else hist.points.take(members))


def feature_rows(setup: DecisionSetup, hist: History, members: np.ndarray, universe: Universe,
                 as_of: pd.Timestamp, channel: str, program: Program | None = None) -> np.ndarray:
    """Features of ``members`` (indices into ``hist``) x the scorable candidates, member-major.

    ``program`` is the program the model was trained under (it travels in the artifact:
    :attr:`models.model.PropensityModel.program`); its tier rules give the tier features.
    """
    offers = universe.feature_index[universe.scorable]
    k = len(offers)
    n = len(members) * k
    return compute_features(hist, setup.features, np.repeat(np.asarray(members, dtype=np.int64), k),
                            np.tile(offers, len(members)), np.full(n, setup.seconds(as_of), dtype=np.int64),
                            channel_codes([channel] * n), program)


def predict(model: PropensityModel, X: np.ndarray, n_members: int) -> np.ndarray:
    """Calibrated propensities as an (members x scorable candidates) float64 array."""
    if len(X) == 0:
        return np.zeros((n_members, 0))
    return model.predict(X).reshape(n_members, -1)


def expand(universe: Universe, scorable: np.ndarray) -> np.ndarray:
    """(members x scorable) scores as (members x candidates), NaN for offers without a score."""
    scorable = np.atleast_2d(scorable)
    out = np.full((scorable.shape[0], len(universe.offer_ids)), np.nan)
    out[:, universe.scorable] = scorable
    return out


def expand_contributions(universe: Universe, contributions: np.ndarray, n_members: int,
                         rows: Sequence[int]) -> np.ndarray:
    """pred_contrib rows of the members ``rows`` (member-major x scorable candidates) as a
    (members x candidates x features) array, zeros for unscored offers and other members."""
    k = len(universe.scorable)
    width = contributions.shape[1]
    out = np.zeros((n_members, len(universe.offer_ids), width))
    if k:
        out[np.asarray(rows)[:, None], universe.scorable[None, :]] = contributions.reshape(len(rows), k, width)
    return out


def uplift_scores(model: UpliftModel, universe: Universe, profiles: Sequence[MemberProfile | None]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p_treated, uplift, scored)`` of an uplift model for members with these profiles.

    The first two are (members x universe offers) arrays, NaN for offers the model has no
    learner for and for members without attributes (``scored`` False: nothing to score them
    from, so they get the cold-start policy). One model call per offer for all the members.
    """
    n, k = len(profiles), len(universe.offer_ids)
    props, uplift = np.full((n, k), np.nan), np.full((n, k), np.nan)
    scored = np.array([p is not None and p.attributes is not None for p in profiles], dtype=bool)
    rows = np.flatnonzero(scored)
    cols = [(j, o) for j, o in enumerate(universe.offer_ids) if o in model.learners]
    if not len(rows) or not cols:
        return props, uplift, np.zeros(n, dtype=bool)
    frame = pd.DataFrame([{"member_id": str(i), **dict(getattr(profiles[i], "attributes", None) or ())}
                          for i in rows.tolist()])
    X = model.features(frame).to_numpy(dtype=np.float64)
    for j, offer in cols:
        u, p = model.predict_offer(offer, X)
        uplift[rows, j], props[rows, j] = u, p
    return props, uplift, scored
