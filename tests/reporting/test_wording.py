"""The summary's sentences: one direction for every difference, and a verdict from the Holm decision."""

from __future__ import annotations

import math

import pytest

from mlret.reporting.stats import PERMUTATION_RESAMPLES
from mlret.reporting.wording import at_floor, comparison_sentence, contrast_sentence, interval_text, p_text, signed


def test_numbers_carry_their_sign_and_zero_carries_none() -> None:
    assert [signed(x) for x in (0.0021, -0.011, 0.0004, -0.0004, 0.0)] == [
        "+0.002",
        "−0.011",
        "0.000",
        "0.000",
        "0.000",
    ]
    assert interval_text(-0.011, 0.002) == "[−0.011, +0.002]"
    with pytest.raises(ValueError, match="reversed"):
        interval_text(0.1, -0.1)


@pytest.mark.parametrize(
    ("estimate", "low", "high", "p_holm", "expected"),
    [
        # the interval of drop(hybrid) − drop(multi), printed as it is: never negated, never swapped
        (
            -0.004,
            -0.011,
            0.002,
            0.62,
            "hybrid − multi = −0.004 [−0.011, +0.002]: not distinguishable (Holm p = 0.62; detectable with 80 % "
            "power: ±0.013)",
        ),
        (
            -0.012,
            -0.020,
            -0.004,
            0.01,
            "hybrid − multi = −0.012 [−0.020, −0.004]: hybrid drops less (more robust); Holm p = 0.01",
        ),
        (
            0.012,
            0.004,
            0.020,
            0.002,
            "hybrid − multi = +0.012 [+0.004, +0.020]: hybrid drops more (less robust); Holm p = 0.002",
        ),
        # the unadjusted interval excludes 0 but Holm does not separate them: Holm decides, and the sentence says so
        (
            -0.012,
            -0.020,
            -0.001,
            0.09,
            "hybrid − multi = −0.012 [−0.020, −0.001]: not distinguishable after Holm (Holm p = 0.09; the interval "
            "excludes 0 but not after Holm; detectable with 80 % power: ±0.013)",
        ),
    ],
)
def test_the_contrast_is_worded_in_the_tables_direction_and_decided_by_holm(
    estimate: float,
    low: float,
    high: float,
    p_holm: float,
    expected: str,
) -> None:
    assert contrast_sentence("hybrid", "multi", estimate, low, high, p_holm=p_holm, mde=0.013) == expected


def test_a_contrast_is_never_worded_as_an_equivalence() -> None:
    sentence = contrast_sentence("hybrid", "multi", 0.001, -0.009, 0.012, p_holm=0.9, mde=0.02)
    assert "no difference" not in sentence and "larger than" not in sentence and "not distinguishable" in sentence


@pytest.mark.parametrize(
    ("low", "high", "p_holm", "verdict"),
    [
        (-0.02, -1e-9, 0.04, "hybrid drops less"),
        (-0.02, -1e-9, 0.05, "not distinguishable after Holm"),  # Holm p at the level does not separate
        (-0.02, 0.0, 0.2, "not distinguishable ("),  # an interval touching zero does not exclude it
        (1e-9, 0.02, 0.049, "hybrid drops more"),
    ],
)
def test_the_verdict_at_the_boundaries(low: float, high: float, p_holm: float, verdict: str) -> None:
    sentence = contrast_sentence("hybrid", "multi", (low + high) / 2, low, high, p_holm=p_holm)
    assert sentence.split(": ", 1)[1].startswith(verdict)
    assert "power" not in sentence  # no power given, none claimed


def test_an_answer_states_the_detectable_effect_with_a_separated_verdict_too() -> None:
    answer = contrast_sentence(
        "hybrid", "multi", 0.057, 0.037, 0.078, p_holm=4.48e-05, mde=0.036, power_when_separated=True
    )
    assert answer == (
        "hybrid − multi = +0.057 [+0.037, +0.078]: hybrid drops more (less robust); Holm p = 4.48e-05; "
        "detectable with 80 % power: ±0.036"
    )
    assert "power" not in contrast_sentence("hybrid", "multi", 0.057, 0.037, 0.078, p_holm=4.48e-05, mde=0.036)


