"""Best-of-n's exact curve, its KL, and Gao et al.'s fits (lesson 15), against brute force and known answers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from course_lib.llm.overoptimisation import best_of_n_curve, fit_gao, kl_best_of_n


def test_kl_best_of_n_is_log_n_minus_n_minus_1_over_n():
    assert kl_best_of_n(1) == 0.0
    assert kl_best_of_n(2) == pytest.approx(math.log(2) - 0.5)
    np.testing.assert_allclose(kl_best_of_n(np.array([4, 64])), np.log([4, 64]) - np.array([3 / 4, 63 / 64]))
    with pytest.raises(ValueError, match=r"n: expected ints >= 1, got"):
        kl_best_of_n(0)


def brute_force(proxy, gold, n):
    """The mean gold and proxy of the reply the proxy picks, over every n-subset of the samples."""
    picks = [max(subset, key=lambda i: proxy[i]) for subset in itertools.combinations(range(len(proxy)), n)]
    return np.mean([gold[i] for i in picks]), np.mean([proxy[i] for i in picks])


def test_best_of_n_curve_equals_the_mean_over_every_subset():
    rng = np.random.default_rng(0)
    proxy, gold = rng.normal(size=(3, 9)), rng.normal(size=(3, 9))  # 3 prompts x 9 samples
    ns = [1, 2, 3, 5, 9]
    curve = best_of_n_curve(proxy, gold, ns)
    assert curve.gold.shape == (3, 5) and curve.proxy.shape == (3, 5)
    for p in range(3):
        for j, n in enumerate(ns):
            g, r = brute_force(proxy[p], gold[p], n)
            assert curve.gold[p, j] == pytest.approx(g) and curve.proxy[p, j] == pytest.approx(r)
    np.testing.assert_allclose(curve.gold[:, 0], gold.mean(axis=1))  # n = 1: the plain mean
    np.testing.assert_allclose(curve.proxy[:, -1], proxy.max(axis=1))  # n = N: the proxy's top sample
    np.testing.assert_allclose(curve.kl, kl_best_of_n(np.array(ns)))


def test_best_of_n_curve_rejects_bad_input():
    with pytest.raises(ValueError, match=r"proxy, gold: expected two \(P, N\) arrays"):
        best_of_n_curve(np.zeros((2, 4)), np.zeros((2, 3)), [1, 2])
    with pytest.raises(ValueError, match=r"ns: expected ints in \[1, 4\]"):
        best_of_n_curve(np.zeros((2, 4)), np.zeros((2, 4)), [1, 8])


def test_fit_gao_recovers_known_coefficients_and_the_peak():
    d = np.linspace(0.1, 3.0, 12)
    bon = fit_gao(d, d * (0.8 - 0.3 * d), "bon")
    assert bon.alpha == pytest.approx(0.8) and bon.beta == pytest.approx(0.3)
    assert bon.peak == pytest.approx(0.8 / 0.6)  # d (alpha - beta d) peaks at alpha / (2 beta)
    rl = fit_gao(d, d * (0.5 - 0.4 * np.log(d)), "rl")
    assert rl.alpha == pytest.approx(0.5) and rl.beta == pytest.approx(0.4)
    assert rl.peak == pytest.approx(math.exp(0.5 / 0.4 - 1))  # d/dd: alpha - beta (log d + 1) = 0
    np.testing.assert_allclose(rl(d), d * (0.5 - 0.4 * np.log(d)))
    assert fit_gao(d, 0.2 * d, "bon").peak == math.inf  # beta 0: no peak within reach
    with pytest.raises(ValueError, match=r"form: expected 'bon' or 'rl', got 'linear'"):
        fit_gao(d, d, "linear")
