"""Monolingual BEIR-layout benchmarks: nDCG@10 and Recall@100 per language, as BEIR reports them.

Each language folder is its own retrieval task (its queries against its
corpus): the exact top-100 (:func:`mlret.scoring.ranking.exact_top_k`, the
same scores and tie rule as LAReQA scoring, so no index parameter changes a
number), then ir-measures on the graded qrels, as BEIR does.
"""

from __future__ import annotations

from pathlib import Path

import ir_measures

from mlret.data.beir import load_beir
from mlret.data.corpora import beir_languages, load_beir_embeddings
from mlret.scoring.ranking import exact_top_k
from mlret.scoring.runs import evaluate_at_k, top_k_run

BEIR_MEASURES = (ir_measures.nDCG @ 10, ir_measures.R @ 100)
BEIR_NAMES = {"nDCG@10": "ndcg@10", "R@100": "recall@100"}
TOP_K = 100


def score_beir(folder: str | Path, emb_dir: str | Path) -> dict[str, dict[str, float]]:
    """Per language: ``ndcg@10``, ``recall@100``, and how many queries and documents were scored."""
    out: dict[str, dict[str, float]] = {}
    for lang_dir in beir_languages(folder):
        data = load_beir(lang_dir)
        queries, corpus = load_beir_embeddings(Path(emb_dir) / lang_dir.name, data)
        top, scores = exact_top_k(queries, corpus, min(TOP_K, len(corpus)))
        run = top_k_run(data.queries.query_id.tolist(), top, data.corpus.doc_id.tolist(), scores)
        result = evaluate_at_k(run, data.qrels, BEIR_MEASURES)
        out[lang_dir.name] = {BEIR_NAMES[name]: value for name, value in result.mean.items()} | {
            "queries": len(data.queries),
            "documents": len(data.corpus),
            "dropped_queries": data.dropped_queries,
        }
    return out
