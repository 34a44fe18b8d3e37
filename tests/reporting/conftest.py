"""Reference computations for the report's statistics, done here another way (by enumeration, by hand)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest


def _exact_sign_flip_pvalue(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> float:
    d = (a - b) * weights
    observed = abs(d.sum())
    flips = [abs(np.dot(signs, d)) for signs in itertools.product((1.0, -1.0), repeat=len(d))]
    return float(np.mean([f >= observed * (1 - 1e-12) for f in flips]))


def _holm_by_hand(p: list[float]) -> list[float]:
    order = np.argsort(p, kind="stable")
    adjusted, running = np.empty(len(p)), 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (len(p) - i) * p[j]))
        adjusted[j] = running
    return adjusted.tolist()


@pytest.fixture(scope="session")
def exact_sign_flip_pvalue() -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
    """Two-sided p-value of the weighted sum of differences over all 2^n sign flips."""
    return _exact_sign_flip_pvalue


@pytest.fixture(scope="session")
def holm_by_hand() -> Callable[[list[float]], list[float]]:
    """Holm adjustment: sort, multiply the i-th smallest by (m - i), carry the running maximum, cap at 1."""
    return _holm_by_hand
