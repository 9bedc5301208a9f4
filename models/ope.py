"""Off-policy estimators: what another policy would have earned, from a logged policy's decisions.

Each logged decision ``i`` chose an action ``a_i`` with a known probability ``p_i > 0`` (the
logging policy's propensity, which the decision log records exactly) and earned a reward
``r_i``. A deterministic target policy would have chosen ``b_i``; ``match_i = [a_i == b_i]``.
With ``q_i`` a reward model's prediction for the target's action and ``qa_i`` its prediction
for the logged action, over ``n`` decisions:

``IPS``   ``mean(match * r / p)``: unbiased when every action the target picks had ``p > 0``;
``SNIPS`` ``sum(match * r / p) / sum(match / p)``: self-normalized, a little biased, far less
          variable when weights are large (undefined when nothing matches);
``DR``    ``mean(q + match / p * (r - qa))``: the reward model's estimate corrected by the
          weighted residuals; unbiased if either the propensities or the reward model are right.

Alongside: the logging policy's own value ``mean(r)``, the matches, and the effective sample
size ``(sum w)^2 / sum w^2`` of the weights ``w = match / p``. Intervals are percentile
bootstrap intervals over decisions (seeded). Hand-written because Open Bandit Pipeline, which
has these estimators, does not install here (its dependencies are not in the package index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """One estimator's value and its bootstrap interval (NaN where undefined)."""

    estimator: str
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class OffPolicyResult:
    """The estimates for one target policy over one set of logged decisions."""

    decisions: int
    matches: int
    effective_sample_size: float
    estimates: tuple[Estimate, ...]

    def by_name(self) -> dict[str, Estimate]:
        """The estimates keyed by estimator name."""
        return {e.estimator: e for e in self.estimates}


def _point(reward: np.ndarray, propensity: np.ndarray, match: np.ndarray, q_target: np.ndarray,
           q_logged: np.ndarray) -> np.ndarray:
    """(logged, IPS, SNIPS, DR) of one sample (rows are decisions)."""
    w = match / propensity
    logged = reward.mean()
    ips = (w * reward).mean()
    total = w.sum()
    snips = (w * reward).sum() / total if total > 0 else np.nan
    dr = (q_target + w * (reward - q_logged)).mean()
    return np.array([logged, ips, snips, dr])


NAMES = ("logged", "IPS", "SNIPS", "DR")


def estimate(reward: np.ndarray, propensity: np.ndarray, match: np.ndarray, q_target: np.ndarray,
             q_logged: np.ndarray, confidence: float = 0.95, reps: int = 200, seed: int = 0) -> OffPolicyResult:
    """The logged value and the IPS, SNIPS and DR estimates of the target policy (module
    docstring), each with a percentile bootstrap interval over ``reps`` resamples of decisions."""
    r, p = np.asarray(reward, dtype=np.float64), np.asarray(propensity, dtype=np.float64)
    m = np.asarray(match, dtype=np.float64)
    q, qa = np.asarray(q_target, dtype=np.float64), np.asarray(q_logged, dtype=np.float64)
    n = len(r)
    if not all(len(a) == n for a in (p, m, q, qa)):
        raise ValueError("reward, propensity, match and reward-model arrays differ in length")
    if n == 0:
        nan = float("nan")
        return OffPolicyResult(0, 0, 0.0, tuple(Estimate(name, nan, nan, nan) for name in NAMES))
    if not ((p > 0) & (p <= 1)).all():
        raise ValueError("logged propensities must lie in (0, 1]")
    point = _point(r, p, m, q, qa)
    rng = np.random.default_rng(seed)
    draws = np.empty((reps, len(NAMES)))
    for k in range(reps):
        idx = rng.integers(n, size=n)
        draws[k] = _point(r[idx], p[idx], m[idx], q[idx], qa[idx])
    alpha = (1 - confidence) / 2
    estimates = []
    for j, name in enumerate(NAMES):
        col = draws[:, j][~np.isnan(draws[:, j])]
        low, high = (np.quantile(col, [alpha, 1 - alpha]) if len(col) and reps else (np.nan, np.nan))
        estimates.append(Estimate(name, float(point[j]), float(low), float(high)))
    w = m / p
    ess = float(w.sum() ** 2 / (w ** 2).sum()) if (w > 0).any() else 0.0
    return OffPolicyResult(n, int(m.sum()), ess, tuple(estimates))
