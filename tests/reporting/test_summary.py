"""The summary's answer, worded from hand-made robustness tables laid out as the report writes them."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mlret.reporting.stats import PERMUTATION_RESAMPLES
from mlret.reporting.summary import (
    answer_lines,
    claims_lines,
    exposure_lines,
    exposure_markdown,
    robustness_markdown,
    summary_markdown,
)

POOLS = {"xquad-r": "in-domain test articles", "mlqa-r": "full pool, zero-shot"}
NO_TABLE = pd.DataFrame(
    columns=["dataset", "setting", "strategy", "profile", "delta_vs_headline", "p_vs_headline", "p_vs_headline_holm"]
)
NO_EXPOSURE = pd.DataFrame(columns=["strategy", "profile", "seed", "lang", "share", "fraction_kept"])


def row(
    severity: float,
    specific: float,
    low: float,
    high: float,
    *,
    kind: str = "contrast",
    strategy: str = "hybrid − multi",
    scope: str = "all",
    dataset: str = "xquad-r",
    raw: float = 0.0,
    p: float = 0.5,
    p_holm: float = math.nan,
    mde: float = 0.013,
    units: str = "question",
    note: str = "",
) -> dict[str, object]:
    """One row of the robustness table; full drop = raw − specific, as the estimand defines it."""
    family = "" if kind == "drop" else ("primary" if scope == "all" else "exploratory")
    return {
        "dataset": dataset,
        "scope": scope,
        "severity": severity,
        "kind": kind,
        "strategy": strategy,
        "raw_drop": raw,
        "full_drop": raw - specific,
        "specific_drop": specific,
        "ci_low": low,
        "ci_high": high,
        "se": (high - low) / 4,
        "df": 5.0,
        "p": p,
        "p_holm": p_holm if family == "primary" else math.nan,
        "family": family,
        "mde80": mde if kind == "contrast" else math.nan,
        "cells": 4,
        "reference_seeds": 3,
        "reduced_seeds": 1,
        "units": units,
        "note": note,
    }


def table(rows: list[dict[str, object]]) -> pd.DataFrame:
    """The robustness table of ``rows`` (:func:`row`); with none, its empty frame has the same columns."""
    return pd.DataFrame(rows, columns=list(row(0.0, 0.0, 0.0, 0.0)))


def test_the_answer_prints_the_interval_with_the_tables_sign() -> None:
    """drop(hybrid) − drop(multi) = −0.004 [−0.011, +0.002]: printed so, never as hybrid's advantage [−0.002, 0.011]."""
    robustness = table([row(0.01, -0.004, -0.011, 0.002, raw=0.003, p=0.31, p_holm=0.62)])
    by_article = table([row(0.01, -0.004, -0.015, 0.006, units="article")])
    [line] = answer_lines(robustness, by_article, "hybrid", pools=POOLS)
    assert "[−0.011, +0.002]" in line and "[−0.002, 0.011]" not in line and "[−0.002, +0.011]" not in line
    assert line == (
        "- xquad-r (in-domain test articles), 1 % kept: hybrid − multi = −0.004 [−0.011, +0.002]: not distinguishable "
        "(Holm p = 0.62; detectable with 80 % power: ±0.013). Raw contrast (drops on the reduced languages' own "
        "rows): +0.003. 4 languages, 3 seeds on `balanced` and 1 seed per imbalanced run, questions resampled; "
        "resampling articles instead: [−0.015, +0.006]."
    )


@pytest.mark.parametrize(
    ("specific", "low", "high", "p_holm", "verdict"),
    [
        (-0.012, -0.020, -0.004, 0.01, "hybrid drops less (more robust); Holm p = 0.01."),
        (0.012, 0.004, 0.020, 0.01, "hybrid drops more (less robust); Holm p = 0.01."),
        (
            -0.012,
            -0.020,
            -0.001,
            0.09,
            "not distinguishable after Holm (Holm p = 0.09; the interval excludes 0 but not after Holm; ",
        ),
    ],
)
def test_the_answer_follows_the_holm_decision(
    specific: float, low: float, high: float, p_holm: float, verdict: str
) -> None:
    [line] = answer_lines(table([row(0.05, specific, low, high, p=p_holm / 4, p_holm=p_holm)]), table([]), "hybrid")
    assert line.startswith("- xquad-r, 5 % kept: hybrid − multi = " + f"{specific:+.3f}".replace("-", "−"))
    assert verdict in line and "resampling articles" not in line


