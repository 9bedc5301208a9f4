"""Challenges: gamified goals whose progress is counted from a member's purchases.

A challenge (``points.challenges`` in the program config) is presented by one of the program's
offers. It starts for a member when a decision issues that offer to them, and runs for
``window_days``. Its goal is one of:

* ``purchases``: ``target`` visits (distinct baskets) in the window;
* ``new_category``: ``target`` product categories bought in the window that the member had
  never bought before it started ("try something new");
* ``streak``: ``target`` consecutive days (or weeks, ``period: week``) with a visit, inside the
  window;
* ``category_spend``: ``target`` major money units spent in ``category`` in the window.

Completing it earns ``reward_points`` once: the ledger posting's cause names the challenge and
the moment it started (``challenge:<id>:<start>``), so however many purchases arrive after
the goal is reached, and however often they are replayed, it pays once per run.

Times here are local program seconds (the history records' clock); pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.points_config import Challenge

DAY = 86_400


@dataclass(frozen=True)
class Purchases:
    """One member's purchase lines (local seconds, minor units, category names, basket codes)."""

    time: np.ndarray
    amount: np.ndarray
    category: np.ndarray
    basket: np.ndarray

    @staticmethod
    def empty() -> Purchases:
        return Purchases(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, dtype=object), np.zeros(0, np.int64))

    def plus(self, other: Purchases) -> Purchases:
        """These lines and ``other``'s (events not yet in the history)."""
        return Purchases(*(np.concatenate([a, b]) for a, b in zip(
            (self.time, self.amount, self.category, self.basket),
            (other.time, other.amount, other.category, other.basket), strict=True)))


@dataclass(frozen=True)
class Progress:
    """Where a member stands on one run of a challenge."""

    challenge_id: str
    started_at: int
    ends_at: int
    progress: float
    target: float

    @property
    def completed(self) -> bool:
        return self.progress >= self.target

    @property
    def cause(self) -> str:
        """The ledger cause of this run's reward (paid once)."""
        return f"challenge:{self.challenge_id}:{self.started_at}"


def progress(ch: Challenge, lines: Purchases, start: int, minor_units: int = 100) -> Progress:
    """Progress of the run of ``ch`` that started at ``start`` over ``lines`` (module docstring)."""
    end = start + ch.window_days * DAY
    inside = (lines.time >= start) & (lines.time < end)
    if ch.goal == "purchases":
        value: float = float(len(np.unique(lines.basket[inside])))
    elif ch.goal == "new_category":
        before = set(lines.category[lines.time < start].tolist())
        value = float(len({c for c in lines.category[inside].tolist() if c and c not in before}))
    elif ch.goal == "streak":
        step = DAY * (7 if ch.period == "week" else 1)
        periods = np.unique((lines.time[inside] - start) // step)
        value = float(_longest_run(periods))
    else:  # category_spend: in major units
        value = float(lines.amount[inside & (lines.category == ch.category)].sum()) / minor_units
    return Progress(ch.id, start, end, value, float(ch.target))


def _longest_run(periods: np.ndarray) -> int:
    """The longest run of consecutive integers in sorted unique ``periods``."""
    if len(periods) == 0:
        return 0
    breaks = np.flatnonzero(np.diff(periods) != 1)
    edges = np.concatenate([[-1], breaks, [len(periods) - 1]])
    return int(np.diff(edges).max())
