"""Figures a reader can read: fitted scales, differences centred at 0, paper order, names without empty parts."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mlret.reporting.plots import (
    cell_text,
    colour_limits,
    figure_name,
    grouped_bars,
    in_order,
    pair_heatmaps,
    robustness_curves,
)
from mlret.vocabulary import Setting


def test_figure_names_have_no_empty_parts() -> None:
    assert figure_name("mlqa-r", "base", "-") == "mlqa-r-base"
    assert figure_name("mlqa-r", "hybrid", "lowres") == "mlqa-r-hybrid-lowres"


def test_settings_come_in_the_papers_order_and_strategies_in_the_given_one() -> None:
    assert in_order(["multi", "cross", "mono", "multi"], [s.value for s in Setting]) == ["mono", "cross", "multi"]
    assert in_order(["hybrid", "cross", "zeta", "mono"], ["mono", "cross", "multi", "hybrid"]) == [
        "mono",
        "cross",
        "hybrid",
        "zeta",
    ]


def test_colour_scales_fit_the_data_and_differences_are_centred() -> None:
    a = pd.DataFrame([[0.61, 0.72], [0.55, np.nan]])
    b = pd.DataFrame([[0.58, 0.70], [0.66, 0.64]])
    assert colour_limits([a, b]) == (0.55, 0.72)
    assert colour_limits([a - b]) == pytest.approx((-0.11, 0.03))
    assert colour_limits([a - b], centred=True) == pytest.approx((-0.11, 0.11))


def _table(base: float) -> pd.DataFrame:
    rows = [{"strategy": "base", "profile": "-", "map": base, "map_ci_low": base - 0.01, "map_ci_high": base + 0.01}]
    for strategy, value in (("hybrid", 0.61), ("mono", 0.58)):
        for profile, shift in (("balanced", 0.0), ("lowres", -0.01)):
            v = value + shift
            rows.append(
                {"strategy": strategy, "profile": profile, "map": v, "map_ci_low": v - 0.012, "map_ci_high": v + 0.015}
            )
    return pd.DataFrame(rows)


def test_bars_are_zoomed_on_the_intervals_with_one_value_each() -> None:
    fig, ax = plt.subplots()
    note = grouped_bars(ax, _table(0.57), "map", ["mono", "cross", "hybrid"])
    low, high = ax.get_ylim()
    assert 0.5 < low < 0.57 - 0.01 and 0.61 + 0.015 < high < 0.7  # not from 0; every interval inside
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mono", "hybrid"]
    heights = [round(bar.get_height(), 3) for bar in ax.patches]
    assert heights == [0.58, 0.61, 0.57, 0.6]  # balanced (mono, hybrid), then lowres: one value per bar
    assert note == "" and [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"] == [0.57]
    plt.close(fig)


def test_a_far_away_base_model_is_named_rather_than_squashing_the_axis() -> None:
    fig, ax = plt.subplots()
    note = grouped_bars(ax, _table(0.34), "map", ["mono", "hybrid"])
    assert ax.get_ylim()[0] > 0.5 and note == "base model 0.34, below the axis"
    plt.close(fig)


def test_difference_heatmaps_against_the_base_model_and_multi(tmp_path: Path) -> None:
    rows = [
        {
            "dataset": "d",
            "setting": setting,
            "strategy": strategy,
            "profile": profile,
            "query_lang": q,
            "pool_lang": p,
            "ap": 0.5,
        }
        for strategy, profile in (("base", "-"), ("multi", "balanced"), ("hybrid", "balanced"))
        for setting, pairs in (("mono", [("en", "en")]), ("cross", [("en", "ru")]), ("multi", [("en", "all")]))
        for q, p in pairs
    ]
    names = sorted(p.name for p in pair_heatmaps(pd.DataFrame(rows), tmp_path, ["multi", "hybrid"]))
    assert names == [
        "heatmap-d-base.png",
        "heatmap-d-hybrid-balanced-vs-base.png",
        "heatmap-d-hybrid-balanced-vs-multi.png",
        "heatmap-d-hybrid-balanced.png",
        "heatmap-d-multi-balanced-vs-base.png",
        "heatmap-d-multi-balanced.png",
    ]
    assert all((tmp_path / n).stat().st_size > 0 for n in names)


def test_heatmap_cells_that_round_to_zero_carry_no_sign() -> None:
    assert [cell_text(v, "+.2f") for v in (0.004, -0.004, -0.0, 0.006, -0.012)] == ["0", "0", "0", "+0.01", "-0.01"]
    assert cell_text(0.8123, ".2f") == "0.81"


def test_robustness_curves_plot_the_specific_drop_and_leave_a_point_without_interval_bare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plotted value is the specific drop (not the raw one); a NaN interval draws no bar, and the point is
    hollow."""
    rows = [
        {
            "dataset": "d",
            "scope": scope,
            "severity": severity,
            "kind": "drop",
            "strategy": strategy,
            "raw_drop": 0.5,
            "full_drop": 0.5 - specific,
            "specific_drop": specific,
            "ci_low": low,
            "ci_high": high,
        }
        for scope in ("all", "mono")
        for strategy, severity, specific, low, high in (
            ("multi", 0.01, 0.03, 0.01, 0.05),
            ("multi", 0.25, 0.01, -0.01, 0.02),
            ("hybrid", 0.01, 0.02, np.nan, np.nan),
            ("hybrid", 0.25, 0.0, -0.02, 0.02),
        )
    ] + [
        {
            "dataset": "d",
            "scope": "all",
            "severity": 0.01,
            "kind": "contrast",
            "strategy": "hybrid − multi",
            "raw_drop": 9.0,
            "full_drop": 9.0,
            "specific_drop": 9.0,
            "ci_low": 9.0,
            "ci_high": 9.0,
        }
    ]
    figures: list[plt.Figure] = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at what was drawn
    [path] = robustness_curves(pd.DataFrame(rows), tmp_path, ["multi", "hybrid"])
    assert path.name == "robustness-d.png" and path.stat().st_size > 0
    all_settings = figures[0].axes[0]
    points = {tuple(line.get_ydata()) for line in all_settings.get_lines() if line.get_marker() == "o"}
    assert points == {(0.03, 0.01), (0.02, 0.0), (0.02,)}  # each strategy's line, and hybrid's hollow point at 1 %
    bars = [segment for collection in all_settings.collections for segment in collection.get_segments() if len(segment)]
    assert sorted(tuple(np.round(s[:, 1], 6)) for s in bars) == [
        (-0.02, 0.02),
        (-0.01, 0.02),
        (0.01, 0.05),
    ]  # none for the NaN interval
