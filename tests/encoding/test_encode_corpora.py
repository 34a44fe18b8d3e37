"""Encoding writes, for every corpus, the encoder's own rows in table order; scoring reads them back."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mlret.data.beir import load_beir
from mlret.data.corpora import EvalCorpora, load_beir_embeddings
from mlret.encoding.corpora import encode_corpora
from mlret.models.encoder import Encoder
from mlret.scoring.beir import score_beir
from mlret.scoring.ranking import similarity_scores


def test_beir_encoding_then_scoring_with_a_real_encoder(
    tmp_path: Path, tiny_checkpoint: Path, make_params, beir_langs, write_beir_language
) -> None:
    """Stored rows are the encoder's query and passage embeddings in file order; scores follow from them."""
    for lang in beir_langs:
        write_beir_language(tmp_path / "bench", lang)
    encoder = Encoder(tiny_checkpoint, make_params(), show_progress=False)
    corpora = EvalCorpora(
        tmp_path / "parallel", tmp_path / "articles.json", "none", [], {"tiny": str(tmp_path / "bench")}
    )
    encoded = encode_corpora(encoder, corpora, tmp_path / "emb")
    assert encoded == {"beir-tiny/en": 2 + 3, "beir-tiny/ru": 2 + 3}  # judged queries + documents
    scores = score_beir(tmp_path / "bench", tmp_path / "emb" / "beir-tiny")
    for lang in beir_langs:
        data = load_beir(tmp_path / "bench" / lang)
        queries, corpus = load_beir_embeddings(tmp_path / "emb" / "beir-tiny" / lang, data)
        np.testing.assert_array_equal(queries, encoder.encode(data.queries.text.tolist(), "query"))
        np.testing.assert_array_equal(corpus, encoder.encode(data.corpus.text.tolist(), "passage"))
        order = np.argsort(-similarity_scores(queries, corpus), axis=1, kind="stable")
        ndcg = []
        for i, qid in enumerate(data.queries.query_id):
            judged = data.qrels[data.qrels.query_id == qid]
            grade = dict(zip(judged.doc_id, judged.relevance))
            ranked = data.corpus.doc_id.to_numpy()[order[i]]
            dcg = sum(grade.get(d, 0) / math.log2(r + 2) for r, d in enumerate(ranked[:10]))
            ideal = sum(g / math.log2(r + 2) for r, g in enumerate(sorted(grade.values(), reverse=True)[:10]))
            ndcg.append(dcg / ideal)
        assert scores[lang]["ndcg@10"] == pytest.approx(np.mean(ndcg), abs=1e-6)
