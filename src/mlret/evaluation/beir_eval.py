"""Monolingual BEIR-layout benchmarks: nDCG@10 and Recall@100 per language, as BEIR reports them.

Each language folder is its own retrieval task (its queries against its
corpus). Encoding happens in the torch process (:func:`encode_beir`), scoring in
the FAISS one (:func:`score_beir`): top-100 from a flat index, re-ranked with the
exact scores of :mod:`mlret.evaluation.metrics`, then ir-measures on the
graded qrels, as BEIR does.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import ir_measures
import numpy as np

from mlret.artifacts import write_bytes
from mlret.data.beir import load_beir
from mlret.errors import MlretError
from mlret.evaluation import metrics as M

if TYPE_CHECKING:
    from mlret.models.encoder import Encoder
    from mlret.params import IndexParams

BEIR_MEASURES = (ir_measures.nDCG @ 10, ir_measures.R @ 100)
BEIR_NAMES = {"nDCG@10": "ndcg@10", "R@100": "recall@100"}


def languages(folder: str | Path) -> list[Path]:
    found = sorted(p for p in Path(folder).iterdir() if p.is_dir())
    if not found:
        raise MlretError(f"{folder}: no language subfolders.", "Lay the benchmark out as {folder}/{lang}/corpus.jsonl, queries.jsonl, qrels/test.tsv.")
    return found


def encode_beir(encoder: Encoder, folder: str | Path, out_dir: str | Path) -> None:
    for lang_dir in languages(folder):
        data = load_beir(lang_dir)
        for name, emb in (
            ("queries", encoder.encode(data.queries.text.tolist(), "query")),
            ("corpus", encoder.encode(data.corpus.text.tolist(), "passage")),
        ):
            buffer = io.BytesIO()
            np.save(buffer, emb)
            write_bytes(Path(out_dir) / lang_dir.name / f"{name}.npy", buffer.getvalue())


def score_beir(folder: str | Path, emb_dir: str | Path, index_params: IndexParams) -> dict[str, dict[str, float]]:
    from mlret.retrieval.index import build_index, search

    out: dict[str, dict[str, float]] = {}
    for lang_dir in languages(folder):
        data = load_beir(lang_dir)
        queries = np.load(Path(emb_dir) / lang_dir.name / "queries.npy")
        corpus = np.load(Path(emb_dir) / lang_dir.name / "corpus.npy")
        if len(queries) != len(data.queries) or len(corpus) != len(data.corpus):
            raise MlretError(f"{emb_dir}/{lang_dir.name}: embeddings do not match the benchmark files (they changed after encoding).", "Re-run the encode stage.")
        k = min(100, len(corpus))
        top, scores = search(build_index(corpus, index_params), queries, k, pool_embeddings=corpus)
        run = M.top_k_run(data.queries.query_id.tolist(), top, data.corpus.doc_id.tolist(), scores)
        result = M.evaluate_at_k(run, data.qrels, BEIR_MEASURES)
        out[lang_dir.name] = {BEIR_NAMES[k_]: v for k_, v in result.mean.items()} | {"queries": len(data.queries), "documents": len(data.corpus)}
    return out
