"""Every metric against hand-computed values and against independent implementations.

Hand examples pin the definitions. ir-measures (trec_eval) and scikit-learn
check the implementations on random tie-free cases. Ranks are checked against
a plain stable argsort of the full score matrix.
"""

from __future__ import annotations

import gzip
import itertools
import math
from pathlib import Path

import ir_measures
import numpy as np
import pandas as pd
import pytest
from ir_measures import AP, RR, nDCG
from sklearn.metrics import average_precision_score, ndcg_score

from mlret.errors import MlretError
from mlret.evaluation import metrics as M


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_setting(seed: int, n_queries: int = 40, pool_size: int = 300, dim: int = 24, max_relevant: int = 6):
    rng = np.random.default_rng(seed)
    queries = normalise(rng.standard_normal((n_queries, dim)))
    pool = normalise(rng.standard_normal((pool_size, dim)))
    relevant = [rng.choice(pool_size, size=rng.integers(1, max_relevant + 1), replace=False) for _ in range(n_queries)]
    return queries, pool, relevant


def reference_ranks(queries, pool, relevant):
    """Stable argsort of the full score matrix: the tie rule stated as a sort."""
    order = np.argsort(-M.similarity_scores(queries, pool), axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(1, order.shape[1] + 1)[None, :], axis=1)
    return [np.sort(position[i, r]) for i, r in enumerate(relevant)], order


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# --------------------------------------------------------------------------- average precision


def test_average_precision_hand_examples():
    assert M.average_precision(np.array([1, 3])) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert M.average_precision(np.array([1, 3])) == pytest.approx(0.8333333333333334, abs=1e-15)
    assert M.average_precision(np.array([4])) == 0.25
    assert M.average_precision(np.array([1, 2, 3])) == 1.0
    assert M.mean_average_precision([np.array([1, 3]), np.array([4])]) == pytest.approx((5 / 6 + 1 / 4) / 2)


def test_average_precision_of_relevance_list_101_matches_trec_eval():
    relevance = np.array([1, 0, 1])
    assert M.average_precision(np.flatnonzero(relevance) + 1) == pytest.approx(5 / 6)
    run = {"q": {"d0": 3.0, "d1": 2.0, "d2": 1.0}}
    qrels = {"q": {"d0": 1, "d2": 1}}
    assert ir_measures.calc_aggregate([AP], qrels, run)[AP] == pytest.approx(5 / 6)


@pytest.mark.parametrize("bad", [np.array([], dtype=int), np.array([3, 1]), np.array([0, 2]), np.array([2, 2]), np.array([1.0, 2.0])])
def test_average_precision_rejects_invalid_ranks(bad):
    with pytest.raises(MlretError):
        M.average_precision(bad)


def test_mean_average_precision_of_no_queries_is_an_error():
    with pytest.raises(MlretError):
        M.mean_average_precision([])


