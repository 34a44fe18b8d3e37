"""Uncertainty for the report: bootstrap intervals and sign-flip tests over whole questions, Holm correction.

The unit of a setting is a query row: one question asked in one (query language, pool language)
pair, weighted as in :mod:`mlret.reporting.collect` so that weighted means are the evaluate
stage's macro averages. The rows of one question are translations of it against translated
pools; their scores move together, so resampling rows as if independent would count a question
up to |languages|² times and make intervals too narrow and p-values too small. Every function
here therefore resamples or flips *clusters* (question ids, or articles as a coarser check):
:func:`cluster_bootstrap_interval` for a mean of seed-averaged values,
:func:`two_level_bootstrap_contrast` when the spread between seeds (training runs) must enter
too, and :func:`cluster_permutation_pvalue` for a paired test. They are written directly in
numpy, vectorised over resamples, because scipy's resamplers have no notion of a cluster; the
multiple-testing correction is statsmodels' ``multipletests``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from statsmodels.stats.multitest import multipletests

from mlret.vocabulary import ALPHA

#: The level of every interval: 1 − the significance level of every test.
CONFIDENCE = 1 - ALPHA


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(values * weights) / np.sum(weights))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (family: every comparison passed in)."""
    if not pvalues:
        return []
    return [float(p) for p in multipletests(pvalues, method="holm")[1]]


# --- Resampling whole questions -------------------------------------------------------------
#
# Every row of a drawn cluster enters a resample together, with its own weight, and the weighted
# mean is renormalised by the weight actually drawn (clusters hold different numbers of rows).

CLUSTER_RESAMPLES = 10_000
#: Sign flips of the cluster permutation test. A Monte Carlo p-value is never below
#: 1 / (1 + resamples) = 5.0e-5; after Holm over a family of m tests the smallest adjusted value is
#: m / (1 + resamples): 0.005 for m = 100, ten times below alpha = 0.05, so the resampling floor
#: never decides a test of a family of up to ~100 comparisons.
PERMUTATION_RESAMPLES = 20_000
_CHUNK_CELLS = 2_000_000  # resamples × clusters drawn at once: bounds memory at ~16 MB per array


class Contrast(NamedTuple):
    """A point estimate with its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float


def _cluster_index(clusters: np.ndarray, n_rows: int) -> np.ndarray:
    clusters = np.asarray(clusters)
    if clusters.shape != (n_rows,):
        raise ValueError(f"clusters has shape {clusters.shape}, expected one label per row ({n_rows},)")
    return np.unique(clusters, return_inverse=True)[1].reshape(-1)


def _check_rows(weights: np.ndarray, *values: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 1 or weights.size == 0:
        raise ValueError("weights must be a non-empty vector, one weight per row")
    if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        raise ValueError("weights must be finite and positive (a zero-weight cluster could be drawn alone)")
    for v in values:
        if v.shape[-1] != weights.size:
            raise ValueError(f"values have {v.shape[-1]} rows, weights {weights.size}")
        if not np.all(np.isfinite(v)):
            raise ValueError("values must be finite: drop rows without a value before resampling")
    return weights


def _check_resampling(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _chunks(resamples: int, n_clusters: int) -> list[int]:
    size = max(1, _CHUNK_CELLS // n_clusters)
    return [min(size, resamples - start) for start in range(0, resamples, size)]


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval by the inverted empirical CDF: the ⌈R·α/2⌉-th and ⌈R·(1−α/2)⌉-th smallest
    replicates, so that on a discrete bootstrap distribution the endpoints are values it can take."""
    alpha = 1 - confidence
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
    return float(low), float(high)


