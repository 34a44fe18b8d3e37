"""The report's uncertainty with unequal query weights, against computations done here another way."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from mlret.reporting.stats import (
    PERMUTATION_RESAMPLES,
    Contrast,
    cluster_bootstrap_interval,
    cluster_permutation_pvalue,
    holm,
    two_level_bootstrap_contrast,
    weighted_mean,
)


def two_level_bootstrap_difference(a_by_seed: np.ndarray, b_by_seed: np.ndarray, *args, **kwargs) -> Contrast:
    """mean(a) − mean(b): the contrast with coefficients (1, −1), as the report's tables compute it."""
    return two_level_bootstrap_contrast([a_by_seed, b_by_seed], [1.0, -1.0], *args, **kwargs)


def test_singleton_clusters_give_the_exact_weighted_sign_flip_test(exact_sign_flip_pvalue) -> None:
    """Five questions of one row each: 2^5 = 32 sign flips, fewer than the resamples, so all are enumerated.

    Differences (1, 1, 1, 1, -1) with weights (10, 10, 10, 10, 1): the observed sum is 39, and only
    flips keeping the four heavy signs equal reach |39|: 4 of 32. Unweighted it would be 12 of 32.
    """
    a = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    b = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    weights = np.array([10.0, 10.0, 10.0, 10.0, 1.0])
    assert exact_sign_flip_pvalue(a, b, weights) == 4 / 32 and exact_sign_flip_pvalue(a, b, np.ones(5)) == 12 / 32
    assert cluster_permutation_pvalue(a, b, weights, np.arange(5)) == pytest.approx(4 / 32)
    rng = np.random.default_rng(5)
    for _ in range(3):  # random cases with ties and zero differences
        a, b, w = rng.integers(0, 4, 8) / 4, rng.integers(0, 4, 8) / 4, rng.uniform(0.1, 1, 8)
        assert cluster_permutation_pvalue(a, b, w, np.arange(8)) == pytest.approx(
            exact_sign_flip_pvalue(a, b, w), abs=1e-12
        )


def test_paired_test_separates_a_consistent_difference_from_noise() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(size=200)
    questions = np.arange(200)
    assert cluster_permutation_pvalue(a + 0.05, a, np.ones(200), questions) < 0.001
    assert cluster_permutation_pvalue(a, a[rng.permutation(200)], np.ones(200), questions) > 0.01
    assert cluster_permutation_pvalue(a, a, np.ones(200), questions) == 1.0


def test_holm_hand_examples(holm_by_hand) -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_by_hand([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, 0.001, 0.5, 0.04]) == pytest.approx([0.4, 0.004, 0.5, 0.12])
    assert holm([]) == []


# --- whole-question resampling --------------------------------------------------------------


def _exact_percentiles(replicates: list[float], confidence: float) -> tuple[float, float, float]:
    """Inverted-CDF percentiles of equally likely replicates, and the distance of the CDF's steps to
    the two thresholds (how far a Monte Carlo estimate may stray before it picks another value)."""
    atoms, counts = np.unique(np.round(replicates, 12), return_counts=True)
    cdf, alpha = np.cumsum(counts) / len(replicates), 1 - confidence
    low = atoms[np.searchsorted(cdf, alpha / 2 - 1e-12)]
    high = atoms[np.searchsorted(cdf, 1 - alpha / 2 - 1e-12)]
    margin = min(np.min(np.abs(cdf - alpha / 2)), np.min(np.abs(cdf - (1 - alpha / 2))))
    return float(low), float(high), float(margin)


def test_cluster_bootstrap_keeps_the_rows_of_a_question_together() -> None:
    """Two questions, hand-counted. q1: rows 0 and 0, weights 1 and 1; q2: one row 1, weight 2.

    Drawing two questions: (q1, q1) -> 0, (q1, q2) or (q2, q1) -> 2/4 = 0.5, (q2, q2) -> 1, with
    probabilities 1/4, 1/2, 1/4: the 30th and 70th percentiles are both 0.5, the 20th and 80th are 0
    and 1. Rows drawn one by one (three draws, k copies of the heavy row) give 0, 0.5, 4/5 and 1 with
    probabilities 8/27, 12/27, 6/27, 1/27: their 80th percentile is 0.8, a value no question draw makes.
    """
    values, weights, clusters = np.array([0.0, 0.0, 1.0]), np.array([1.0, 1.0, 2.0]), np.array(["q1", "q1", "q2"])
    assert cluster_bootstrap_interval(values, weights, clusters, confidence=0.4) == (0.5, 0.5)
    assert cluster_bootstrap_interval(values, weights, clusters, confidence=0.6) == (0.0, 1.0)
    assert cluster_bootstrap_interval(values, weights, np.arange(3), confidence=0.6) == (0.0, 0.8)


