"""BEIR-layout benchmarks scored end to end from stored embeddings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from mlret.data.beir import load_beir
from mlret.evaluation.beir_eval import encode_beir, score_beir
from mlret.models.encoder import Encoder
from mlret.params import IndexParams
from conftest import BEIR_LANGS as LANGS
from conftest import write_beir_language as write_language


def save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32))
    path.write_bytes(buffer.getvalue())


@pytest.fixture
def beir_root(tmp_path: Path) -> Path:
    for lang in LANGS:
        write_language(tmp_path / "bench", lang)
    return tmp_path / "bench"


def test_perfect_embeddings_score_one(beir_root: Path, tmp_path: Path) -> None:
    """Queries embedded as their most relevant document: nDCG@10 and Recall@100 are 1."""
    for lang_dir in sorted(beir_root.iterdir()):
        data = load_beir(lang_dir)
        docs = np.eye(len(data.corpus), dtype=np.float32)
        position = {d: i for i, d in enumerate(data.corpus.doc_id)}
        relevant = data.qrels[data.qrels.relevance > 0]
        queries = np.zeros((len(data.queries), len(data.corpus)), np.float32)
        for i, qid in enumerate(data.queries.query_id):
            for doc in relevant[relevant.query_id == qid].doc_id:
                queries[i, position[doc]] = 1.0
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        save(tmp_path / "emb" / lang_dir.name / "queries.npy", queries)
        save(tmp_path / "emb" / lang_dir.name / "corpus.npy", docs)
    scores = score_beir(beir_root, tmp_path / "emb", IndexParams("flat"))
    assert set(scores) == set(LANGS)
    for lang, values in scores.items():
        assert values["recall@100"] == pytest.approx(1.0)
        assert 0.9 < values["ndcg@10"] <= 1.0  # graded qrels: 1 only if grades are ordered too


def test_encoding_then_scoring_with_a_real_encoder(beir_root: Path, tmp_path: Path, tiny_checkpoint: Path, make_params) -> None:
    encode_beir(Encoder(tiny_checkpoint, make_params(), show_progress=False), beir_root, tmp_path / "emb")
    scores = score_beir(beir_root, tmp_path / "emb", IndexParams("flat"))
    for values in scores.values():
        assert 0.0 <= values["ndcg@10"] <= 1.0 and values["recall@100"] == pytest.approx(1.0)  # tiny corpora: everything is in the top 100
