"""Score one model on every dataset: the body of the `evaluate` stage (numpy only; no torch, no FAISS).

LAReQA datasets are scored in their three settings with exact full-pool ranks
and written as per-query results; BEIR benchmarks are scored per language. The
model's summary metrics go to one JSON file, the one `dvc metrics` compares.
"""

from __future__ import annotations

from pathlib import Path

from mlret.artifacts import write_json, write_table
from mlret.data.corpora import EvalCorpora, load_embeddings
from mlret.scoring.beir import score_beir
from mlret.scoring.settings import score_dataset, summarise


def evaluate_model(corpora: EvalCorpora, embeddings_dir: str | Path, eval_dir: str | Path, metrics_path: str | Path) -> dict[str, object]:
    """Write ``eval_dir/{dataset}/per_query.parquet`` and ``metrics_path``; return the metrics."""
    metrics: dict[str, object] = {}
    for dataset in corpora.datasets:
        questions, candidates = corpora.tables(dataset)
        question_emb, candidate_emb = load_embeddings(Path(embeddings_dir) / dataset, questions, candidates)
        per_query, skipped = score_dataset(questions, candidates, question_emb, candidate_emb, desc=f"score {dataset}")
        write_table(Path(eval_dir) / dataset / "per_query.parquet", per_query)
        metrics[dataset] = summarise(per_query, len(skipped))
    for name, folder in corpora.beir.items():
        metrics[f"beir-{name}"] = score_beir(folder, Path(embeddings_dir) / f"beir-{name}")
    write_json(metrics_path, metrics)
    return metrics
