"""Encode every evaluation corpus with one model: the torch side of evaluation.

Under ``torchrun --nproc_per_node N stages/encode.py ...`` every rank encodes
every N-th text and rank 0 reassembles them in order and writes the files, so a
corpus that outgrows one device is spread over N of them. Scoring runs in
another process (FAISS and torch each bring an OpenMP runtime) and reads the
files through :mod:`mlret.data.corpora`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch.distributed as dist

from mlret.data.beir import load_beir
from mlret.data.corpora import EvalCorpora, beir_languages, save_beir_embeddings, save_embeddings
from mlret.distributed import rank_and_world
from mlret.models.encoder import Encoder, Side

logger = logging.getLogger(__name__)


def encode_corpora(encoder: Encoder, corpora: EvalCorpora, out_dir: str | Path) -> dict[str, int]:
    """Write ``out_dir/{dataset}/`` for each LAReQA dataset and ``out_dir/beir-{name}/{lang}/`` for each benchmark.

    Returns the number of texts encoded per folder, for the stage's summary line.
    """
    out_dir = Path(out_dir)
    encoded: dict[str, int] = {}
    for dataset in corpora.datasets:
        questions, candidates = corpora.tables(dataset)
        logger.info("%s: %d questions, %d candidates", dataset, len(questions), len(candidates))
        question_emb = encode_sharded(encoder, questions.text.tolist(), "query")
        candidate_emb = encode_sharded(encoder, candidates.text.tolist(), "passage")
        if rank_and_world()[0] == 0:
            save_embeddings(out_dir / dataset, questions, candidates, question_emb, candidate_emb)
        encoded[dataset] = len(questions) + len(candidates)
    for name, folder in corpora.beir.items():
        for lang_dir in beir_languages(folder):
            data = load_beir(lang_dir)
            query_emb = encode_sharded(encoder, data.queries.text.tolist(), "query")
            corpus_emb = encode_sharded(encoder, data.corpus.text.tolist(), "passage")
            if rank_and_world()[0] == 0:
                save_beir_embeddings(out_dir / f"beir-{name}" / lang_dir.name, data, query_emb, corpus_emb)
            encoded[f"beir-{name}/{lang_dir.name}"] = len(data.queries) + len(data.corpus)
    return encoded


def encode_sharded(encoder: Encoder, texts: list[str], side: Side) -> np.ndarray:
    """``encoder.encode(texts, side)``, split over the ranks of a torchrun job (same rows, same order)."""
    rank, world = rank_and_world()
    if world == 1:
        return encoder.encode(texts, side)
    mine = encoder.encode(texts[rank::world], side)
    shards: list[np.ndarray | None] = [None] * world
    dist.all_gather_object(shards, mine)
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    for r, shard in enumerate(shards):
        out[r::world] = shard
    return out