def cluster_bootstrap_interval(
    values: np.ndarray,
    weights: np.ndarray,
    clusters: np.ndarray,
    resamples: int = CLUSTER_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the weighted mean Σ wᵢvᵢ / Σ wᵢ, resampling whole clusters.

    With Sₖ = Σ_{i∈k} wᵢvᵢ and Wₖ = Σ_{i∈k} wᵢ for each of the K clusters, a resample draws K
    clusters uniformly with replacement, k₁…k_K, and its statistic is Σⱼ S_{kⱼ} / Σⱼ W_{kⱼ}: the
    rows of a cluster never separate, and the mean is renormalised by the weight drawn. The
    interval is the (1−confidence)/2 and (1+confidence)/2 percentiles of ``resamples`` such
    statistics (inverted empirical CDF). Clusters are labels of any type, one per row.
    """
    values = np.asarray(values, dtype=float)
    weights = _check_rows(weights, values)
    _check_resampling(resamples, confidence)
    index = _cluster_index(clusters, len(values))
    sums, totals = np.bincount(index, weights * values), np.bincount(index, weights)
    rng = np.random.default_rng(seed)
    replicates = []
    for size in _chunks(resamples, len(sums)):
        drawn = rng.integers(0, len(sums), size=(size, len(sums)))
        replicates.append(sums[drawn].sum(axis=1) / totals[drawn].sum(axis=1))
    return percentile_interval(np.concatenate(replicates), confidence)


def two_level_bootstrap_contrast(
    groups: list[np.ndarray],
    coefficients: list[float],
    weights: np.ndarray,
    clusters: np.ndarray,
    resamples: int = CLUSTER_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Contrast:
    """θ = Σ_g c_g · m_g, where m_g is the weighted mean over rows of group g's seed-averaged values.

    Each group is an array (seeds_g × rows) of one system's per-row values (one training run per
    seed); every group holds the same rows in the same order (the same queries, so the same
    weights and clusters), but groups may have different numbers of seeds, and seeds of different
    groups are different runs. The estimate is θ with m_g = Σᵢ wᵢ ā_{g,i} / Σᵢ wᵢ and
    ā_{g,i} = mean over g's seeds of its value on row i.

    One bootstrap replicate (two levels: seeds, then questions):
      1. for each group g independently, draw n_g of its n_g seeds uniformly with replacement and
         average the drawn seeds' rows: ā*_{g,i};
      2. draw K clusters uniformly with replacement, *one draw shared by all groups* (the groups
         are paired on the same questions), and compute each m*_g as in
         :func:`cluster_bootstrap_interval` (cluster sums of wᵢā*_{g,i} over drawn clusters,
         divided by the drawn weight);
      3. θ* = Σ_g c_g · m*_g.
    The interval is the percentile interval of ``resamples`` replicates θ*. Both sources of
    variance enter: which seeds happened to be trained, and which questions happened to be
    asked. With one seed per group step 1 is the identity and the result equals the one-level
    cluster bootstrap of Σ_g c_g vᵢ (same seed, same draws). With few seeds the seed level is
    coarse (3 seeds allow 10 distinct seed multisets) and its variance is shrunk by (n−1)/n.

    Examples: a difference of two strategies is ``groups=[a, b], coefficients=[1, -1]``; the
    difference of their drops under imbalance, (a_bal − a_imb) − (b_bal − b_imb), is
    ``groups=[a_bal, a_imb, b_bal, b_imb], coefficients=[1, -1, -1, 1]``.
    """
    if not groups or len(groups) != len(coefficients):
        raise ValueError("give one coefficient per group, and at least one group")
    arrays = [np.atleast_2d(np.asarray(g, dtype=float)) for g in groups]
    weights = _check_rows(weights, *arrays)
    _check_resampling(resamples, confidence)
    if any(len(a) == 0 for a in arrays):
        raise ValueError("every group needs at least one seed")
    index = _cluster_index(clusters, weights.size)
    n_clusters = int(index.max()) + 1
    totals = np.bincount(index, weights)
    # per group: (seeds × clusters) weighted sums, so a seed resample is a matrix product
    by_seed = [np.stack([np.bincount(index, weights * row, minlength=n_clusters) for row in a]) for a in arrays]
    estimate = sum(c * float(np.sum(weights * a.mean(axis=0)) / np.sum(weights)) for c, a in zip(coefficients, arrays))
    cluster_rng, seed_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    replicates = []
    for size in _chunks(resamples, n_clusters):
        drawn = cluster_rng.integers(0, n_clusters, size=(size, n_clusters))
        combined = np.zeros((size, n_clusters))
        for c, sums in zip(coefficients, by_seed):
            n = len(sums)
            counts = seed_rng.multinomial(n, np.full(n, 1 / n), size=size) if n > 1 else np.ones((size, 1))
            combined += c * (counts / n) @ sums
        replicates.append(np.take_along_axis(combined, drawn, axis=1).sum(axis=1) / totals[drawn].sum(axis=1))
    low, high = percentile_interval(np.concatenate(replicates), confidence)
    return Contrast(float(estimate), low, high)


def cluster_permutation_pvalue(
    a: np.ndarray,
    b: np.ndarray,
    weights: np.ndarray,
    clusters: np.ndarray,
    resamples: int = PERMUTATION_RESAMPLES,
    seed: int = 0,
) -> float:
    """Two-sided paired sign-flip test that two systems have the same weighted mean on the same rows.

    With dₖ = Σ_{i∈k} wᵢ(aᵢ − bᵢ) per cluster, the statistic is T = Σₖ dₖ (the weighted mean
    difference times the fixed total weight). Under the null each cluster's difference is
    symmetric about zero, so a whole cluster flips sign at once: T* = Σₖ εₖdₖ, εₖ = ±1. When
    2^K ≤ ``resamples`` all 2^K flips are enumerated and p = #{|T*| ≥ |T|} / 2^K (exact, the
    identity included); otherwise ``resamples`` random flips give
    p = (1 + #{|T*| ≥ |T|}) / (1 + resamples), never below 1 / (1 + resamples)
    (see :data:`PERMUTATION_RESAMPLES`). Ties count as "at least as extreme" up to rounding.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a and b must hold the same rows, got shapes {a.shape} and {b.shape}")
    weights = _check_rows(weights, a, b)
    _check_resampling(resamples, CONFIDENCE)
    d = np.bincount(_cluster_index(clusters, len(a)), weights * (a - b))
    observed = abs(float(d.sum()))
    tolerance = 1e-12 * float(np.abs(d).sum())
    if len(d) < 63 and 2 ** len(d) <= resamples:
        bits = (np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1
        flipped = np.abs((1 - 2 * bits) @ d)
        return float(np.mean(flipped >= observed - tolerance))
    rng = np.random.default_rng(seed)
    extreme = 0
    for size in _chunks(resamples, len(d)):
        signs = 1 - 2 * rng.integers(0, 2, size=(size, len(d)), dtype=np.int8)
        extreme += int(np.sum(np.abs(signs @ d) >= observed - tolerance))
    return (1 + extreme) / (1 + resamples)
