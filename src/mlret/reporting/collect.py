"""Gather every evaluated model's per-query results into one table for the report.

Models are named as the stages name them: ``base`` (the untuned reference) and
``{strategy}/{profile}/{seed}``. Each per-query row also gets its *weight* in
the setting-level average: settings average queries within a (query, pool)
language pair, then pairs, so row weight = 1 / (pairs × queries in its pair).
Every statistic of the report (means, bootstrap intervals, paired tests) uses
these weights, so the report's point estimates equal ``metrics/eval`` exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mlret.artifacts import read_table
from mlret.errors import MlretError
from mlret.scoring.settings import PER_QUERY_COLUMNS

BASE = "base"


def model_names(strategies: list[str], profiles: list[str], seeds: list[int]) -> list[str]:
    return [BASE] + [f"{s}/{p}/{seed}" for s in strategies for p in profiles for seed in seeds]


def load_results(
    eval_root: str | Path, models: list[str], datasets: list[str] | Mapping[str, list[str]]
) -> pd.DataFrame:
    """Per-query rows of each model on each dataset (one list for all models, or each model's own)."""
    frames = []
    for model in models:
        strategy, profile, seed = (BASE, "-", -1) if model == BASE else _split(model)
        for dataset in datasets[model] if isinstance(datasets, Mapping) else datasets:
            path = Path(eval_root) / model / dataset / "per_query.parquet"
            frame = read_table(path, PER_QUERY_COLUMNS, "evaluate")
            frames.append(frame.assign(model=model, strategy=strategy, profile=profile, seed=seed, dataset=dataset))
    if not frames:
        raise MlretError("no evaluated model to report on.", "Check `runs` in params.yaml.")
    results = pd.concat(frames, ignore_index=True)
    keys = ["model", "dataset", "setting"]
    results["pair"] = results.query_lang + ">" + results.pool_lang
    pair_size = results.groupby([*keys, "pair"]).qid.transform("size")
    n_pairs = results.groupby(keys).pair.transform("nunique")
    return results.assign(weight=1.0 / (pair_size * n_pairs))


def pair_map(rows: pd.DataFrame, by: list[str] | None = None) -> pd.Series:
    """Mean AP of each (query language, pool language) pair over every row given, seeds included.

    The report's one X×Y aggregation: the heatmaps unstack it into a matrix, the pair tables
    write it out.
    """
    return rows.groupby([*(by or []), "query_lang", "pool_lang"]).ap.mean()


def _split(model: str) -> tuple[str, str, int]:
    strategy, profile, seed = model.split("/")
    return strategy, profile, int(seed)
