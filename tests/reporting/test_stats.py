"""The report's uncertainty with unequal query weights, against computations done here another way."""

from __future__ import annotations

import numpy as np
import pytest

from mlret.reporting.stats import bootstrap_interval, holm, paired_permutation_pvalue, weighted_mean


def test_bootstrap_interval_resamples_the_weighted_mean() -> None:
    """50 queries at 0 with weight 1 and 50 at 1 with weight 9: the weighted mean is 0.9, the plain one 0.5.

    Reference: the same percentile bootstrap written as a loop over 20,000 resamples of (value, weight)
    rows; the two differ only by Monte Carlo error (about 0.004 here).
    """
    values = np.array([0.0] * 50 + [1.0] * 50)
    weights = np.array([1.0] * 50 + [9.0] * 50)
    low, high = bootstrap_interval(values, weights)
    rng = np.random.default_rng(1)
    means = [weighted_mean(values[i], weights[i]) for i in rng.integers(0, 100, size=(20_000, 100))]
    ref_low, ref_high = np.percentile(means, [2.5, 97.5])
    assert low == pytest.approx(ref_low, abs=0.015) and high == pytest.approx(ref_high, abs=0.015)
    assert 0.84 < low < 0.9 < high < 0.95  # k ~ Binomial(100, 1/2) ones: 9k / (8k + 100) for k in about [40, 60]


def test_bootstrap_of_a_constant_is_the_constant() -> None:
    assert bootstrap_interval(np.array([0.4, 0.4, 0.4]), np.array([1.0, 2.0, 3.0])) == pytest.approx((0.4, 0.4))


def test_permutation_pvalue_is_the_exact_weighted_sign_flip_test(exact_sign_flip_pvalue) -> None:
    """Five queries: 2^5 = 32 sign flips, fewer than the resamples, so scipy enumerates them all.

    Differences (1, 1, 1, 1, -1) with weights (10, 10, 10, 10, 1): the observed sum is 39, and only
    flips keeping the four heavy signs equal reach |39|: 4 of 32. Unweighted it would be 12 of 32.
    """
    a = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    b = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    weights = np.array([10.0, 10.0, 10.0, 10.0, 1.0])
    assert exact_sign_flip_pvalue(a, b, weights) == 4 / 32 and exact_sign_flip_pvalue(a, b, np.ones(5)) == 12 / 32
    assert paired_permutation_pvalue(a, b, weights) == pytest.approx(4 / 32)
    rng = np.random.default_rng(5)
    for _ in range(3):  # random cases with ties and zero differences
        a, b, w = rng.integers(0, 4, 8) / 4, rng.integers(0, 4, 8) / 4, rng.uniform(0.1, 1, 8)
        assert paired_permutation_pvalue(a, b, w) == pytest.approx(exact_sign_flip_pvalue(a, b, w), abs=1e-12)


def test_paired_test_separates_a_consistent_difference_from_noise() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(size=200)
    assert paired_permutation_pvalue(a + 0.05, a, np.ones(200)) < 0.001
    assert paired_permutation_pvalue(a, a[rng.permutation(200)], np.ones(200)) > 0.01
    assert paired_permutation_pvalue(a, a, np.ones(200)) == 1.0


def test_holm_hand_examples(holm_by_hand) -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_by_hand([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, 0.001, 0.5, 0.04]) == pytest.approx([0.4, 0.004, 0.5, 0.12])
    assert holm([]) == []
