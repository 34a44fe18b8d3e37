"""Gather every evaluated model's per-query results into one table for the report.

Models are named as the stages name them within a base model's folders: ``base`` (the untuned
reference) and ``{strategy}/{profile}/{seed}`` (:class:`mlret.vocabulary.RunId`). Each per-query row also
gets its *weight* in the setting-level average (:func:`mlret.scoring.measures.macro_weights`:
queries within a (query, pool) language pair, then pairs, so row weight = 1 / (pairs × queries
in its pair)).
Every statistic of the report (means, bootstrap intervals, paired tests) uses
these weights, so the report's point estimates equal ``metrics/eval`` exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mlret.artifacts import read_table
from mlret.errors import MlretError
from mlret.scoring.measures import macro_weights
from mlret.scoring.settings import PER_QUERY_COLUMNS
from mlret.vocabulary import BASE, RunId, model_fields


def model_names(strategies: list[str], profiles: list[str], seeds: list[int]) -> list[str]:
    """The untuned model, then every run of ``strategies`` × ``profiles`` × ``seeds``, named within their base."""
    return [BASE] + [RunId(BASE, s, p, seed).name for s in strategies for p in profiles for seed in seeds]


def load_results(
    eval_root: str | Path, models: list[str], datasets: list[str] | Mapping[str, list[str]]
) -> pd.DataFrame:
    """Per-query rows of each model on each dataset (one list for all models, or each model's own)."""
    frames = []
    for model in models:
        strategy, profile, seed = model_fields(model)
        for dataset in datasets[model] if isinstance(datasets, Mapping) else datasets:
            path = Path(eval_root) / model / dataset / "per_query.parquet"
            frame = read_table(path, PER_QUERY_COLUMNS, "evaluate")
            frames.append(frame.assign(model=model, strategy=strategy, profile=profile, seed=seed, dataset=dataset))
    if not frames:
        raise MlretError("no evaluated model to report on.", "Check `runs` in params.yaml.")
    results = pd.concat(frames, ignore_index=True)
    pair = [results.query_lang.to_numpy(), results.pool_lang.to_numpy()]
    average = [results.model.to_numpy(), results.dataset.to_numpy(), results.setting.to_numpy()]
    return results.assign(weight=macro_weights(pair, within=average))


def pair_map(rows: pd.DataFrame, by: list[str] | None = None) -> pd.Series:
    """Mean AP of each (query language, pool language) pair over every row given, seeds included.

    The report's one X×Y aggregation: the heatmaps unstack it into a matrix, the pair tables
    write it out.
    """
    return rows.groupby([*(by or []), "query_lang", "pool_lang"]).ap.mean()
