"""Sentences of the summary worded from an interval, never from a count of wins.

A comparison is stated in one of three ways, decided by where the interval lies:
it excludes zero on the favourable side, it excludes zero on the other side, or
it contains zero, and then the honest statement is the largest difference the
interval still allows ("no difference larger than δ"), not "equal".
"""

from __future__ import annotations

import math

from mlret.reporting.stats import CONFIDENCE


def _number(x: float, digits: int) -> str:
    text = f"{x:.{digits}f}"
    return "0." + "0" * digits if float(text) == 0 else text.replace("-", "−")


def comparison_sentence(
    name_a: str, name_b: str, estimate: float, low: float, high: float,
    better: str, worse: str, confidence: float = CONFIDENCE, digits: int = 3,
) -> str:
    """Word ``estimate`` [low, high], an advantage of a over b (positive = a is better).

    - low > 0: "a is {better} than b by estimate [low, high]";
    - high < 0: "a is {worse} than b by −estimate [−high, −low]" (the magnitude, its interval flipped);
    - otherwise (the interval contains 0, endpoints included): "no difference between a and b
      larger than max(|low|, |high|) (95 % interval [low, high])".
    """
    for label, x in (("estimate", estimate), ("low", low), ("high", high)):
        if not math.isfinite(x):
            raise ValueError(f"{label} must be a finite number, got {x}")
    if low > high:
        raise ValueError(f"interval bounds are reversed: low {low} > high {high}")
    if low > 0:
        return f"{name_a} is {better} than {name_b} by {_number(estimate, digits)} [{_number(low, digits)}, {_number(high, digits)}]"
    if high < 0:
        return f"{name_a} is {worse} than {name_b} by {_number(-estimate, digits)} [{_number(-high, digits)}, {_number(-low, digits)}]"
    bound = max(abs(low), abs(high))
    return (
        f"no difference between {name_a} and {name_b} larger than {_number(bound, digits)} "
        f"({confidence * 100:g} % interval [{_number(low, digits)}, {_number(high, digits)}])"
    )


def robustness_sentence(
    name_a: str, name_b: str, estimate: float, low: float, high: float,
    confidence: float = CONFIDENCE, digits: int = 3,
) -> str:
    """Word the difference of two strategies' drops under language imbalance.

    Sign convention: a strategy's *drop* is its mAP on the balanced profile minus its mAP on an
    imbalanced one (positive = it loses mAP under imbalance), and ``estimate`` [low, high] is
    drop(a) − drop(b), as :func:`mlret.reporting.stats.two_level_bootstrap_contrast` returns it
    for ``groups=[a_bal, a_imb, b_bal, b_imb], coefficients=[1, -1, -1, 1]``. More robust means a
    smaller drop, so a's advantage is drop(b) − drop(a) = −estimate [−high, −low], worded by
    :func:`comparison_sentence`:

    - high < 0: "a is more robust than b by −estimate [−high, −low]";
    - low > 0: "a is less robust than b by estimate [low, high]";
    - otherwise: "no difference between a and b larger than max(|low|, |high|) (95 % interval
      [−high, −low])", the interval being that of a's advantage.
    """
    return comparison_sentence(name_a, name_b, -estimate, -high, -low, "more robust", "less robust", confidence, digits)
