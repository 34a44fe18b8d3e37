"""Score one model on every dataset: the body of the `evaluate` stage (numpy only; no torch, no FAISS).

LAReQA datasets are scored in their three settings with exact full-pool ranks
and written as per-query results, with each setting's exact top-100 and its
qrels as TREC files, for trec_eval, ir-measures or ranx to score independently;
BEIR benchmarks are scored per language. The model's summary metrics go to one
JSON file, the one `dvc metrics` compares.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from mlret.artifacts import write_json, write_table
from mlret.data.corpora import EvalCorpora, load_embeddings
from mlret.scoring.beir import score_beir
from mlret.scoring.settings import SettingRun, score_dataset_runs, summarise
from mlret.scoring.trec import check_run_tag, write_trec_qrels, write_trec_run


def evaluate_model(
    corpora: EvalCorpora,
    embeddings_dir: str | Path,
    eval_dir: str | Path,
    metrics_path: str | Path,
    run_tag: str,
    trec_runs: Collection[str],
) -> dict[str, object]:
    """Write ``eval_dir/{dataset}/per_query.parquet``, its ``runs/`` and ``metrics_path``; return the metrics.

    ``run_tag`` names the model in the last column of its run files; ``trec_runs`` names the settings
    whose run and qrels files are written (``eval.trec_runs``).
    """
    check_run_tag(run_tag)
    metrics: dict[str, object] = {}
    for dataset in corpora.datasets:
        questions, candidates = corpora.tables(dataset)
        question_emb, candidate_emb = load_embeddings(Path(embeddings_dir) / dataset, questions, candidates)
        per_query, skipped, runs = score_dataset_runs(
            questions, candidates, question_emb, candidate_emb, desc=f"score {dataset}", run_settings=trec_runs
        )
        write_table(Path(eval_dir) / dataset / "per_query.parquet", per_query)
        write_runs(Path(eval_dir) / dataset / "runs", runs, run_tag)
        metrics[dataset] = {"pool": corpora.pool_label(dataset), **summarise(per_query, len(skipped))}
    for name, folder in corpora.beir.items():
        metrics[f"beir-{name}"] = score_beir(folder, Path(embeddings_dir) / f"beir-{name}")
    write_json(metrics_path, metrics)
    return metrics


def write_runs(folder: Path, runs: dict[str, SettingRun], run_tag: str) -> None:
    """``{setting}.run.gz`` (gzipped: cross holds pairs x queries x 100 lines) and ``{setting}.qrels`` per setting."""
    for name, run in runs.items():
        write_trec_run(folder / f"{name}.run.gz", run.run, run_tag)
        write_trec_qrels(folder / f"{name}.qrels", run.qrels)