@pytest.mark.parametrize("confidence", [0.6, 0.8])
def test_cluster_bootstrap_matches_every_resample_enumerated(confidence: float) -> None:
    """Three questions of 2, 1 and 3 rows with unequal weights: all 3³ = 27 ordered draws enumerated.

    The statistic of a draw is Σ (w·v over the drawn questions' rows) / Σ (w over them); the Monte
    Carlo interval (20,000 resamples) must land on exactly the same two values, which the fixture
    is built to allow (the CDF's steps lie over 4 standard errors from both thresholds).
    """
    values = np.array([0.1, 0.5, 0.9, 0.3, 0.7, 0.2])
    weights = np.array([1.0, 3.0, 2.0, 1.0, 1.0, 4.0])
    clusters = np.array(["q1", "q1", "q2", "q3", "q3", "q3"])
    members = {q: clusters == q for q in ("q1", "q2", "q3")}
    replicates = []
    for draw in itertools.product(members, repeat=3):
        rows = np.concatenate([np.flatnonzero(members[q]) for q in draw])
        replicates.append(weighted_mean(values[rows], weights[rows]))
    low, high, margin = _exact_percentiles(replicates, confidence)
    assert margin > 4 * np.sqrt(0.25 / 20_000)
    assert cluster_bootstrap_interval(
        values, weights, clusters, resamples=20_000, confidence=confidence
    ) == pytest.approx((low, high), abs=1e-9)


def test_cluster_bootstrap_endpoints_are_values_a_resample_can_take() -> None:
    """Two single-row questions at 0 and 1: every resample is 0, 0.5 or 1, and so is every endpoint,
    whatever the confidence and however few the resamples (no interpolation between replicates)."""
    for resamples in (7, 101):
        for confidence in np.linspace(0.05, 0.95, 19):
            low, high = cluster_bootstrap_interval(
                np.array([0.0, 1.0]), np.ones(2), np.arange(2), resamples, 0, confidence
            )
            assert {low, high} <= {0.0, 0.5, 1.0}


def test_perfectly_correlated_translations_widen_the_interval_by_root_rows_per_question() -> None:
    """300 questions, each asked in 9 language rows that all score the same.

    Resampling rows treats the 9 copies as 9 independent queries, so its interval is √9 = 3 times
    too narrow; resampling questions recovers the width of 300 independent values.
    """
    rng = np.random.default_rng(0)
    per_question = rng.uniform(size=300)
    values, clusters = np.repeat(per_question, 9), np.repeat(np.arange(300), 9)
    weights = np.ones(len(values))
    q_low, q_high = cluster_bootstrap_interval(values, weights, clusters)
    r_low, r_high = cluster_bootstrap_interval(values, weights, np.arange(len(values)))
    assert 2.7 < (q_high - q_low) / (r_high - r_low) < 3.3
    expected = 2 * 1.96 * per_question.std() / np.sqrt(300)  # normal width with 300 independent values
    assert (q_high - q_low) == pytest.approx(expected, rel=0.1)


def test_cluster_bootstrap_rejects_misaligned_input() -> None:
    with pytest.raises(ValueError, match="one label per row"):
        cluster_bootstrap_interval(np.ones(3), np.ones(3), np.arange(2))
    with pytest.raises(ValueError, match="positive"):
        cluster_bootstrap_interval(np.ones(3), np.array([1.0, 0.0, 1.0]), np.arange(3))
    with pytest.raises(ValueError, match="finite"):
        cluster_bootstrap_interval(np.array([1.0, np.nan, 1.0]), np.ones(3), np.arange(3))


def test_two_level_bootstrap_with_one_seed_is_the_one_level_bootstrap_of_the_difference() -> None:
    rng = np.random.default_rng(1)
    clusters = rng.integers(0, 40, 200)
    a, b, w = rng.uniform(size=200), rng.uniform(size=200), rng.uniform(0.5, 2, 200)
    result = two_level_bootstrap_difference(a[None, :], b[None, :], w, clusters, resamples=3000, seed=4)
    assert result.estimate == pytest.approx(weighted_mean(a - b, w))
    assert (result.low, result.high) == pytest.approx(
        cluster_bootstrap_interval(a - b, w, clusters, resamples=3000, seed=4), abs=1e-12
    )


