"""BEIR-layout benchmarks scored end to end from stored embeddings, against hand-computed nDCG@10 and Recall@100."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import BEIR_LANGS as LANGS
from conftest import write_beir_language as write_language
from conftest import write_jsonl
from mlret.data.beir import load_beir
from mlret.evaluation import metrics as M
from mlret.evaluation.beir_eval import encode_beir, score_beir
from mlret.models.encoder import Encoder
from mlret.params import IndexParams

N_DOCS = 120  # more than the 100 retrieved, so Recall@100 can miss a relevant document


def save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32))
    path.write_bytes(buffer.getvalue())


def write_ranked_language(root: Path, lang: str, qrels: dict[str, dict[int, int]]) -> list[str]:
    """A corpus of N_DOCS documents in shuffled file order, and graded qrels given by *rank*.

    Every query is embedded as (1, 0) and the document of rank r as (cos 0.01r, sin 0.01r), so
    every query ranks the corpus in the same known order. Returns the doc ids best first.
    """
    folder = root / lang
    (folder / "qrels").mkdir(parents=True)
    file_order = np.random.default_rng(len(lang)).permutation(N_DOCS)  # file row -> rank - 1
    doc_ids = [f"{lang}-d{i}" for i in range(N_DOCS)]
    write_jsonl(folder / "corpus.jsonl", [{"_id": d, "title": "", "text": f"document {d}"} for d in doc_ids])
    write_jsonl(folder / "queries.jsonl", [{"_id": q, "text": f"query {q}"} for q in qrels])
    by_rank = [doc_ids[row] for row in np.argsort(file_order)]
    lines = [f"{q}\t{by_rank[rank - 1]}\t{grade}\n" for q, judged in qrels.items() for rank, grade in judged.items()]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(lines), encoding="utf-8")
    angle = 0.01 * (file_order + 1)
    save(root.parent / "emb" / lang / "corpus.npy", np.stack([np.cos(angle), np.sin(angle)], axis=1))
    save(root.parent / "emb" / lang / "queries.npy", np.tile([1.0, 0.0], (len(qrels), 1)))
    return by_rank


def test_ndcg_and_recall_equal_hand_computed_values(tmp_path: Path) -> None:
    """trec_eval's nDCG (BEIR's): gain = grade, discount log2(rank + 1), ideal from every judged document."""
    write_ranked_language(tmp_path / "bench", "en", {
        "q1": {1: 2, 2: 0, 3: 1, 40: 1, 105: 1},  # grade 0 at rank 2 is judged non-relevant
        "q2": {7: 1, 101: 3},
    })
    write_ranked_language(tmp_path / "bench", "ru", {"q1": {2: 1}})
    scores = score_beir(tmp_path / "bench", tmp_path / "emb", IndexParams("flat"))
    q1 = (2 / math.log2(2) + 1 / math.log2(4)) / (2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5))  # 0.7019
    q2 = (1 / math.log2(8)) / (3 / math.log2(2) + 1 / math.log2(3))  # 0.0918
    assert scores["en"]["ndcg@10"] == pytest.approx((q1 + q2) / 2, abs=1e-6)
    assert scores["en"]["recall@100"] == pytest.approx((3 / 4 + 1 / 2) / 2, abs=1e-6)  # ranks 105 and 101 missed, 40 found
    assert scores["ru"]["ndcg@10"] == pytest.approx(1 / math.log2(3), abs=1e-6) and scores["ru"]["recall@100"] == 1.0
    assert (scores["en"]["queries"], scores["en"]["documents"]) == (2, N_DOCS)


def test_encoding_then_scoring_with_a_real_encoder(tmp_path: Path, tiny_checkpoint: Path, make_params) -> None:
    """Stored rows are the encoder's query and passage embeddings in file order; scores follow from them."""
    for lang in LANGS:
        write_language(tmp_path / "bench", lang)
    encoder = Encoder(tiny_checkpoint, make_params(), show_progress=False)
    encode_beir(encoder, tmp_path / "bench", tmp_path / "emb")
    scores = score_beir(tmp_path / "bench", tmp_path / "emb", IndexParams("flat"))
    for lang in LANGS:
        data = load_beir(tmp_path / "bench" / lang)
        queries, corpus = np.load(tmp_path / "emb" / lang / "queries.npy"), np.load(tmp_path / "emb" / lang / "corpus.npy")
        np.testing.assert_array_equal(queries, encoder.encode(data.queries.text.tolist(), "query"))
        np.testing.assert_array_equal(corpus, encoder.encode(data.corpus.text.tolist(), "passage"))
        order = np.argsort(-M.similarity_scores(queries, corpus), axis=1, kind="stable")
        ndcg = []
        for i, qid in enumerate(data.queries.query_id):
            judged = data.qrels[data.qrels.query_id == qid]
            grade = dict(zip(judged.doc_id, judged.relevance))
            ranked = data.corpus.doc_id.to_numpy()[order[i]]
            dcg = sum(grade.get(d, 0) / math.log2(r + 2) for r, d in enumerate(ranked[:10]))
            ideal = sum(g / math.log2(r + 2) for r, g in enumerate(sorted(grade.values(), reverse=True)[:10]))
            ndcg.append(dcg / ideal)
        assert scores[lang]["ndcg@10"] == pytest.approx(np.mean(ndcg), abs=1e-6)