@pytest.mark.parametrize("seed", range(3))
def test_map_equals_trec_eval_ap_on_full_pool_runs(seed):
    queries, pool, relevant = random_setting(seed)
    ranks = M.exact_ranks(queries, pool, relevant)
    scores = M.similarity_scores(queries, pool)
    qids, dids = ids("q", len(queries)), ids("d", len(pool))
    assert all(np.unique(row).size == row.size for row in scores)  # tie-free, so trec_eval's tie rule is moot
    run = {qids[i]: {dids[j]: float(scores[i, j]) for j in range(len(pool))} for i in range(len(queries))}
    qrels = M.qrels_frame(qids, relevant, dids)
    theirs = {m.query_id: m.value for m in ir_measures.iter_calc([AP], qrels, run)}
    for qid, r in zip(qids, ranks):
        assert M.average_precision(r) == pytest.approx(theirs[qid], abs=1e-12)
    assert M.mean_average_precision(ranks) == pytest.approx(ir_measures.calc_aggregate([AP], qrels, run)[AP], abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_average_precision_equals_sklearn_per_query(seed):
    queries, pool, relevant = random_setting(seed + 100)
    scores = M.similarity_scores(queries, pool)
    for i, r in enumerate(M.exact_ranks(queries, pool, relevant)):
        y_true = np.zeros(len(pool), dtype=int)
        y_true[relevant[i]] = 1
        assert M.average_precision(r) == pytest.approx(average_precision_score(y_true, scores[i]), abs=1e-12)


# --------------------------------------------------------------------------- exact ranks


def test_exact_ranks_break_ties_by_pool_order():
    query = normalise([[1.0, 0.0]])
    # scores:       0          1           0.6         1 (dup of 1)  0.6 (dup of 2)  0.8
    pool = normalise([[0, 1], [1, 0], [0.6, 0.8], [1, 0], [0.6, 0.8], [0.8, 0.6]])
    # descending score, ties by pool index: 1, 3, 5, 2, 4, 0  ->  ranks of indices 0..5 are 6, 1, 4, 2, 5, 3
    cases = {(3, 4): [2, 5], (4, 3): [2, 5], (2,): [4], (0, 1): [1, 6], (1, 3): [1, 2], (5,): [3]}
    for chunk_size in (1, 2, 1024):
        got = M.exact_ranks(np.repeat(query, len(cases), axis=0), pool, [np.array(k) for k in cases], chunk_size=chunk_size)
        assert [g.tolist() for g in got] == list(cases.values())


@pytest.mark.parametrize("seed", range(3))
def test_exact_ranks_identical_across_chunk_sizes_and_to_stable_argsort(seed):
    queries, pool, relevant = random_setting(seed)
    rng = np.random.default_rng(seed)
    pool[rng.choice(len(pool), 40)] = pool[rng.choice(len(pool), 40)]  # exact duplicates: real ties
    reference, _ = reference_ranks(queries, pool, relevant)
    scores = M.similarity_scores(queries, pool)
    assert any(np.unique(row).size < row.size for row in scores)
    for chunk_size in (1, 7, 1024):
        got = M.exact_ranks(queries, pool, relevant, chunk_size=chunk_size)
        assert len(got) == len(reference)
        for g, ref in zip(got, reference):
            assert g.dtype == np.int64
            np.testing.assert_array_equal(g, ref)


def test_scores_are_cosine_similarities_rounded_once_to_float32():
    query = normalise([[3.0, 4.0]])  # (0.6, 0.8)
    pool = normalise([[1.0, 0.0], [0.0, 2.0], [-4.0, 3.0], [3.0, 4.0]])
    scores = M.similarity_scores(query, pool)
    assert scores.dtype == np.float32
    exact = query.astype(np.float64) @ pool.astype(np.float64).T  # the float32 inputs, multiplied exactly enough
    np.testing.assert_array_equal(scores, exact.astype(np.float32))
    np.testing.assert_allclose(scores, [[0.6, 0.8, 0.0, 1.0]], atol=1e-7)


def test_scores_do_not_depend_on_block_shape():
    queries, pool, _ = random_setting(7, n_queries=33, dim=384)
    full = M.similarity_scores(queries, pool)
    for chunk in (1, 5, 32):
        parts = np.concatenate([M.similarity_scores(queries[i : i + chunk], pool) for i in range(0, len(queries), chunk)])
        np.testing.assert_array_equal(parts, full)


@pytest.mark.parametrize(
    "queries, pool, relevant",
    [
        (np.ones((1, 2), dtype=np.float32), normalise([[1, 0]]), [np.array([0])]),  # not normalised
        (np.array([[np.nan, 1]], dtype=np.float32), normalise([[1, 0]]), [np.array([0])]),
        (normalise([[1, 0]]), normalise([[1, 0, 0]]), [np.array([0])]),  # dimension mismatch
        (normalise([[1, 0]]), normalise([[1, 0]]), [np.array([], dtype=int)]),  # no relevant candidate
        (normalise([[1, 0]]), normalise([[1, 0]]), [np.array([1])]),  # outside the pool
        (normalise([[1, 0]]), normalise([[1, 0], [0, 1]]), [np.array([1, 1])]),  # repeated
        (normalise([[1, 0]]), normalise([[1, 0]]), []),  # wrong count
        (np.array([[1, 0]]), normalise([[1, 0]]), [np.array([0])]),  # integer embeddings
    ],
)
def test_exact_ranks_rejects_invalid_input(queries, pool, relevant):
    with pytest.raises(MlretError):
        M.exact_ranks(queries, pool, relevant)


def test_exact_top_k_matches_stable_argsort_including_ties_at_the_cut():
    queries, pool, relevant = random_setting(3, pool_size=120)
    pool[60:80] = pool[5]  # 21 identical candidates: every cut inside them is a tie
    _, order = reference_ranks(queries, pool, relevant)
    for k, chunk_size in [(1, 1), (10, 7), (120, 1024)]:
        indices, scores = M.exact_top_k(queries, pool, k, chunk_size=chunk_size)
        np.testing.assert_array_equal(indices, order[:, :k])
        np.testing.assert_array_equal(scores, np.take_along_axis(M.similarity_scores(queries, pool), order[:, :k], axis=1))
    with pytest.raises(MlretError):
        M.exact_top_k(queries, pool, 121)


# --------------------------------------------------------------------------- @k metrics


def test_recall_rr_and_ndcg_hand_examples():
    qids, dids = ["a", "b"], ids("d", 200)
    relevant = [np.array([10, 11, 12]), np.array([20])]
    ranks = [np.array([1, 3, 12]), np.array([12])]
    result = M.evaluate_at_k(M.exact_ranks_to_run(qids, ranks, relevant, dids), M.qrels_frame(qids, relevant, dids))
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
def test_ndcg_at_10_equals_sklearn_on_tie_free_binary_cases(seed):
    queries, pool, relevant = random_setting(seed + 200, pool_size=60)
    scores = M.similarity_scores(queries, pool)
    qids, dids = ids("q", len(queries)), ids("d", len(pool))
    indices, top_scores = M.exact_top_k(queries, pool, len(pool))
    result = M.evaluate_at_k(M.top_k_run(qids, indices, dids, top_scores), M.qrels_frame(qids, relevant, dids), [nDCG @ 10])
    for i, qid in enumerate(qids):
        y_true = np.zeros((1, len(pool)))
        y_true[0, relevant[i]] = 1
        assert result.per_query.loc[qid, "nDCG@10"] == pytest.approx(ndcg_score(y_true, scores[i : i + 1], k=10), abs=1e-12)


@pytest.mark.parametrize("seed", range(2))
def test_at_k_metrics_identical_from_exact_ranks_and_from_top_k(seed):
    queries, pool, relevant = random_setting(seed, n_queries=60, pool_size=400, max_relevant=11)
    pool[200:260] = pool[0]  # ties, including at the cuts
    qids, dids = ids("q", len(queries)), ids("cand:", len(pool))
    qrels = M.qrels_frame(qids, relevant, dids)
    indices, scores = M.exact_top_k(queries, pool, 100, chunk_size=7)
    from_top_k = M.evaluate_at_k(M.top_k_run(qids, indices, dids, scores), qrels)
    from_ranks = M.evaluate_at_k(M.exact_ranks_to_run(qids, M.exact_ranks(queries, pool, relevant, chunk_size=13), relevant, dids), qrels)
    pd.testing.assert_frame_equal(from_top_k.per_query, from_ranks.per_query, check_exact=True)
    assert from_top_k.mean == from_ranks.mean


def test_top_k_run_uses_minus_rank_so_trec_eval_cannot_reorder_ties():
    # d1 (relevant) and d0 tie on similarity. Our pool-order rule ranks d0 first, and
    # trec_eval, given the raw tied scores, would pick its own order by doc id.
    qrels = {"q": {"d1": 1}}
    faiss_padding = -3.4e38  # FAISS pads a short result list with index -1 and this score
    run = M.top_k_run(["q"], np.array([[1, 0, -1, -1]]), ["d0", "d1", "d2"], np.array([[0.5, 0.5, faiss_padding, faiss_padding]]))
    assert run.to_dict("list") == {"query_id": ["q", "q"], "doc_id": ["d1", "d0"], "score": [-1.0, -2.0]}
    assert M.evaluate_at_k(run, qrels, [RR @ 10]).mean["RR@10"] == 1.0
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
        M.top_k_run(["q"], indices, ["d0", "d1"], scores)


def test_evaluate_at_k_requires_the_same_queries_in_run_and_qrels():
    qrels = {"q1": {"d": 1}, "q2": {"d": 1}}
    with pytest.raises(MlretError, match="different queries"):
        M.evaluate_at_k({"q1": {"d": 1.0}}, qrels)
    with pytest.raises(MlretError, match="different queries"):
        M.evaluate_at_k({"q1": {"d": 1.0}, "q2": {"d": 1.0}, "q3": {"d": 1.0}}, qrels)
    with pytest.raises(MlretError, match="no relevant"):
        M.evaluate_at_k({"q1": {"d": 1.0}}, {"q1": {"d": 0}})


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_trec_files_round_trip_through_ir_measures(tmp_path: Path, suffix: str):
    queries, pool, relevant = random_setting(11, n_queries=8, pool_size=50)
    qids, dids = ids("q", 8), ids("en:0:", 50)
    indices, scores = M.exact_top_k(queries, pool, 20)
    run = M.top_k_run(qids, indices, dids, scores)
    qrels = M.qrels_frame(qids, relevant, dids)
    M.write_trec_run(tmp_path / f"run.trec{suffix}", run, tag="mlret")
    M.write_trec_qrels(tmp_path / f"qrels.trec{suffix}", qrels)
    run_back = pd.DataFrame(ir_measures.read_trec_run(str(tmp_path / f"run.trec{suffix}")))
    qrels_back = pd.DataFrame(ir_measures.read_trec_qrels(str(tmp_path / f"qrels.trec{suffix}")))
    pd.testing.assert_frame_equal(run_back, run.astype({"query_id": str, "doc_id": str}), check_dtype=False)
    assert M.evaluate_at_k(run_back, qrels_back).per_query.equals(M.evaluate_at_k(run, qrels).per_query)
    if suffix == ".gz":
        first = gzip.open(tmp_path / "run.trec.gz", "rt").readline()
    else:
        first = (tmp_path / "run.trec").read_text().splitlines()[0] + "\n"
    assert first == f"q0 Q0 en:0:{indices[0, 0]} 1 -1.0 mlret\n"


def test_trec_writers_format_and_tie_order(tmp_path: Path):
    run = pd.DataFrame({"query_id": ["b", "b", "a"], "doc_id": ["x", "y", "z"], "score": [0.25, 0.5, 0.25]})
    M.write_trec_run(tmp_path / "run", run, tag="t")
    assert (tmp_path / "run").read_text() == "b Q0 y 1 0.5 t\nb Q0 x 2 0.25 t\na Q0 z 1 0.25 t\n"
    M.write_trec_qrels(tmp_path / "qrels", {"q": {"d": 1}})
    assert (tmp_path / "qrels").read_text() == "q 0 d 1\n"
    with pytest.raises(MlretError):
        M.write_trec_run(tmp_path / "bad", run, tag="two words")
    with pytest.raises(MlretError):
        M.write_trec_qrels(tmp_path / "bad", {"q 1": {"d": 1}})


# --------------------------------------------------------------------------- language bias


def test_rank_distance_hand_examples():
    assert M.rank_distance(np.array([2, 5, 9])) == 7
    assert M.mean_rank_distance([np.array([2, 5, 9]), np.array([4]), np.array([1, 2])]) == 4.0  # (7 + 1) / 2; [4] left out
    np.testing.assert_array_equal(M.rank_distances([np.array([2, 5, 9]), np.array([4]), np.array([1, 2])]), [7.0, np.nan, 1.0])
    with pytest.raises(MlretError):
        M.rank_distance(np.array([4]))
    with pytest.raises(MlretError):
        M.mean_rank_distance([np.array([4]), np.array([1])])


def test_mean_rank_distance_is_macro_over_groups():
    # en: distances 2 and 8 (and one single-answer query, left out); ru: 2; zh: only a single-answer query.
    ranks = [np.array([1, 2, 3]), np.array([1, 9]), np.array([3]), np.array([2, 4]), np.array([5])]
    langs = np.array(["en", "en", "en", "ru", "zh"])
    assert M.mean_rank_distance(ranks, by=[langs]) == pytest.approx(((2 + 8) / 2 + 2) / 2)  # 3.5
    assert M.mean_rank_distance(ranks) == pytest.approx((2 + 8 + 2) / 3)  # one group: the per-query mean, 4


def test_macro_mean_averages_within_groups_then_over_groups():
    values = [1.0, 0.5, 0.25, 1.0, 0.0, 0.0]
    query_lang = np.array(["en", "en", "en", "ru", "zh", "zh"])
    pool_lang = np.array(["en", "en", "en", "ru", "zh", "en"])
    assert M.macro_mean(values, [query_lang]) == pytest.approx((1.75 / 3 + 1.0 + 0.0) / 3)
    # (zh, zh) and (zh, en) are two pairs: four groups, not three.
    assert M.macro_mean(values, [query_lang, pool_lang]) == pytest.approx((1.75 / 3 + 1.0 + 0.0 + 0.0) / 4)
    assert M.macro_mean(values) == pytest.approx(2.75 / 6)
    with pytest.raises(MlretError, match="NaN"):
        M.macro_mean([1.0, np.nan])
    with pytest.raises(MlretError, match="one entry per query"):
        M.macro_mean(values, [query_lang[:5]])
    with pytest.raises(MlretError):
        M.macro_mean([])


def test_mean_average_precision_is_macro_over_groups():
    ranks = [np.array([1]), np.array([2]), np.array([4]), np.array([1, 3])]  # AP 1, 1/2, 1/4, 5/6
    pairs = [np.array(["en", "en", "en", "ru"]), np.array(["en", "en", "en", "en"])]
    assert M.mean_average_precision(ranks, by=pairs) == pytest.approx((1.75 / 3 + 5 / 6) / 2)
    assert M.mean_average_precision(ranks) == pytest.approx((1.75 + 5 / 6) / 4)


def test_same_language_share_hand_example():
    top = np.array([["en", "de", "en"], ["de", "de", "fr"]])
    np.testing.assert_allclose(M.same_language_shares(top, np.array(["en", "fr"]), k=3), [2 / 3, 1 / 3])
    np.testing.assert_allclose(M.same_language_shares(top, np.array(["en", "fr"]), k=2), [1 / 2, 0.0])
    assert M.same_language_share_at_k(top, np.array(["en", "fr"]), k=3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert M.same_language_share_at_k(top, np.array(["en", "fr"]), k=2) == pytest.approx((1 / 2 + 0) / 2)
    with pytest.raises(MlretError):
        M.same_language_share_at_k(top, np.array(["en", "fr"]), k=10)
    with pytest.raises(MlretError):
        M.same_language_share_at_k(top, np.array(["en"]), k=2)


def test_same_language_share_is_macro_over_query_languages():
    top = np.array([["en", "en"], ["en", "de"], ["de", "de"], ["de", "de"]])
    query_langs = np.array(["en", "en", "en", "de"])  # per query: 1, 1/2, 0 (en) and 1 (de)
    assert M.same_language_share_at_k(top, query_langs, k=2, by=[query_langs]) == pytest.approx((1.5 / 3 + 1.0) / 2)
    assert M.same_language_share_at_k(top, query_langs, k=2) == pytest.approx(2.5 / 4)


# --------------------------------------------------------------------------- reference scorers


def test_perfect_scorer_gives_map_1_and_rank_distance_n_relevant_minus_1():
    """11-way parallel pool: question g's answers in all languages share one direction.

    The relevant candidates take ranks 1..11. So mAP is 1 and the rank
    distance is 10, which is LAReQA's floor, not 0.
    """
    n_groups, n_langs, dim = 30, 11, 64
    rng = np.random.default_rng(0)
    topics = normalise(rng.standard_normal((n_groups, dim)))
    pool = normalise(np.repeat(topics, n_langs, axis=0) + 0.01 * rng.standard_normal((n_groups * n_langs, dim)))
    queries = normalise(np.repeat(topics, n_langs, axis=0))
    relevant = [np.arange(g * n_langs, (g + 1) * n_langs) for g in range(n_groups) for _ in range(n_langs)]
    ranks = M.exact_ranks(queries, pool, relevant, chunk_size=50)
    assert all(r.tolist() == list(range(1, n_langs + 1)) for r in ranks)
    assert M.mean_average_precision(ranks) == 1.0
    assert M.mean_rank_distance(ranks) == n_langs - 1


def test_expected_random_average_precision_is_exact_by_enumeration():
    n = 10
    for r in (1, 3, 10):
        exact = np.mean([M.average_precision(np.array(c) + 1) for c in itertools.combinations(range(n), r)])
        assert M.expected_random_average_precision(r, n) == pytest.approx(exact, abs=1e-12)
    assert M.expected_random_average_precision(1, n) == pytest.approx(sum(1 / j for j in range(1, n + 1)) / n)


def test_random_scorer_gives_chance_level_map():
    """Random embeddings and random relevant sets. Each relevant set lands at a uniformly
    random set of ranks, so mean AP estimates the analytic expectation. Tolerance is
    4 standard errors of that mean (a false alarm about once in 16,000 seeds; the seed is fixed)."""
    n_queries, pool_size, n_rel = 4000, 200, 5
    rng = np.random.default_rng(1)
    queries = normalise(rng.standard_normal((n_queries, 16)))
    pool = normalise(rng.standard_normal((pool_size, 16)))
    relevant = [rng.choice(pool_size, size=n_rel, replace=False) for _ in range(n_queries)]
    aps = np.array([M.average_precision(r) for r in M.exact_ranks(queries, pool, relevant)])
    expected = M.expected_random_average_precision(n_rel, pool_size)
    assert abs(aps.mean() - expected) < 4 * aps.std(ddof=1) / math.sqrt(n_queries)
    assert 0.02 < expected < 0.05  # about R/N = 0.025, plus the harmonic-number term
