"""Uncertainty for the report: bootstrap intervals over queries, paired tests, Holm correction.

All resampling is scipy's (``scipy.stats.bootstrap``, ``scipy.stats.permutation_test``)
and the multiple-testing correction is statsmodels' ``multipletests``; this
module only says *what* is resampled. The unit is a query row of a setting
(one query in one (query, pool) language pair), weighted as in
:mod:`mlret.reporting.collect`; seeds are first averaged per query, so the
intervals describe query sampling, and the seed spread is reported beside them.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

CONFIDENCE = 0.95
RESAMPLES = 2000


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(values * weights) / np.sum(weights))


def bootstrap_interval(values: np.ndarray, weights: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the weighted mean, resampling query rows."""
    if len(values) < 2 or np.all(values == values[0]):
        v = weighted_mean(values, weights)
        return v, v

    def statistic(v: np.ndarray, w: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.sum(v * w, axis=axis) / np.sum(w, axis=axis)

    result = stats.bootstrap(
        (values, weights), statistic, paired=True, vectorized=True, confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES, method="percentile", rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_permutation_pvalue(a: np.ndarray, b: np.ndarray, weights: np.ndarray, seed: int = 0) -> float:
    """Two-sided p-value that two systems have the same weighted mean on the same queries (sign flips)."""
    diff = a - b
    if np.all(diff == 0):
        return 1.0

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.sum((x - y) * weights, axis=axis)

    result = stats.permutation_test(
        (a, b), statistic, permutation_type="samples", vectorized=True, n_resamples=RESAMPLES,
        alternative="two-sided", rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (family: every comparison passed in)."""
    if not pvalues:
        return []
    return [float(p) for p in multipletests(pvalues, method="holm")[1]]