def test_two_level_bootstrap_pairs_the_questions_of_both_strategies() -> None:
    """b is a minus 0.01 on every row while rows vary from 0 to 1: resampling the same questions for
    both leaves the difference at exactly 0.01; independent draws would spread it over ±0.1."""
    rng = np.random.default_rng(2)
    a = np.repeat(rng.uniform(size=50), 4)
    clusters = np.repeat(np.arange(50), 4)
    result = two_level_bootstrap_difference(a[None, :], a[None, :] - 0.01, np.ones(200), clusters)
    assert result == pytest.approx((0.01, 0.01, 0.01))


def test_two_level_bootstrap_adds_the_seed_variance() -> None:
    """Every row of a scores 0.5 under one seed and 0.7 under the other; b scores 0.5 (one seed).

    Redrawing a's two seeds gives seed means 0.5, 0.6, 0.7 with probabilities 1/4, 1/2, 1/4, so the
    difference takes 0, 0.1, 0.2 whichever questions are drawn: the 95% interval is [0, 0.2]. A
    bootstrap over questions of the seed means alone would say [0.1, 0.1].
    """
    a = np.array([[0.5] * 12, [0.7] * 12])
    b = np.full((1, 12), 0.5)
    result = two_level_bootstrap_difference(a, b, np.ones(12), np.repeat(np.arange(4), 3))
    assert result.estimate == pytest.approx(0.1)
    assert (result.low, result.high) == pytest.approx((0.0, 0.2))


@pytest.mark.parametrize("confidence", [0.3, 0.6, 0.9])
def test_two_level_bootstrap_matches_every_resample_enumerated(confidence: float) -> None:
    """a and b: 2 seeds each, 2 questions of 2 and 1 rows with unequal weights.

    Every replicate enumerated: a's seed draws (2² ordered), b's (2²), the shared question draws
    (2²), 64 equally likely; each replicate is Σ w·(mean of drawn a seeds − mean of drawn b seeds)
    over the drawn questions' rows divided by their weight.
    """
    a = np.array([[0.2, 0.6, 0.8], [0.4, 0.6, 0.4]])
    b = np.array([[0.2, 0.4, 0.2], [0.2, 0.2, 0.6]])
    weights, clusters = np.array([1.0, 1.0, 2.0]), np.array([7, 7, 9])
    members = [np.flatnonzero(clusters == q) for q in (7, 9)]
    replicates = []
    for sa in itertools.product(range(2), repeat=2):
        for sb in itertools.product(range(2), repeat=2):
            diff = a[list(sa)].mean(axis=0) - b[list(sb)].mean(axis=0)
            for draw in itertools.product(members, repeat=2):
                rows = np.concatenate(draw)
                replicates.append(weighted_mean(diff[rows], weights[rows]))
    low, high, margin = _exact_percentiles(replicates, confidence)
    assert margin > 4 * np.sqrt(0.25 / 20_000)
    result = two_level_bootstrap_difference(a, b, weights, clusters, resamples=20_000, confidence=confidence)
    assert result.estimate == pytest.approx(weighted_mean(a.mean(axis=0) - b.mean(axis=0), weights))
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-9)