def test_each_dataset_and_severity_gets_a_line_and_only_the_primary_family_enters_the_answer() -> None:
    robustness = table(
        [
            row(0.0, 0.03, 0.01, 0.05, p_holm=0.004),
            row(0.25, 0.0, -0.01, 0.01, p_holm=1.0),
            row(0.25, -0.2, -0.3, -0.1, scope="mono", p=0.001),  # exploratory: in the tables, not in the Answer
            row(0.25, 0.01, -0.01, 0.03, kind="drop", strategy="hybrid"),
            row(
                0.01,
                -0.002,
                math.nan,
                math.nan,
                dataset="mlqa-r",
                p=math.nan,
                note="needs ≥ 2 seeds of some run on mlqa-r",
            ),
        ]
    )
    lines = answer_lines(robustness, robustness.iloc[:0], "hybrid", pools=POOLS)
    assert [line.split(":")[0] for line in lines] == [
        "- mlqa-r (full pool, zero-shot), 1 % kept",
        "- xquad-r (in-domain test articles), absent (0 %)",
        "- xquad-r (in-domain test articles), 25 % kept",
    ]
    assert "hybrid − multi = −0.002, no interval: needs ≥ 2 seeds of some run on mlqa-r." in lines[0]
    assert "less robust" in lines[1] and "not distinguishable" in lines[2] and "−0.200" not in "".join(lines)


def test_without_both_strategies_the_answer_says_what_is_missing() -> None:
    assert answer_lines(table([]), table([]), "hybrid")[0].startswith("No contrast: it needs `hybrid` and `multi`")


def test_the_robustness_tables_show_raw_full_and_specific_drops_and_label_exploratory_scopes() -> None:
    robustness = table(
        [
            row(0.01, 0.02, 0.01, 0.03, kind="drop", strategy="hybrid", raw=0.05),
            row(0.01, 0.03, 0.01, 0.05, kind="drop", strategy="multi", raw=0.07),
            row(0.01, -0.01, -0.03, 0.01, raw=-0.02, p_holm=0.4),
            row(
                0.01,
                0.02,
                math.nan,
                math.nan,
                kind="drop",
                strategy="hybrid",
                scope="mono",
                raw=0.04,
                note="needs ≥ 2 seeds",
            ),
            row(0.01, -0.01, -0.02, -0.001, scope="mono", p=0.03),
        ]
    )
    lines = robustness_markdown(robustness, ["hybrid", "multi", "mono"])
    assert lines[:4] == ["### xquad-r, all settings", "", "| strategy | 1 % kept |", "|---|---|"]
    assert "| hybrid | +0.020 [+0.010, +0.030] (raw +0.050, full +0.030) |" in lines
    assert "| mono | not estimated |" in lines  # a strategy of the grid without its runs keeps its row
    assert "| **hybrid − multi** | −0.010 [−0.030, +0.010] (raw −0.020, full −0.010); Holm p = 0.4 |" in lines
    assert "### xquad-r, mono only (exploratory)" in lines
    assert "| hybrid | +0.020 no interval (raw +0.040, full +0.020) |" in lines
    assert (
        "| **hybrid − multi** (exploratory) | −0.010 [−0.020, −0.001] (raw 0.000, full +0.010); unadjusted p = 0.03 |"
        in lines
    )
    assert "No interval for hybrid at 1 % kept: needs ≥ 2 seeds." in lines


EXPOSURE = pd.DataFrame(
    [
        {"strategy": s, "profile": profile, "seed": 0, "lang": lang, "share": share, "fraction_kept": kept}
        for s, scale in (("hybrid", 1.0), ("multi", 2.5))
        for profile, lang, kept, share in (
            ("balanced", "hi", 1.0, 0.25),
            ("balanced", "ar", 1.0, 0.25),
            ("balanced", "en", 1.0, 0.5),
            ("ladder_a", "ar", 0.0, 0.0),
            ("ladder_a", "hi", 0.01, 0.0012 * scale),
            ("ladder_a", "en", 1.0, 0.3),
            ("ladder_b", "ar", 0.01, 0.0022 * scale),
            ("ladder_b", "hi", 0.0, 0.0),
            ("ladder_b", "en", 1.0, 0.3),
        )
    ]
)


