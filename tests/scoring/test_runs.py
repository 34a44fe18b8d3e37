"""Runs, qrels and @k metrics through ir-measures: hand examples, scikit-learn, and the tie rule kept in runs."""

from __future__ import annotations

import math

import ir_measures
import numpy as np
import pandas as pd
import pytest
from ir_measures import RR, nDCG
from sklearn.metrics import ndcg_score

from mlret.errors import MlretError
from mlret.scoring.ranking import exact_ranks, exact_top_k, similarity_scores
from mlret.scoring.runs import evaluate_at_k, qrels_frame, top_k_run


def test_recall_rr_and_ndcg_hand_examples(ids, run_from_ranks):
    qids, dids = ["a", "b"], ids("d", 200)
    relevant = [np.array([10, 11, 12]), np.array([20])]
    ranks = [np.array([1, 3, 12]), np.array([12])]
    result = evaluate_at_k(run_from_ranks(qids, ranks, relevant, dids), qrels_frame(qids, relevant, dids))
    a, b = result.per_query.loc["a"], result.per_query.loc["b"]
    assert (a["R@1"], a["R@5"], a["R@10"], a["R@100"]) == pytest.approx((1 / 3, 2 / 3, 2 / 3, 1.0))
    assert (b["R@1"], b["R@5"], b["R@10"], b["R@100"]) == pytest.approx((0.0, 0.0, 0.0, 1.0))
    assert (a["RR@10"], b["RR@10"]) == pytest.approx((1.0, 0.0))  # rank 12 is past the cutoff: 0, and still counted
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert a["nDCG@10"] == pytest.approx((1 + 1 / math.log2(4)) / ideal)
    assert b["nDCG@10"] == 0.0
    assert list(result.per_query.columns) == ["RR@10", "R@1", "R@5", "R@10", "R@100", "nDCG@10"]
    assert result.mean["R@5"] == pytest.approx(1 / 3)
    assert result.mean == pytest.approx(result.per_query.mean().to_dict())


@pytest.mark.parametrize("seed", range(3))
def test_ndcg_at_10_equals_sklearn_on_tie_free_binary_cases(seed, random_setting, ids):
    queries, pool, relevant = random_setting(seed + 200, pool_size=60)
    scores = similarity_scores(queries, pool)
    qids, dids = ids("q", len(queries)), ids("d", len(pool))
    indices, top_scores = exact_top_k(queries, pool, len(pool))
    result = evaluate_at_k(top_k_run(qids, indices, dids, top_scores), qrels_frame(qids, relevant, dids), [nDCG @ 10])
    for i, qid in enumerate(qids):
        y_true = np.zeros((1, len(pool)))
        y_true[0, relevant[i]] = 1
        assert result.per_query.loc[qid, "nDCG@10"] == pytest.approx(
            ndcg_score(y_true, scores[i : i + 1], k=10), abs=1e-12
        )


@pytest.mark.parametrize("seed", range(2))
def test_at_k_metrics_identical_from_exact_ranks_and_from_top_k(seed, random_setting, ids, run_from_ranks):
    queries, pool, relevant = random_setting(seed, n_queries=60, pool_size=400, max_relevant=11)
    pool[200:260] = pool[0]  # ties, including at the cuts
    qids, dids = ids("q", len(queries)), ids("cand:", len(pool))
    qrels = qrels_frame(qids, relevant, dids)
    indices, scores = exact_top_k(queries, pool, 100, chunk_size=7)
    from_top_k = evaluate_at_k(top_k_run(qids, indices, dids, scores), qrels)
    from_ranks = evaluate_at_k(
        run_from_ranks(qids, exact_ranks(queries, pool, relevant, chunk_size=13), relevant, dids), qrels
    )
    pd.testing.assert_frame_equal(from_top_k.per_query, from_ranks.per_query, check_exact=True)
    assert from_top_k.mean == from_ranks.mean


def test_top_k_run_uses_minus_rank_so_trec_eval_cannot_reorder_ties():
    # d1 (relevant) and d0 tie on similarity. Our pool-order rule ranks d0 first, and
    # trec_eval, given the raw tied scores, would pick its own order by doc id.
    qrels = {"q": {"d1": 1}}
    faiss_padding = -3.4e38  # FAISS pads a short result list with index -1 and this score
    run = top_k_run(
        ["q"], np.array([[1, 0, -1, -1]]), ["d0", "d1", "d2"], np.array([[0.5, 0.5, faiss_padding, faiss_padding]])
    )
    assert run.to_dict("list") == {"query_id": ["q", "q"], "doc_id": ["d1", "d0"], "score": [-1.0, -2.0]}
    assert evaluate_at_k(run, qrels, [RR @ 10]).mean["RR@10"] == 1.0
    raw_tied = {"q": {"d1": 0.5, "d0": 0.5}}
    assert ir_measures.calc_aggregate([RR], qrels, raw_tied)[RR] == 1.0  # trec_eval: descending doc id puts d1 first
    raw_tied = {"q": {"d1": 0.5, "d2": 0.5}}
    assert ir_measures.calc_aggregate([RR], qrels, raw_tied)[RR] == 0.5  # ... and here d2 first, against pool order


@pytest.mark.parametrize(
    "indices, scores",
    [
        (np.array([[0, 1]]), np.array([[0.1, 0.9]])),  # not sorted
        (np.array([[-1, 1]]), None),  # padding before results
        (np.array([[1, 1]]), None),  # duplicate
        (np.array([[0, 5]]), None),  # outside the pool
    ],
)
def test_top_k_run_rejects_malformed_top_k(indices, scores):
    with pytest.raises(MlretError):
        top_k_run(["q"], indices, ["d0", "d1"], scores)


def test_evaluate_at_k_requires_the_same_queries_in_run_and_qrels():
    qrels = {"q1": {"d": 1}, "q2": {"d": 1}}
    with pytest.raises(MlretError, match="different queries"):
        evaluate_at_k({"q1": {"d": 1.0}}, qrels)
    with pytest.raises(MlretError, match="different queries"):
        evaluate_at_k({"q1": {"d": 1.0}, "q2": {"d": 1.0}, "q3": {"d": 1.0}}, qrels)
    with pytest.raises(MlretError, match="no relevant"):
        evaluate_at_k({"q1": {"d": 1.0}}, {"q1": {"d": 0}})
