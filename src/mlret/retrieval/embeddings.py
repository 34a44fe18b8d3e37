"""Encode every evaluation corpus of the study with one model (the torch side of evaluation)."""

from __future__ import annotations

from pathlib import Path

from mlret.evaluation.beir_eval import encode_beir
from mlret.evaluation.corpus import load_eval_tables, save_embeddings
from mlret.models.encoder import Encoder
from mlret.params import ModelParams


def encode_corpora(
    checkpoint: str | Path,
    model: ModelParams,
    datasets: list[str],
    train_source: str,
    parallel_root: str | Path,
    articles_path: str | Path,
    out_dir: str | Path,
    batch_size: int = 64,
    device: str | None = None,
    beir: dict[str, str] | None = None,
) -> None:
    """Write ``out_dir/{dataset}/{questions,candidates}.npy`` (+ id tables) for each dataset."""
    encoder = Encoder(checkpoint, model, batch_size=batch_size, device=device)
    for dataset in datasets:
        questions, candidates = load_eval_tables(parallel_root, dataset, train_source, articles_path)
        print(f"{dataset}: {len(questions)} questions, {len(candidates)} candidates")
        question_emb = encoder.encode(questions.text.tolist(), "query")
        candidate_emb = encoder.encode(candidates.text.tolist(), "passage")
        save_embeddings(Path(out_dir) / dataset, questions, candidates, question_emb, candidate_emb)
    for name, folder in (beir or {}).items():
        encode_beir(encoder, folder, Path(out_dir) / f"beir-{name}")
