"""BEIR-layout benchmarks scored from stored embeddings, against hand-computed nDCG@10 and Recall@100."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mlret.data.beir import load_beir
from mlret.data.corpora import save_beir_embeddings
from mlret.scoring.beir import score_beir

N_DOCS = 120  # more than the 100 retrieved, so Recall@100 can miss a relevant document


def write_ranked_language(root: Path, lang: str, qrels: dict[str, dict[int, int]], write_jsonl) -> list[str]:
    """A corpus of N_DOCS documents in shuffled file order, and graded qrels given by *rank*.

    Every query is embedded as (1, 0) and the document of rank r as (cos 0.01r, sin 0.01r), so
    every query ranks the corpus in the same known order. Returns the doc ids best first.
    """
    folder = root / lang
    (folder / "qrels").mkdir(parents=True)
    file_order = np.random.default_rng(len(lang)).permutation(N_DOCS)  # file row -> rank - 1
    doc_ids = [f"{lang}-d{i}" for i in range(N_DOCS)]
    write_jsonl(folder / "corpus.jsonl", [{"_id": d, "title": "", "text": f"document {d}"} for d in doc_ids])
    unjudged = [{"_id": f"{lang}-unjudged", "text": "a query without a positive judgement"}] if lang == "en" else []
    write_jsonl(folder / "queries.jsonl", [{"_id": q, "text": f"query {q}"} for q in qrels] + unjudged)
    by_rank = [doc_ids[row] for row in np.argsort(file_order)]
    lines = [f"{q}\t{by_rank[rank - 1]}\t{grade}\n" for q, judged in qrels.items() for rank, grade in judged.items()]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(lines), encoding="utf-8")
    angle = 0.01 * (file_order + 1)
    corpus = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    save_beir_embeddings(root.parent / "emb" / lang, load_beir(folder), np.tile([1.0, 0.0], (len(qrels), 1)), corpus)
    return by_rank


def test_ndcg_and_recall_equal_hand_computed_values(tmp_path: Path, write_jsonl) -> None:
    """trec_eval's nDCG (BEIR's): gain = grade, discount log2(rank + 1), ideal from every judged document."""
    write_ranked_language(
        tmp_path / "bench",
        "en",
        {
            "q1": {1: 2, 2: 0, 3: 1, 40: 1, 105: 1},  # grade 0 at rank 2 is judged non-relevant
            "q2": {7: 1, 101: 3},
        },
        write_jsonl,
    )
    write_ranked_language(tmp_path / "bench", "ru", {"q1": {2: 1}}, write_jsonl)
    scores = score_beir(tmp_path / "bench", tmp_path / "emb")
    q1 = (2 / math.log2(2) + 1 / math.log2(4)) / (
        2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5)
    )  # 0.7019
    q2 = (1 / math.log2(8)) / (3 / math.log2(2) + 1 / math.log2(3))  # 0.0918
    assert scores["en"]["ndcg@10"] == pytest.approx((q1 + q2) / 2, abs=1e-6)
    assert scores["en"]["recall@100"] == pytest.approx(
        (3 / 4 + 1 / 2) / 2, abs=1e-6
    )  # ranks 105 and 101 missed, 40 found
    assert scores["ru"]["ndcg@10"] == pytest.approx(1 / math.log2(3), abs=1e-6) and scores["ru"]["recall@100"] == 1.0
    assert (scores["en"]["queries"], scores["en"]["documents"]) == (2, N_DOCS)
    assert (scores["en"]["dropped_queries"], scores["ru"]["dropped_queries"]) == (1, 0)  # left out, and said so
