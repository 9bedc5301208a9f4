"""Point-balance features: a member's points account as it stood at the request's moment.

The ledger (:mod:`models.points_account`) decides a balance by replaying postings in order:
lots, soonest expiry first, lazy expiry, pending points, debt. These features read that same
rule two ways, so they cannot drift apart:

* **offline** (:class:`PostingsBook`): the contract's optional ``points`` table holds every call
  the ledger applied, in the store's order (``offers data events`` writes it from the durable
  points log). Each member's calls applied at or before the request's moment are replayed with
  :func:`models.points_account.post`, then the account is viewed at that moment (at or before,
  not strictly before as for purchases: the live account a decision reads already holds a call
  applied in the decision's own second, and the two sides must agree);
* **online** (:class:`AccountBook`): the account the decision read from the store, in the same
  round trip as the member's state, viewed at the decision's moment.

``tests/test_points_features.py`` builds an account in the real Redis store and checks the two
agree at several moments, before and after an expiry. Without a points table (or for a member
with no points) the balance features are 0 for members of a history with a book, and every
points feature is NaN when the history carries no book at all (data without a points ledger).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from models import points_account

POINTS_FEATURES = ["points_balance", "points_pending", "points_expiring_30d", "points_days_to_expiry",
                   "points_earned_all", "points_burned_all"]
DAY = 86_400
EXPIRING_DAYS = 30


def account_features(view: Mapping[str, Any], now: int) -> tuple[float, ...]:
    """The POINTS_FEATURES values of one account view (:func:`models.points_account.view`) at ``now``.

    ``points_expiring_30d`` counts spendable points whose lot expires within 30 days;
    ``points_days_to_expiry`` is the time to the first spendable lot's expiry (NaN: none expire).
    Lifetime totals are whole points (the store keeps them in points)."""
    spendable = [lot for lot in view["lots"] if lot[0] <= now and lot[2] > 0]
    expiring = [lot for lot in spendable if lot[1] > 0]
    soon = sum(lot[2] for lot in expiring if lot[1] <= now + EXPIRING_DAYS * DAY)
    first = min((lot[1] for lot in expiring), default=None)
    totals = view["totals"]
    return (float(view["balance"]), float(view["pending"]), float(soon),
            np.nan if first is None else (first - now) / DAY, float(totals.get("E", 0)), float(totals.get("B", 0)))


def epoch_of(local_seconds: np.ndarray, zone: ZoneInfo) -> np.ndarray:
    """Program-local int64 seconds (what features use) as UTC epoch seconds (what the ledger uses).

    Ambiguous local times (a DST fall-back hour) take the first occurrence, non-existent ones
    shift forward, as :func:`runtime.decisions.clock.aware` does."""
    if not len(local_seconds):
        return np.zeros(0, dtype=np.int64)
    uniq, inv = np.unique(local_seconds, return_inverse=True)
    aware = pd.DatetimeIndex(pd.to_datetime(uniq, unit="s")).tz_localize(zone, ambiguous=np.ones(len(uniq), bool),
                                                                        nonexistent="shift_forward")
    return np.asarray(aware.as_unit("s").asi8, dtype=np.int64)[inv]


class PointsBook(Protocol):
    """Where a History's points come from; aligned with the history's members."""

    def features(self, m: np.ndarray, t: np.ndarray, zone: ZoneInfo) -> np.ndarray:
        """(len(m) x len(POINTS_FEATURES)) values for requests (member index, local seconds)."""

    def take(self, members: np.ndarray) -> PointsBook:
        """The book of ``members`` (indices), re-indexed 0..k-1 in that order (History.partition, subset)."""

    def extended(self, n: int) -> PointsBook:
        """The book with ``n`` more members who have no points (History.with_members)."""


@dataclass(frozen=True)
class AccountBook:
    """Online: the stored accounts (None: no account) of a decision's members, viewed at ``now``."""

    accounts: tuple[Mapping[str, Any] | None, ...]
    member_ids: tuple[str, ...]
    now: int

    def features(self, m: np.ndarray, t: np.ndarray, zone: ZoneInfo) -> np.ndarray:
        """Every request of one member shares the decision's moment, so each account is viewed once."""
        out = np.empty((len(m), len(POINTS_FEATURES)))
        for i in np.unique(m):
            account = self.accounts[i] or {}
            view = points_account.view_at(account, self.member_ids[i], self.now)
            out[m == i] = account_features(view, self.now)
        return out

    def take(self, members: np.ndarray) -> AccountBook:
        return AccountBook(tuple(self.accounts[i] for i in members), tuple(self.member_ids[i] for i in members),
                           self.now)

    def extended(self, n: int) -> AccountBook:
        return AccountBook((*self.accounts, *([None] * n)), (*self.member_ids, *([""] * n)), self.now)


