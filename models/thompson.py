"""Thompson sampling over offer priorities, with the exact probability of every pick.

An offer's priority is propensity x weight (:func:`models.arbitration.weights`). Thompson
sampling draws each candidate's propensity from a normal approximation of its Beta
posterior with ``c`` pseudo-observations, ``sd = sqrt((p (1 - p) + 1e-6) / (c + 1))`` (the
1e-6 keeps a propensity of exactly 0 or 1 from becoming a point mass), so a candidate's
priority is ``N(mu, sigma^2)`` with ``mu = p w`` and ``sigma = sd |w|``. A slot goes to the
feasible candidate with the highest draw.

The probability that candidate ``k`` wins a slot is the one-dimensional integral::

    P(k) = integral of  phi((x - mu_k) / sigma_k) / sigma_k  x  prod_j Phi((x - mu_j) / sigma_j)  dx

over the competitors ``j``. It is computed by composite Gauss-Legendre quadrature: ``k``'s
density is cut into half-sigma intervals over +-9 sigma (outside, under 1e-18 of its mass),
and every competitor narrower than that adds break points at its mean +- up to 7 of its
sigmas, so that each function is smooth at the scale of every interval it crosses. Eight
nodes per interval then integrate to about 1e-12; ``tests/test_thompson.py`` checks the
result against scipy's adaptive quadrature (to 1e-9) and against simulation.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

#: Gauss-Legendre nodes and weights on [-1, 1]
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
#: the integration range, in sigmas of the candidate whose probability is computed
SPAN = 9.0
_OWN_BREAKS = np.arange(-SPAN, SPAN + 0.25, 0.5)
_NARROW_BREAKS = np.array([-7.0, -4.0, -2.0, -0.5, 0.5, 2.0, 4.0, 7.0])
#: keeps a propensity of 0 or 1 (and a weight of 0) from making a point mass
_VARIANCE_FLOOR = 1e-6
_WEIGHT_FLOOR = 1e-6
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
#: below this log-density (times any interval's width) the integrand is negligible
_LOG_NEGLIGIBLE = np.log(1e-13)
#: the stated precision of :func:`win_probability` (absolute), checked by the tests
PRECISION = 1e-9


def priority_distribution(propensity: np.ndarray, weight: np.ndarray,
                          concentration: float) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's sampled priority as (mean, standard deviation) of a normal."""
    p = np.clip(np.asarray(propensity, dtype=np.float64), 0.0, 1.0)
    w = np.asarray(weight, dtype=np.float64)
    sd = np.sqrt((p * (1.0 - p) + _VARIANCE_FLOOR) / (concentration + 1.0))
    return p * w, sd * np.maximum(np.abs(w), _WEIGHT_FLOOR)


def sample_pick(mu: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> int:
    """Draw every candidate's priority once and return the index of the highest."""
    return int(np.argmax(mu + sigma * rng.standard_normal(len(mu))))


def win_probability(mu: np.ndarray, sigma: np.ndarray, k: int) -> float:
    """The probability that candidate ``k``'s draw is the highest (see the module doc).

    The integrand is log-concave (a normal density times normal CDFs), so it has one mode.
    A first pass over ``k``'s own half-sigma grid, with only the competitors at least half
    as wide as ``k`` (smooth on that grid), bounds it from above and finds the interval
    outside which it holds under 1e-18; the narrow competitors then add their break points
    inside that interval only. So a decision pays for the few narrow competitors near the
    winning region, not for all of them.
    """
    mu_k, s_k = float(mu[k]), float(sigma[k])
    lo, hi = mu_k - SPAN * s_k, mu_k + SPAN * s_k
    others = np.arange(len(mu)) != k
    mu_j, s_j = mu[others], sigma[others]
    if np.any(mu_j - SPAN * s_j >= hi):  # a competitor beats k's whole range but for < 1e-18
        return 0.0
    live = mu_j + SPAN * s_j > lo  # the rest are above every x of the range but for < 1e-18
    mu_j, s_j = mu_j[live], s_j[live]
    wide = s_j >= 0.5 * s_k
    own = mu_k + s_k * _OWN_BREAKS
    log_bound = _log_density(own, mu_k, s_k) + _log_cdfs(own, mu_j[wide], s_j[wide])
    above = np.flatnonzero(log_bound + np.log(s_k) > _LOG_NEGLIGIBLE)
    if not len(above):
        return 0.0
    a, b = own[max(above[0] - 1, 0)], own[min(above[-1] + 1, len(own) - 1)]
    if np.any(mu_j - SPAN * s_j >= b):
        return 0.0
    near = mu_j + SPAN * s_j > a  # the others are below all of [a, b] but for < 1e-18
    mu_j, s_j = mu_j[near], s_j[near]
    # an even grid of at most one of k's sigmas per interval and at most two of any other
    # competitor's; the narrowest competitors instead add their own break points, as many
    # as makes the fewest intervals in all
    widths = np.minimum(s_k, 2.0 * np.sort(s_j))
    intervals = np.ceil((b - a) / np.append(widths, s_k)) + len(_NARROW_BREAKS) * np.arange(len(s_j) + 1)
    step = float(np.append(widths, s_k)[int(np.argmin(intervals))])
    edges = np.linspace(a, b, int(np.ceil((b - a) / step)) + 1)
    tiny = 2.0 * s_j < step
    if tiny.any():
        extra = (mu_j[tiny, None] + s_j[tiny, None] * _NARROW_BREAKS).ravel()
        edges = np.unique(np.concatenate([edges, np.clip(extra, a, b)]))
    x, w = _nodes(edges)
    log_g = _log_density(x, mu_k, s_k) + _log_cdfs(x, mu_j, s_j)
    return float(min(1.0, max(0.0, np.sum(w * np.exp(log_g)))))


def _nodes(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights of the composite rule on consecutive ``edges``."""
    width = np.diff(edges)
    x = (edges[:-1, None] + (_NODES[None, :] + 1.0) * 0.5 * width[:, None]).ravel()
    return x, (_WEIGHTS[None, :] * 0.5 * width[:, None]).ravel()


def _log_density(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    z = (x - mu) / sigma
    return -0.5 * z * z - _LOG_SQRT_2PI - np.log(sigma)


def _log_cdfs(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray | float:
    """Sum over the given normals of log P(draw < x), at every x."""
    if not len(mu):
        return 0.0
    return log_ndtr((x[:, None] - mu[None, :]) / sigma[None, :]).sum(axis=1)
