"""Decision policies: the holdout group, exploration, and the probability of every choice.

Holdout
    A member is in the control group when ``sha256(salt, member_id)`` read as a number
    in [0, 1) is below ``holdout.share``: the same answer in every call, process and
    machine (Python's ``hash`` is salted per process, so it is not used). Control
    members get the non-personalised fallback policy; decisions flag them.

Exploration
    With probability ``exploration.share`` a decision explores; otherwise it takes the
    greedy slate (:func:`models.arbitration.greedy`). Exploring fills the slate slot by
    slot: ``epsilon_greedy`` picks uniformly among the feasible candidates, ``thompson``
    draws each candidate's propensity from a normal approximation of its Beta posterior
    (``concentration`` pseudo-observations) and takes the best sampled priority
    (:mod:`models.thompson`).

Probabilities
    Every returned offer carries the probability, under this mixed policy, that it was
    chosen in its slot given the offers in the slots before it::

        P(o | prefix) = [(1-e) G(prefix+o) + e X(prefix+o)] / [(1-e) G(prefix) + e X(prefix)]

    where G is 1 when a prefix is the greedy slate's and X is the exploring policy's
    probability of the prefix. Their product is the probability of the whole slate, so
    logged decisions support inverse-propensity evaluation of new policies. Epsilon-
    greedy probabilities are exact; Thompson probabilities are one-dimensional integrals
    computed by quadrature to within :data:`models.thompson.PRECISION` (1e-9).
    Deterministic policies report 1.
"""

from __future__ import annotations

import hashlib

import numpy as np

from models.arbitration import Slate, greedy
from models.caps import BudgetState
from models.catalog import Catalog
from models.program import Exploration
from models.thompson import priority_distribution, sample_pick, win_probability

_TINY = float(np.finfo(np.float64).tiny)


def _unit(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def holdout_draw(member_id: str, salt: str) -> float:
    """The member's fixed position in [0, 1) for holdout assignment under ``salt``."""
    return _unit("holdout", salt, member_id) / 2.0**64


def in_holdout(member_id: str, salt: str, share: float) -> bool:
    """Whether ``member_id`` belongs to the control group (stable across processes)."""
    return share > 0 and holdout_draw(member_id, salt) < share


def challenger_draw(member_id: str, salt: str) -> float:
    """The member's fixed position in [0, 1) for champion/challenger routing under ``salt``
    (independent of the holdout draw): members below the challenger's share get its model."""
    return _unit("challenger", salt, member_id) / 2.0**64


def seed_for(*parts: object) -> int:
    """A 63-bit seed derived from ``parts`` (a decision id, or a batch seed and member id)."""
    return _unit("seed", *parts) >> 1


def choose(catalog: Catalog, pos: np.ndarray, eligible: np.ndarray, rank: np.ndarray, budget: BudgetState,
           n: int, exploration: Exploration | None, rng: np.random.Generator,
           propensity: np.ndarray, weight: np.ndarray,
           priority: np.ndarray | None = None) -> tuple[list[int], list[float], bool]:
    """Choose up to ``n`` columns; return them, their choice probabilities and whether the
    decision explored. ``exploration`` None (or share 0) means deterministic greedy.

    Thompson draws each candidate's priority around ``priority`` (default propensity x
    weight; the decision core passes the net value, which also carries send costs and uplift)
    with the spread of its propensity's posterior times the weight."""
    share = 0.0 if exploration is None else exploration.share
    if share <= 0:
        chosen = greedy(catalog, pos, eligible, rank, budget, n)
        return chosen, [1.0] * len(chosen), False
    assert exploration is not None
    best = greedy(catalog, pos, eligible, rank, budget.copy(), n)
    explore = bool(rng.random() < share)
    thompson = exploration.method == "thompson"
    mu, sigma = priority_distribution(propensity, weight, exploration.concentration) if thompson else (None, None)
    if mu is not None and priority is not None:
        mu = np.asarray(priority, dtype=np.float64)
    slate = Slate(catalog, pos, eligible, budget)
    probs: list[float] = []
    on_greedy, explore_prob = True, 1.0
    for i in range(n):
        feasible = slate.feasible()
        if not feasible.any():
            break
        cols = np.flatnonzero(feasible)
        if not explore:
            col = best[i]
            k = int(np.searchsorted(cols, col))
        else:
            k = int(rng.integers(len(cols))) if mu is None or sigma is None else sample_pick(mu[cols], sigma[cols], rng)
            col = int(cols[k])
        if mu is None or sigma is None:
            q = 1.0 / len(cols)
        else:  # a sampled pick's probability is positive, even where it underflows
            q = win_probability(mu[cols], sigma[cols], k)
            q = max(q, _TINY) if explore else q
        greedy_col = best[i] if i < len(best) else -1
        num = (1 - share) * float(on_greedy and col == greedy_col) + share * explore_prob * q
        den = (1 - share) * float(on_greedy) + share * explore_prob
        probs.append(float(num / den))
        on_greedy = on_greedy and col == greedy_col
        explore_prob *= q
        slate.add(col)
    return slate.chosen, probs, explore