@dataclass(frozen=True)
class PostingsBook:
    """Offline: each member's ledger calls (epoch seconds, postings), in the order the store applied them.

    ``calls[i]`` belongs to the history's member ``i``; ``member_ids`` names them (the ledger's
    entries carry the member id)."""

    calls: tuple[tuple[tuple[int, tuple[Mapping[str, Any], ...]], ...], ...]
    member_ids: tuple[str, ...]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, member_ids: Sequence[str]) -> PostingsBook:
        """A book from the contract's ``points`` table (member_id, call, applied_at, postings JSON)
        for the members ``member_ids`` (in that order; members without rows have no points)."""
        position = {str(m): i for i, m in enumerate(member_ids)}
        calls: list[list[tuple[int, tuple[Mapping[str, Any], ...]]]] = [[] for _ in member_ids]
        if len(frame):
            ordered = frame.sort_values(["member_id", "call"], kind="stable")
            for member, at, postings in zip(ordered["member_id"].astype(str), ordered["applied_at"].astype("int64"),
                                            ordered["postings"].astype(str), strict=True):
                i = position.get(member)
                if i is not None:
                    calls[i].append((int(at), tuple(json.loads(postings))))
        return cls(tuple(tuple(c) for c in calls), tuple(str(m) for m in member_ids))

    def features(self, m: np.ndarray, t: np.ndarray, zone: ZoneInfo) -> np.ndarray:
        """Replays each member's calls once, in time order, stopping at each of its request moments."""
        out = np.zeros((len(m), len(POINTS_FEATURES)))
        out[:, POINTS_FEATURES.index("points_days_to_expiry")] = np.nan
        now = epoch_of(np.asarray(t, dtype=np.int64), zone)
        order = np.lexsort((now, m))
        start = 0
        while start < len(order):
            i = int(m[order[start]])
            stop = start
            while stop < len(order) and m[order[stop]] == i:
                stop += 1
            self._replay(i, order[start:stop], now, out)
            start = stop
        return out

    def _replay(self, i: int, rows: np.ndarray, now: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out[rows]`` (member ``i``'s requests, by time) from one pass over its calls."""
        calls = self.calls[i]
        if not calls:
            return
        fields: dict[str, int] = {}
        causes: dict[str, str] = {}
        k, last, prev = 0, -1, -1
        for row in rows:
            at = int(now[row])
            if at == last:
                out[row] = out[prev]
                continue
            while k < len(calls) and calls[k][0] <= at:
                fields, _ = points_account.post(fields, causes, self.member_ids[i], list(calls[k][1]), calls[k][0])
                k += 1
            out[row] = account_features(points_account.view_at(fields, self.member_ids[i], at), at)
            last, prev = at, row

    def take(self, members: np.ndarray) -> PostingsBook:
        return PostingsBook(tuple(self.calls[i] for i in members), tuple(self.member_ids[i] for i in members))

    def extended(self, n: int) -> PostingsBook:
        return PostingsBook((*self.calls, *([()] * n)), (*self.member_ids, *([""] * n)))


def points_features(book: PointsBook | None, m: np.ndarray, t: np.ndarray, zone: ZoneInfo,
                    out: dict[str, np.ndarray]) -> None:
    """Fill the POINTS_FEATURES columns of ``out`` for requests (member index, local seconds);
    left NaN when the history has no points book."""
    if book is None or not len(m):
        return
    values = book.features(np.asarray(m, dtype=np.int64), np.asarray(t, dtype=np.int64), zone)
    for j, name in enumerate(POINTS_FEATURES):
        out[name][:] = values[:, j]
