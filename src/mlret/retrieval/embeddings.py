"""Encode every evaluation corpus of the study with one model (the torch side of evaluation).

Under ``torchrun --nproc_per_node N stages/encode.py --model ...`` every rank
encodes every N-th text and rank 0 reassembles them in order and writes the
files, so a corpus that outgrows one device is spread over N of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.distributed as dist

from mlret.distributed import rank_and_world
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
        question_emb = encode_sharded(encoder, questions.text.tolist(), "query")
        candidate_emb = encode_sharded(encoder, candidates.text.tolist(), "passage")
        if rank_and_world()[0] == 0:
            save_embeddings(Path(out_dir) / dataset, questions, candidates, question_emb, candidate_emb)
    for name, folder in (beir or {}).items():
        encode_beir(encoder, folder, Path(out_dir) / f"beir-{name}")


def encode_sharded(encoder: Encoder, texts: list[str], kind: str) -> np.ndarray:
    """``encoder.encode(texts, kind)``, split over the ranks of a torchrun job (same rows, same order)."""
    rank, world = rank_and_world()
    if world == 1:
        return encoder.encode(texts, kind)  # type: ignore[arg-type]
    mine = encoder.encode(texts[rank::world], kind)  # type: ignore[arg-type]
    shards: list[np.ndarray | None] = [None] * world
    dist.all_gather_object(shards, mine)
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    for r, shard in enumerate(shards):
        out[r::world] = shard
    return out
