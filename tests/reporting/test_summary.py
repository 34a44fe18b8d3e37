"""The summary's answer is worded from the headline contrast's interval alone (synthetic intervals)."""

from __future__ import annotations

import pandas as pd
import pytest

from mlret.reporting.summary import answer_lines, exposure_markdown, summary_markdown


def contrasts(rows: list[tuple[float, float, float, float]], units: str = "question") -> pd.DataFrame:
    """(severity, estimate, low, high) rows of the hybrid − multi contrast over all settings."""
    columns = ["dataset", "scope", "severity", "kind", "strategy", "drop_map", "ci_low", "ci_high", "cells", "reference_seeds", "units"]
    return pd.DataFrame([
        {"dataset": "xquad-r", "scope": "all", "severity": s, "kind": "contrast", "strategy": "hybrid − multi",
         "drop_map": d, "ci_low": lo, "ci_high": hi, "cells": 4, "reference_seeds": 3, "units": units}
        for s, d, lo, hi in rows
    ], columns=columns)


@pytest.mark.parametrize(
    ("estimate", "low", "high", "expected"),
    [
        # drop(hybrid) − drop(multi) below 0 throughout: hybrid loses less
        (-0.02, -0.03, -0.01, "hybrid is more robust than multi by 0.020 [0.010, 0.030]"),
        (0.02, 0.01, 0.03, "hybrid is less robust than multi by 0.020 [0.010, 0.030]"),
        (0.002, -0.004, 0.009, "no difference between hybrid and multi larger than 0.009"),
    ],
)
def test_the_answer_switches_with_the_interval(estimate: float, low: float, high: float, expected: str) -> None:
    lines = answer_lines(contrasts([(0.0, estimate, low, high)]), contrasts([(0.0, estimate, 2 * low, 2 * high)], "article"), "hybrid")
    assert len(lines) == 1 and lines[0].startswith(f"- xquad-r, absent (0 %): {expected}")
    assert f"half-width {(high - low) / 2:.3f}" in lines[0] and "4 languages, 3 balanced seeds" in lines[0]
    assert f"resampling articles instead: [{2 * low:+.3f}, {2 * high:+.3f}]" in lines[0]


def test_each_severity_gets_its_own_sentence_and_no_win_is_counted() -> None:
    robustness = contrasts([(0.0, 0.03, 0.01, 0.05), (0.25, 0.0, -0.01, 0.01)])
    lines = answer_lines(robustness, robustness.iloc[:0], "hybrid")
    assert [line.split(":")[0] for line in lines] == ["- xquad-r, absent (0 %)", "- xquad-r, 25 % kept"]
    assert "less robust" in lines[0] and "no difference" in lines[1]
    summary = summary_markdown(pd.DataFrame(columns=["dataset", "setting", "strategy", "profile", "delta_vs_headline", "p_vs_headline_holm"]),
                               robustness, robustness.iloc[:0], pd.DataFrame(columns=["strategy", "profile", "seed", "lang", "share", "fraction_kept"]),
                               "hybrid", {"xquad-r": "in-domain test articles"},
                               {"hybrid": {"balanced": [0], "ladder_a": [0]}, "multi": {"balanced": [0], "ladder_a": [0]}}, {"ladder_a": [0.0, 0.25]})
    assert "wins" not in summary and "leads" not in summary and "**Pools.** xquad-r: in-domain test articles." in summary


def test_without_both_strategies_the_answer_says_what_is_missing() -> None:
    assert answer_lines(contrasts([]), contrasts([]), "hybrid")[0].startswith("No contrast: it needs `hybrid` and `multi`")


def test_exposure_lists_each_reduced_language_per_run() -> None:
    exposure = pd.DataFrame([
        {"strategy": "multi", "profile": "ladder_a", "seed": 0, "lang": "ar", "share": 0.0, "fraction_kept": 0.0},
        {"strategy": "multi", "profile": "ladder_a", "seed": 0, "lang": "hi", "share": 0.0012, "fraction_kept": 0.01},
        {"strategy": "multi", "profile": "ladder_a", "seed": 0, "lang": "en", "share": 0.12, "fraction_kept": 1.0},
    ])
    lines = exposure_markdown(exposure)
    assert lines[2:] == ["| ladder_a | ar | 0 | 0.0000 |", "| ladder_a | hi | 0.01 | 0.0012 |"]
