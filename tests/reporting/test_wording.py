"""The summary's conclusions switch on where the interval lies, on synthetic intervals."""

from __future__ import annotations

import math

import pytest

from mlret.reporting.wording import comparison_sentence, robustness_sentence


@pytest.mark.parametrize(
    ("estimate", "low", "high", "expected"),
    [
        # drop(hybrid) − drop(multi) < 0 throughout: hybrid loses less mAP
        (-0.021, -0.034, -0.008, "hybrid is more robust than multi by 0.021 [0.008, 0.034]"),
        (0.021, 0.008, 0.034, "hybrid is less robust than multi by 0.021 [0.008, 0.034]"),
        (-0.001, -0.009, 0.012, "no difference between hybrid and multi larger than 0.012 (95 % interval [−0.012, 0.009])"),
        (0.004, -0.002, 0.013, "no difference between hybrid and multi larger than 0.013 (95 % interval [−0.013, 0.002])"),
    ],
)
def test_robustness_wording_follows_the_interval(estimate: float, low: float, high: float, expected: str) -> None:
    assert robustness_sentence("hybrid", "multi", estimate, low, high) == expected


@pytest.mark.parametrize(
    ("low", "high", "starts"),
    [
        (-0.02, -1e-9, "hybrid is more robust"),
        (-0.02, 0.0, "no difference"),  # an interval touching zero does not exclude it
        (0.0, 0.02, "no difference"),
        (1e-9, 0.02, "hybrid is less robust"),
        (0.0, 0.0, "no difference"),
    ],
)
def test_robustness_wording_at_the_boundaries(low: float, high: float, starts: str) -> None:
    assert robustness_sentence("hybrid", "multi", (low + high) / 2, low, high).startswith(starts)


def test_no_difference_bound_is_the_larger_interval_end_and_rounds_without_a_negative_zero() -> None:
    assert "larger than 0.020 (95 % interval [0.000, 0.020])" in robustness_sentence("a", "b", -0.01, -0.02, 0.0)
    assert "larger than 0.030 (90 % interval [−0.030, 0.001])" in robustness_sentence("a", "b", 0.0, -0.0006, 0.03, confidence=0.9)


def test_comparison_wording_for_a_higher_is_better_difference() -> None:
    assert comparison_sentence("hybrid", "multi", 0.05, 0.01, 0.09, "better", "worse") == "hybrid is better than multi by 0.050 [0.010, 0.090]"
    assert comparison_sentence("hybrid", "multi", -0.05, -0.09, -0.01, "better", "worse") == "hybrid is worse than multi by 0.050 [0.010, 0.090]"


@pytest.mark.parametrize(("estimate", "low", "high"), [(0.0, 0.1, -0.1), (math.nan, -0.1, 0.1), (0.0, -math.inf, 0.1)])
def test_wording_rejects_an_interval_that_is_not_one(estimate: float, low: float, high: float) -> None:
    with pytest.raises(ValueError):
        robustness_sentence("a", "b", estimate, low, high)