def test_holm_separating_an_interval_that_contains_zero_is_said() -> None:
    sentence = contrast_sentence("hybrid", "multi", -0.01, -0.02, 0.001, p_holm=0.03)
    assert sentence.endswith(
        "hybrid drops less (more robust); Holm p = 0.03; the interval contains 0 although Holm separates them"
    )


def test_an_exploratory_contrast_says_its_verdict_is_unadjusted() -> None:
    assert contrast_sentence("hybrid", "multi", -0.01, -0.02, -0.001, p=0.01) == (
        "hybrid − multi = −0.010 [−0.020, −0.001]: hybrid drops less (more robust) (unadjusted p = 0.01)"
    )
    assert contrast_sentence("hybrid", "multi", -0.01, -0.02, 0.004, p=0.2, mde=0.03) == (
        "hybrid − multi = −0.010 [−0.020, +0.004]: not distinguishable (unadjusted p = 0.2; detectable with 80 % "
        "power: ±0.030)"
    )
    assert contrast_sentence("a", "b", 0.01, 0.001, 0.02).endswith("a drops more (less robust) (unadjusted)")


@pytest.mark.parametrize(
    ("estimate", "low", "high", "p_holm", "expected"),
    [
        (0.05, 0.01, 0.09, 0.003, "hybrid − multi = +0.050 [+0.010, +0.090]: hybrid is better; Holm p = 0.003"),
        (-0.05, -0.09, -0.01, 0.003, "hybrid − multi = −0.050 [−0.090, −0.010]: hybrid is worse; Holm p = 0.003"),
        # an interval excluding 0 is no verdict when Holm does not separate them
        (
            -0.004,
            -0.008,
            -0.001,
            0.225,
            "hybrid − multi = −0.004 [−0.008, −0.001]: not distinguishable after Holm (Holm p = 0.225; the "
            "unadjusted interval excludes 0)",
        ),
        (0.002, -0.003, 0.007, 0.6, "hybrid − multi = +0.002 [−0.003, +0.007]: not distinguishable (Holm p = 0.6)"),
        (
            0.004,
            -0.001,
            0.009,
            0.01,
            "hybrid − multi = +0.004 [−0.001, +0.009]: hybrid is better; Holm p = 0.01; the interval, which also "
            "draws training runs, contains 0",
        ),
    ],
)
def test_the_papers_comparisons_follow_holm(
    estimate: float, low: float, high: float, p_holm: float, expected: str
) -> None:
    assert comparison_sentence("hybrid", "multi", estimate, low, high, p_holm, "better", "worse") == expected


def test_a_p_value_at_the_resampling_floor_is_a_bound() -> None:
    floor = 1 / (1 + PERMUTATION_RESAMPLES)
    assert at_floor(floor) and not at_floor(2 / (1 + PERMUTATION_RESAMPLES)) and not at_floor(2 / 2**14)
    assert p_text(floor, bound=at_floor(floor)) == "p ≤ 5e-05"
    assert p_text(0.0123) == "p = 0.0123"
    sentence = comparison_sentence("hybrid", "mono", 0.05, 0.01, 0.09, 6 * floor, "better", "worse", bound=True)
    assert sentence.endswith("Holm p ≤ 0.0003") and "p =" not in sentence


@pytest.mark.parametrize(("estimate", "low", "high"), [(0.0, 0.1, -0.1), (math.nan, -0.1, 0.1), (0.0, -math.inf, 0.1)])
def test_wording_rejects_an_interval_that_is_not_one(estimate: float, low: float, high: float) -> None:
    with pytest.raises(ValueError):
        contrast_sentence("a", "b", estimate, low, high, p_holm=0.5)
    with pytest.raises(ValueError):
        comparison_sentence("a", "b", estimate, low, high, 0.5, "better", "worse")
