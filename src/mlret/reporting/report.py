"""The `report` stage: tables, figures, the generated summary, and the headline metrics."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from mlret.artifacts import write_bytes, write_json
from mlret.params import Params
from mlret.reporting.collect import load_results, model_names
from mlret.reporting.plots import pair_heatmaps, rank_distance_bars, robustness_bars, strategy_bars
from mlret.reporting.summary import summary_markdown
from mlret.reporting.tables import METRICS, results_markdown, results_table, robustness_table


def low_resource_languages(params: Params, languages: Iterable[str]) -> dict[str, set[str]]:
    """Per profile, the evaluated languages it keeps below their full share.

    Asked per language rather than read off the listed fractions, so a profile
    whose ``default`` is below 1 makes every unlisted language low-resource.
    """
    langs = sorted(set(languages))
    return {name: {lang for lang in langs if profile.fraction(lang) < 1.0} for name, profile in params.profiles.items()}


def headline_metrics(table: pd.DataFrame, headline: str) -> dict[str, object]:
    """``{profile: {dataset: {setting: {metric: value}}}}`` for the headline strategy, seed-averaged."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for row in table[table.strategy == headline].itertuples():
        cell = out.setdefault(row.profile, {}).setdefault(row.dataset, {}).setdefault(row.setting, {})
        for name in METRICS:
            value = getattr(row, name, np.nan)
            if not pd.isna(value):
                cell[name] = round(float(value), 4)
    return out


def _csv(frame: pd.DataFrame) -> bytes:
    """Six significant digits: enough for every reported number, stable under float noise in diffs."""
    return frame.to_csv(index=False, float_format="%.6g").encode("utf-8")


def build_report(params: Params, *, eval_root: str | Path, out_dir: str | Path, metrics_path: str | Path, plots_dir: str | Path) -> None:
    """Every output of the `report` stage, at the paths dvc.yaml gives its script."""
    out_dir = Path(out_dir)
    models = model_names(params.strategies, list(params.profiles), params.seeds)
    results = load_results(eval_root, models, params.data.eval_sources)
    table = results_table(results, headline=params.sampling)
    robustness = robustness_table(results, low_resource_languages(params, results.query_lang))
    write_bytes(out_dir / "results.csv", _csv(table))
    write_bytes(out_dir / "robustness.csv", _csv(robustness))
    write_bytes(out_dir / "results.md", ("# Results\n\n" + results_markdown(table, params.sampling)).encode("utf-8"))
    write_bytes(out_dir / "summary.md", summary_markdown(table, robustness, params.sampling).encode("utf-8"))
    figures = out_dir / "figures"
    for old in figures.glob("*.png"):
        old.unlink()
    pair_heatmaps(results, figures)
    strategy_bars(table, figures)
    rank_distance_bars(table, figures)
    robustness_bars(robustness, figures)
    # Long-format data behind the bar charts, for `dvc plots show/diff` across experiments.
    bars = table[["dataset", "setting", "strategy", "profile", "map"]].assign(run=lambda t: t.strategy + "/" + t.profile)
    write_bytes(Path(plots_dir) / "map.csv", _csv(bars))
    write_json(metrics_path, {"headline": params.sampling, **headline_metrics(table, params.sampling)})
