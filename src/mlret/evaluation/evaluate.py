"""Score one model on every dataset: the body of the `evaluate` stage (the FAISS side; no torch).

For each dataset it builds one FAISS index per language and one over the whole
multilingual pool (kept for the search command and for pools that outgrow exact
search), scores the three LAReQA settings with exact full-pool ranks, and writes
per-query results, the X × Y mAP matrix and the model's summary metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mlret.artifacts import write_json, write_table
from mlret.evaluation.beir_eval import score_beir
from mlret.evaluation.corpus import load_eval_tables, load_embeddings
from mlret.evaluation.settings import pair_matrix, score_dataset, summarise
from mlret.retrieval.index import IndexParams, build_index, save_index


def build_indexes(index_dir: Path, candidates: pd.DataFrame, candidate_emb: np.ndarray, params: IndexParams) -> None:
    """``{lang}.faiss`` per language, ``all.faiss`` over the pool, and the candidates they index."""
    groups = [("all", candidates.index.to_numpy())] + [
        (str(lang), rows.index.to_numpy()) for lang, rows in candidates.groupby("lang", sort=True)
    ]
    for name, rows in tqdm(groups, desc=f"index {index_dir.name}", unit="index", leave=False):
        save_index(build_index(candidate_emb[rows], params), index_dir / f"{name}.faiss")
        write_table(index_dir / f"{name}.candidates.parquet", candidates.loc[rows, ["candidate_id", "lang", "text"]])


def evaluate_model(
    model: str,
    datasets: list[str],
    train_source: str,
    index_params: IndexParams,
    parallel_root: str | Path = "data/parallel",
    articles_path: str | Path = "data/splits/articles.json",
    embeddings_root: str | Path = "data/embeddings",
    index_root: str | Path = "data/index",
    eval_root: str | Path = "data/eval",
    metrics_root: str | Path = "metrics/eval",
    beir: dict[str, str] | None = None,
) -> dict[str, object]:
    metrics: dict[str, object] = {}
    for dataset in datasets:
        questions, candidates = load_eval_tables(parallel_root, dataset, train_source, articles_path)
        question_emb, candidate_emb = load_embeddings(Path(embeddings_root) / model / dataset, questions, candidates)
        build_indexes(Path(index_root) / model / dataset, candidates, candidate_emb, index_params)
        per_query, skipped = score_dataset(questions, candidates, question_emb, candidate_emb, desc=f"score {dataset}")
        out = Path(eval_root) / model / dataset
        write_table(out / "per_query.parquet", per_query)
        write_table(out / "pairs.parquet", pair_matrix(per_query).reset_index())
        metrics[dataset] = summarise(per_query, len(skipped))
    for name, folder in (beir or {}).items():
        metrics[f"beir-{name}"] = score_beir(folder, Path(embeddings_root) / model / f"beir-{name}", index_params)
    write_json(Path(metrics_root) / f"{model}.json", metrics)
    return metrics
