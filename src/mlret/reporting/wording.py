"""Sentences of the summary: a difference in one direction, and a verdict from the test that decides it.

Every difference a − b is printed as a − b, its interval in the same direction, so a reader who
has just read the definition never has to flip a sign. Whether two strategies are told apart is
the family's decision: the Holm-adjusted p against :data:`~mlret.vocabulary.ALPHA`, not whether the unadjusted
interval happens to exclude zero; where the two disagree the sentence says so. A difference
that is not distinguishable is never called "no difference": where the design's power is known,
the smallest difference it would have detected is given instead, which is what "not seen"
can honestly claim.

A Monte Carlo p-value cannot fall below 1 / (1 + resamples); at that floor the true value may be
smaller, so it (and the Holm value computed from it) is printed as a bound, "p ≤ …".
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from mlret.reporting.stats import PERMUTATION_RESAMPLES
from mlret.vocabulary import ALPHA


def _finite(**values: float) -> None:
    for label, x in values.items():
        if not math.isfinite(x):
            raise ValueError(f"{label} must be a finite number, got {x}")


def dataset_label(dataset: str, pools: Mapping[str, str] | None = None) -> str:
    """The dataset with its candidate pool in brackets, where ``pools`` names one."""
    return f"{dataset} ({pools[dataset]})" if pools and dataset in pools else dataset


def signed(x: float, digits: int = 3) -> str:
    """``x`` with its sign always shown (typographic minus), and no sign where it rounds to zero."""
    text = f"{x:+.{digits}f}"
    return f"{0:.{digits}f}" if float(text) == 0 else text.replace("-", "−")


def interval_text(low: float, high: float, digits: int = 3) -> str:
    """``[low, high]`` with signs, in the direction of the difference it bounds."""
    _finite(low=low, high=high)
    if low > high:
        raise ValueError(f"interval bounds are reversed: low {low} > high {high}")
    return f"[{signed(low, digits)}, {signed(high, digits)}]"


def at_floor(p: float, resamples: int = PERMUTATION_RESAMPLES) -> bool:
    """Whether a Monte Carlo p-value sits at its smallest possible value, 1 / (1 + resamples)."""
    return bool(np.isclose(p, 1 / (1 + resamples), rtol=1e-9, atol=0.0))


def p_text(p: float, bound: bool = False, label: str = "p") -> str:
    """``label = p``, or ``label ≤ p`` when ``p`` is an upper bound (a resampling floor or its Holm value)."""
    _finite(p=p)
    return f"{label} {'≤' if bound else '='} {p:.3g}"


def _detectable(mde: float, digits: int) -> str:
    return f"detectable with 80 % power: ±{abs(mde):.{digits}f}"


def contrast_sentence(
    name_a: str,
    name_b: str,
    estimate: float,
    low: float,
    high: float,
    p_holm: float = math.nan,
    mde: float = math.nan,
    p: float = math.nan,
    digits: int = 3,
    power_when_separated: bool = False,
) -> str:
    """Word the contrast of two strategies' drops, ``estimate`` = drop(a) − drop(b) [low, high].

    Below zero, a loses less under imbalance (is more robust). The verdict follows ``p_holm``
    against :data:`~mlret.vocabulary.ALPHA` when it is given (the primary family):

    - separated: "a − b = −0.012 [−0.020, −0.004]: a drops less (more robust); Holm p = 0.01";
    - not separated: "a − b = −0.004 [−0.011, +0.002]: not distinguishable (Holm p = 0.62;
      detectable with 80 % power: ±0.013)", with "after Holm" and a remark when the unadjusted
      interval excludes zero.

    Without ``p_holm`` (an exploratory contrast) the unadjusted ``p`` decides, or the interval
    when no p is given, and the sentence says the verdict is unadjusted.

    ``power_when_separated`` adds the detectable effect to a separated Holm verdict too, for a
    sentence that states a study's answer and with it the size of effect its design detects.
    """
    _finite(estimate=estimate)
    head = f"{name_a} − {name_b} = {signed(estimate, digits)} {interval_text(low, high, digits)}"
    excludes = low > 0 or high < 0
    direction = f"{name_a} drops less (more robust)" if estimate < 0 else f"{name_a} drops more (less robust)"
    power = [_detectable(mde, digits)] if math.isfinite(mde) else []
    if math.isfinite(p_holm):
        if p_holm < ALPHA and estimate != 0:
            remark = "; the interval contains 0 although Holm separates them" if not excludes else ""
            stated = [p_text(p_holm, label="Holm p"), *(power if power_when_separated else [])]
            return f"{head}: {direction}; {'; '.join(stated)}{remark}"
        if excludes:
            why = [p_text(p_holm, label="Holm p"), "the interval excludes 0 but not after Holm", *power]
            return f"{head}: not distinguishable after Holm ({'; '.join(why)})"
        return f"{head}: not distinguishable ({'; '.join([p_text(p_holm, label='Holm p'), *power])})"
    separated = (p < ALPHA) if math.isfinite(p) else excludes
    tested = [p_text(p, label="unadjusted p")] if math.isfinite(p) else ["unadjusted"]
    if separated and estimate != 0:
        return f"{head}: {direction} ({'; '.join(tested)})"
    return f"{head}: not distinguishable ({'; '.join([*tested, *power])})"


def comparison_sentence(
    name_a: str,
    name_b: str,
    estimate: float,
    low: float,
    high: float,
    p_holm: float,
    better: str,
    worse: str,
    bound: bool = False,
    digits: int = 3,
) -> str:
    """Word a − b = ``estimate`` [low, high] (positive = a is ``better``), decided by its Holm-adjusted p.

    - Holm p < :data:`~mlret.vocabulary.ALPHA`: "a − b = +0.050 [+0.010, +0.090]: a is better; Holm p = 0.003",
      with a remark when the interval contains zero (it also draws training runs, which the test
      does not);
    - otherwise: "a − b = −0.004 [−0.008, −0.001]: not distinguishable after Holm (Holm p = 0.225;
      the unadjusted interval excludes 0)", or "not distinguishable (Holm p = 0.62)" when the
      interval contains zero too.

    ``bound``: ``p_holm`` comes from a p-value at its resampling floor, so it is an upper bound.
    """
    _finite(estimate=estimate, p_holm=p_holm)
    head = f"{name_a} − {name_b} = {signed(estimate, digits)} {interval_text(low, high, digits)}"
    holm = p_text(p_holm, bound, "Holm p")
    excludes = low > 0 or high < 0
    if p_holm < ALPHA and estimate != 0:
        verdict = f"{name_a} is {better if estimate > 0 else worse}"
        remark = "; the interval, which also draws training runs, contains 0" if not excludes else ""
        return f"{head}: {verdict}; {holm}{remark}"
    if excludes:
        return f"{head}: not distinguishable after Holm ({holm}; the unadjusted interval excludes 0)"
    return f"{head}: not distinguishable ({holm})"


def severity_label(severity: float) -> str:
    """A severity as the report words it: the share of a reduced language's training questions kept."""
    return "absent (0 %)" if severity == 0 else f"{severity * 100:g} % kept"
