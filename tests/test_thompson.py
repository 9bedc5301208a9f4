"""Thompson sampling's pick probabilities: exact to the stated precision, and what the sampler does."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.special import log_ndtr, ndtr
from scipy.stats import norm

from models.decision import decide
from models.thompson import PRECISION, priority_distribution, sample_pick, win_probability
from tests.decision_helpers import AS_OF, catalog, member, offer, program


def test_two_candidates_match_the_closed_form() -> None:
    """With two normals, P(X0 > X1) = Phi((mu0 - mu1) / sqrt(s0^2 + s1^2))."""
    rng = np.random.default_rng(1)
    for _ in range(500):
        p = rng.uniform(0, 1, 2)
        w = rng.choice([1.0, 50.0, 300.0, -20.0, 0.0], 2) * rng.uniform(0.5, 2, 2)
        mu, sigma = priority_distribution(p, w, float(rng.choice([1.0, 20.0, 5000.0])))
        exact = ndtr((mu[0] - mu[1]) / np.hypot(sigma[0], sigma[1]))
        assert abs(win_probability(mu, sigma, 0) - exact) < PRECISION


def test_many_candidates_match_a_brute_force_integral_and_sum_to_one() -> None:
    """Against Simpson's rule on a dense grid (20,001 points over +-12 sigma of every
    candidate), including narrow competitors (weights 0 and propensities 0) next to wide
    ones. (scipy's adaptive ``quad`` is itself off by up to 1e-7 on these.)"""
    rng = np.random.default_rng(2)
    for case in range(60):
        n = int(rng.integers(3, 9))
        p = rng.uniform(0, 0.7, n)
        p[case % n] = 0.0
        w = rng.choice([1.0, 50.0, 300.0, -20.0, 0.0], n) * rng.uniform(0.5, 2, n)
        mu, sigma = priority_distribution(p, w, float(rng.choice([5.0, 20.0, 200.0])))
        probs = [win_probability(mu, sigma, k) for k in range(n)]
        assert abs(sum(probs) - 1.0) < n * PRECISION
        k = int(np.argmax(probs))
        lo, hi = mu[k] - 12 * sigma[k], mu[k] + 12 * sigma[k]
        x = np.unique(np.clip(np.concatenate([np.linspace(m - 12 * s, m + 12 * s, 20_001)
                                              for m, s in zip(mu, sigma, strict=True)]), lo, hi))
        log_g = norm.logpdf(x, mu[k], sigma[k]) + sum(log_ndtr((x - mu[j]) / sigma[j]) for j in range(n) if j != k)
        ref = integrate.simpson(np.exp(log_g), x=x)
        assert abs(probs[k] - ref) < PRECISION, (case, probs[k], ref)


def test_pick_frequencies_match_the_probabilities() -> None:
    """200,000 draws of one slot among 30 candidates: every frequency within 5 standard errors."""
    rng = np.random.default_rng(3)
    mu, sigma = priority_distribution(rng.uniform(0.01, 0.6, 30), rng.uniform(50, 500, 30), 20.0)
    n = 200_000
    draws = mu + sigma * rng.standard_normal((n, 30))
    freq = np.bincount(np.argmax(draws, axis=1), minlength=30) / n
    probs = np.array([win_probability(mu, sigma, k) for k in range(30)])
    assert np.all(np.abs(freq - probs) <= 5 * np.sqrt(probs * (1 - probs) / n) + 1e-6)
    assert sample_pick(mu, sigma, np.random.default_rng(0)) == sample_pick(mu, sigma, np.random.default_rng(0))


def test_whole_slate_probabilities_match_simulation() -> None:
    """Every decision of a Thompson policy reports each slot's conditional probability; their
    product is the slate's probability. Over 4,000 seeded decisions the frequency of each
    observed two-offer slate matches the mean reported probability of that slate."""
    prog = program(share=0.5, method="thompson", max_offers=2)
    cat = catalog([offer(f"o{i}") for i in range(5)], prog)
    props = np.array([0.30, 0.25, 0.20, 0.10, 0.05])
    ids = [o.offer_id for o in cat.offers]
    n = 4000
    seen: dict[tuple[str, ...], list[float]] = {}
    for s in range(n):
        d = decide(cat, member(), ids, props, as_of=AS_OF, seed=s)
        slate = tuple(o.offer_id for o in d.offers)
        seen.setdefault(slate, []).append(float(np.prod([o.probability for o in d.offers])))
    for slate, reported in seen.items():
        p = float(np.mean(reported))
        assert np.ptp(reported) < 1e-12  # the same slate always gets the same probability
        assert abs(len(reported) / n - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-3, (slate, len(reported) / n, p)
    assert sum(float(np.mean(r)) for r in seen.values()) == pytest.approx(1.0, abs=0.02)