def test_the_answer_states_the_realised_exposure_of_each_strategy() -> None:
    """At 1 % kept hi (ladder_a) and ar (ladder_b) got 0.12 % and 0.22 % of pair sides under hybrid: mean 0.17 %."""
    lines = exposure_lines(EXPOSURE, "hybrid")
    assert lines[0].endswith("; the same languages got 25 % on `balanced`:")
    assert lines[2:] == [
        "- absent (0 %): 0 % under hybrid vs 0 % under multi.",
        "- 1 % kept: 0.17 % under hybrid vs 0.425 % under multi.",
    ]
    assert exposure_lines(EXPOSURE[EXPOSURE.fraction_kept == 1], "hybrid") == []


def test_exposure_lists_each_reduced_language_per_run() -> None:
    exposure = pd.DataFrame(
        [
            {"strategy": "multi", "profile": "ladder_a", "seed": 0, "lang": "ar", "share": 0.0, "fraction_kept": 0.0},
            {
                "strategy": "multi",
                "profile": "ladder_a",
                "seed": 0,
                "lang": "hi",
                "share": 0.0012,
                "fraction_kept": 0.01,
            },
            {"strategy": "multi", "profile": "ladder_a", "seed": 0, "lang": "en", "share": 0.12, "fraction_kept": 1.0},
        ]
    )
    lines = exposure_markdown(exposure)
    assert lines[2:] == ["| ladder_a | ar | 0 | 0.0000 |", "| ladder_a | hi | 0.01 | 0.0012 |"]


def test_the_papers_comparisons_follow_holm_and_bound_a_floored_p() -> None:
    floor = 1 / (1 + PERMUTATION_RESAMPLES)
    comparisons = pd.DataFrame(
        [
            {
                "dataset": "xquad-r",
                "setting": "mono",
                "strategy": "multi",
                "profile": "balanced",
                "delta_vs_headline": -0.004,
                "delta_vs_headline_ci_low": -0.008,
                "delta_vs_headline_ci_high": -0.001,
                "p_vs_headline": 0.04,
                "p_vs_headline_holm": 0.225,
            },
            {
                "dataset": "xquad-r",
                "setting": "multi",
                "strategy": "multi",
                "profile": "balanced",
                "delta_vs_headline": 0.05,
                "delta_vs_headline_ci_low": 0.01,
                "delta_vs_headline_ci_high": 0.09,
                "p_vs_headline": floor,
                "p_vs_headline_holm": 3 * floor,
            },
        ]
    )
    assert claims_lines(comparisons, "hybrid") == [
        "- xquad-r, mono mAP: hybrid − multi = −0.004 [−0.008, −0.001]: not distinguishable after Holm (Holm p = "
        "0.225; the unadjusted interval excludes 0).",
        "- xquad-r, multi mAP: hybrid − multi = +0.050 [+0.010, +0.090]: hybrid is better; Holm p ≤ 0.00015.",
    ]


def test_the_summary_defines_the_estimand_and_never_counts_wins() -> None:
    robustness = table(
        [
            row(0.0, 0.03, 0.01, 0.05, p_holm=0.004),
            row(0.25, 0.0, -0.01, 0.01, p_holm=1.0),
            row(0.25, 0.01, -0.01, 0.03, kind="drop", strategy="hybrid"),
        ]
    )
    summary = summary_markdown(
        NO_TABLE,
        robustness,
        robustness.iloc[:0],
        EXPOSURE,
        "hybrid",
        {"xquad-r": "in-domain test articles"},
        {"hybrid": {"balanced": [0], "ladder_a": [0]}, "multi": {"balanced": [0], "ladder_a": [0]}},
        {"ladder_a": [0.0, 0.01]},
    )
    assert "wins" not in summary and "leads" not in summary and "larger than" not in summary
    assert "**Pools.** xquad-r: in-domain test articles." in summary
    answer = summary.split("## Answer")[1].split("## Robustness curve")[0]
    assert "The *specific drop*" in answer and "Contrast = specific drop(hybrid) − specific drop(multi)" in answer
    assert "Holm-adjusted" in answer and "exploratory" in answer
    assert "- 1 % kept: 0.17 % under hybrid vs 0.425 % under multi." in answer  # exposure inside the Answer