def test_two_level_contrast_of_drops_weighs_each_group_by_its_coefficient() -> None:
    """Drop difference (a_bal − a_imb) − (b_bal − b_imb) with constant rows: 0.1 − 0.3 = −0.2 exactly."""
    rows = 6
    groups = [np.full((2, rows), 0.8), np.full((3, rows), 0.7), np.full((1, rows), 0.9), np.full((2, rows), 0.6)]
    result = two_level_bootstrap_contrast(groups, [1, -1, -1, 1], np.ones(rows), np.arange(rows) // 2)
    assert result == pytest.approx((-0.2, -0.2, -0.2))
    with pytest.raises(ValueError, match="one coefficient per group"):
        two_level_bootstrap_contrast(groups, [1, -1], np.ones(rows), np.arange(rows))


def test_cluster_permutation_flips_a_question_as_a_whole() -> None:
    """q1: two rows a − b = 1 with weights 1 and 2 (d = 3); q2 and q3: one row each, a − b = 1, weight 1.

    T = 5. Flipping questions: ±3 ± 1 ± 1 reaches |5| in 2 of 8 sign patterns, p = 1/4. Flipping
    the four rows separately (±1 ± 2 ± 1 ± 1) reaches it in 2 of 16, p = 1/8.
    """
    a, b = np.ones(4), np.zeros(4)
    weights, clusters = np.array([1.0, 2.0, 1.0, 1.0]), np.array(["q1", "q1", "q2", "q3"])
    assert cluster_permutation_pvalue(a, b, weights, clusters) == 0.25
    assert cluster_permutation_pvalue(a, b, weights, np.arange(4)) == 0.125
    assert cluster_permutation_pvalue(a, a, weights, clusters) == 1.0


def test_cluster_permutation_is_exact_when_every_flip_can_be_enumerated(exact_sign_flip_pvalue) -> None:
    """11 questions of random sizes: 2^11 = 2,048 flips. With resamples ≥ 2,048 the p-value is the
    exact one (the sign-flip test on per-question weighted sums); one resample fewer, it is Monte Carlo."""
    rng = np.random.default_rng(3)
    clusters = rng.integers(0, 11, 60)
    a, b, w = rng.uniform(size=60), rng.uniform(size=60), rng.uniform(0.1, 1, 60)
    by_question = np.bincount(clusters, w * (a - b))
    exact = exact_sign_flip_pvalue(by_question, np.zeros(11), np.ones(11))
    assert cluster_permutation_pvalue(a, b, w, clusters, resamples=2048) == pytest.approx(exact, abs=1e-12)
    monte_carlo = cluster_permutation_pvalue(a, b, w, clusters, resamples=2047)
    assert monte_carlo != pytest.approx(exact, abs=1e-12)
    assert monte_carlo * 2048 == pytest.approx(round(monte_carlo * 2048))  # (1 + count) / (1 + 2047)


def test_cluster_permutation_monte_carlo_estimates_the_exact_pvalue() -> None:
    """18 questions: 262,144 flips enumerated here; 20,000 random flips agree within 4 standard errors."""
    rng = np.random.default_rng(4)
    d = rng.normal(0.15, 1, 18)
    bits = (np.arange(2**18)[:, None] >> np.arange(18)) & 1
    exact = float(np.mean(np.abs((1 - 2 * bits) @ d) >= abs(d.sum()) * (1 - 1e-12)))
    p = cluster_permutation_pvalue(d, np.zeros(18), np.ones(18), np.arange(18))
    assert abs(p - exact) < 4 * np.sqrt(exact * (1 - exact) / 20_000)


def test_cluster_permutation_counts_ties_as_extreme() -> None:
    """16 questions with differences ±1 (ten +1, six −1): T = 4 and a flip gives T* = 2k − 16 with
    k ~ Binomial(16, 1/2) pluses, so p = P(k ≥ 10 or k ≤ 6); 2^16 flips exceed the resamples (Monte
    Carlo), and ties |T*| = 4 are a fifth of that mass."""
    d = np.array([1.0] * 10 + [-1.0] * 6)
    exact = float(2 * stats.binom.sf(9, 16, 0.5))
    p = cluster_permutation_pvalue(d, np.zeros(16), np.ones(16), np.arange(16))
    assert abs(p - exact) < 4 * np.sqrt(exact * (1 - exact) / 20_000)


def test_cluster_permutation_floor_is_one_over_resamples_plus_one() -> None:
    """40 questions all favouring a: only the two all-equal sign patterns reach |T| (chance 2^-39)."""
    p = cluster_permutation_pvalue(np.ones(80), np.zeros(80), np.ones(80), np.repeat(np.arange(40), 2))
    assert p == 1 / (1 + PERMUTATION_RESAMPLES)


def test_a_family_of_100_decisive_tests_stays_decisive_after_holm_at_the_default_resamples() -> None:
    """100 tests each at the floor (40 questions all favouring a): Holm multiplies them by up to 100, and
    the adjusted p must still sit ten times below 0.05, so the resampling floor never decides a verdict."""
    p = cluster_permutation_pvalue(np.ones(80), np.zeros(80), np.ones(80), np.repeat(np.arange(40), 2))
    adjusted = holm([p] * 100)
    assert max(adjusted) == pytest.approx(100 * p) and max(adjusted) <= 0.05 / 10


def test_translations_no_longer_push_a_small_difference_to_the_floor() -> None:
    """316 questions, each in 11 language rows with the same difference: per question a − b has mean
    0.006 and sd 0.05. As 3,476 independent rows (one cluster per row) the difference looks 7
    standard errors away and the test sits at its floor, 1/20,001; as 316 questions it is 2
    standard errors away, p about 0.04, far above that floor."""
    rng = np.random.default_rng(5)
    diff = rng.normal(size=316)
    diff = 0.006 + 0.05 * (diff - diff.mean()) / diff.std()
    b = np.repeat(rng.uniform(0.2, 0.8, 316), 11)
    a, clusters, weights = b + np.repeat(diff, 11), np.repeat(np.arange(316), 11), np.ones(316 * 11)
    assert cluster_permutation_pvalue(a, b, weights, np.arange(316 * 11)) == 1 / (1 + PERMUTATION_RESAMPLES)
    p = cluster_permutation_pvalue(a, b, weights, clusters)
    assert 0.02 < p < 0.06
    assert p > 100 / (1 + PERMUTATION_RESAMPLES)
