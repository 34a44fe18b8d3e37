"""AP, rank distance, same-language share and the macro setting average: hand-computed values,
trec_eval and scikit-learn on random tie-free cases, and chance level."""

from __future__ import annotations

import itertools
import math

import ir_measures
import numpy as np
import pytest
from ir_measures import AP
from sklearn.metrics import average_precision_score

from mlret.errors import MlretError
from mlret.scoring.measures import (
    average_precision,
    expected_random_average_precision,
    macro_mean,
    macro_weights,
    mean_average_precision,
    mean_rank_distance,
    rank_distance,
    rank_distances,
    same_language_shares,
)
from mlret.scoring.ranking import exact_ranks, similarity_scores
from mlret.scoring.runs import qrels_frame


def test_average_precision_hand_examples():
    assert average_precision(np.array([1, 3])) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert average_precision(np.array([1, 3])) == pytest.approx(0.8333333333333334, abs=1e-15)
    assert average_precision(np.array([4])) == 0.25
    assert average_precision(np.array([1, 2, 3])) == 1.0
    assert mean_average_precision([np.array([1, 3]), np.array([4])]) == pytest.approx((5 / 6 + 1 / 4) / 2)


def test_average_precision_of_relevance_list_101_matches_trec_eval():
    relevance = np.array([1, 0, 1])
    assert average_precision(np.flatnonzero(relevance) + 1) == pytest.approx(5 / 6)
    run = {"q": {"d0": 3.0, "d1": 2.0, "d2": 1.0}}
    qrels = {"q": {"d0": 1, "d2": 1}}
    assert ir_measures.calc_aggregate([AP], qrels, run)[AP] == pytest.approx(5 / 6)


@pytest.mark.parametrize(
    "bad", [np.array([], dtype=int), np.array([3, 1]), np.array([0, 2]), np.array([2, 2]), np.array([1.0, 2.0])]
)
def test_average_precision_rejects_invalid_ranks(bad):
    with pytest.raises(MlretError):
        average_precision(bad)


def test_mean_average_precision_of_no_queries_is_an_error():
    with pytest.raises(MlretError):
        mean_average_precision([])


@pytest.mark.parametrize("seed", range(3))
def test_map_equals_trec_eval_ap_on_full_pool_runs(seed, random_setting, ids):
    queries, pool, relevant = random_setting(seed)
    ranks = exact_ranks(queries, pool, relevant)
    scores = similarity_scores(queries, pool)
    qids, dids = ids("q", len(queries)), ids("d", len(pool))
    assert all(np.unique(row).size == row.size for row in scores)  # tie-free, so trec_eval's tie rule is moot
    run = {qids[i]: {dids[j]: float(scores[i, j]) for j in range(len(pool))} for i in range(len(queries))}
    qrels = qrels_frame(qids, relevant, dids)
    theirs = {m.query_id: m.value for m in ir_measures.iter_calc([AP], qrels, run)}
    for qid, r in zip(qids, ranks):
        assert average_precision(r) == pytest.approx(theirs[qid], abs=1e-12)
    assert mean_average_precision(ranks) == pytest.approx(ir_measures.calc_aggregate([AP], qrels, run)[AP], abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_average_precision_equals_sklearn_per_query(seed, random_setting):
    queries, pool, relevant = random_setting(seed + 100)
    scores = similarity_scores(queries, pool)
    for i, r in enumerate(exact_ranks(queries, pool, relevant)):
        y_true = np.zeros(len(pool), dtype=int)
        y_true[relevant[i]] = 1
        assert average_precision(r) == pytest.approx(average_precision_score(y_true, scores[i]), abs=1e-12)


def test_rank_distance_hand_examples():
    assert rank_distance(np.array([2, 5, 9])) == 7
    assert (
        mean_rank_distance([np.array([2, 5, 9]), np.array([4]), np.array([1, 2])]) == 4.0
    )  # (7 + 1) / 2; [4] left out
    np.testing.assert_array_equal(
        rank_distances([np.array([2, 5, 9]), np.array([4]), np.array([1, 2])]), [7.0, np.nan, 1.0]
    )
    with pytest.raises(MlretError):
        rank_distance(np.array([4]))
    with pytest.raises(MlretError):
        mean_rank_distance([np.array([4]), np.array([1])])


def test_mean_rank_distance_is_macro_over_groups():
    # en: distances 2 and 8 (and one single-answer query, left out); ru: 2; zh: only a single-answer query.
    ranks = [np.array([1, 2, 3]), np.array([1, 9]), np.array([3]), np.array([2, 4]), np.array([5])]
    langs = np.array(["en", "en", "en", "ru", "zh"])
    assert mean_rank_distance(ranks, by=[langs]) == pytest.approx(((2 + 8) / 2 + 2) / 2)  # 3.5
    assert mean_rank_distance(ranks) == pytest.approx((2 + 8 + 2) / 3)  # one group: the per-query mean, 4


def test_macro_mean_averages_within_groups_then_over_groups():
    values = [1.0, 0.5, 0.25, 1.0, 0.0, 0.0]
    query_lang = np.array(["en", "en", "en", "ru", "zh", "zh"])
    pool_lang = np.array(["en", "en", "en", "ru", "zh", "en"])
    assert macro_mean(values, [query_lang]) == pytest.approx((1.75 / 3 + 1.0 + 0.0) / 3)
    # (zh, zh) and (zh, en) are two pairs: four groups, not three.
    assert macro_mean(values, [query_lang, pool_lang]) == pytest.approx((1.75 / 3 + 1.0 + 0.0 + 0.0) / 4)
    assert macro_mean(values) == pytest.approx(2.75 / 6)
    with pytest.raises(MlretError, match="NaN"):
        macro_mean([1.0, np.nan])
    with pytest.raises(MlretError, match="one entry per query"):
        macro_mean(values, [query_lang[:5]])
    with pytest.raises(MlretError):
        macro_mean([])


def test_macro_weights_state_the_macro_mean_one_weight_per_query():
    """Two models side by side (``within``); model a: en has 3 queries, ru 1 (two groups), so an en query weighs
    1/(2·3) and the ru query 1/(2·1); model b: one group of 2 queries, 1/2 each. With ``parts=3`` (three such
    averages averaged alike) every weight is a third of that."""
    model = np.array(["a", "a", "a", "a", "b", "b"])
    lang = np.array(["en", "en", "en", "ru", "en", "en"])
    weights = macro_weights([lang], within=[model])
    assert weights.tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2, 1 / 2, 1 / 2])
    assert macro_weights([lang], within=[model], parts=3).tolist() == pytest.approx((weights / 3).tolist())
    values = np.array([1.0, 0.5, 0.25, 1.0, 0.2, 0.4])
    a = model == "a"
    assert float(np.sum(weights[a] * values[a])) == pytest.approx(macro_mean(values[a], [lang[a]]))
    assert macro_weights([lang]).tolist() == pytest.approx([0.1, 0.1, 0.1, 0.5, 0.1, 0.1])  # one average: en 5, ru 1
    with pytest.raises(MlretError, match="grouping key"):
        macro_weights([])


def test_mean_average_precision_is_macro_over_groups():
    ranks = [np.array([1]), np.array([2]), np.array([4]), np.array([1, 3])]  # AP 1, 1/2, 1/4, 5/6
    pairs = [np.array(["en", "en", "en", "ru"]), np.array(["en", "en", "en", "en"])]
    assert mean_average_precision(ranks, by=pairs) == pytest.approx((1.75 / 3 + 5 / 6) / 2)
    assert mean_average_precision(ranks) == pytest.approx((1.75 + 5 / 6) / 4)


def test_same_language_share_hand_example():
    top = np.array([["en", "de", "en"], ["de", "de", "fr"]])
    np.testing.assert_allclose(same_language_shares(top, np.array(["en", "fr"]), k=3), [2 / 3, 1 / 3])
    np.testing.assert_allclose(same_language_shares(top, np.array(["en", "fr"]), k=2), [1 / 2, 0.0])
    with pytest.raises(MlretError, match="fewer than k=10"):
        same_language_shares(top, np.array(["en", "fr"]), k=10)
    with pytest.raises(MlretError, match="one language per query"):
        same_language_shares(top, np.array(["en"]), k=2)


def test_same_language_share_is_macro_over_query_languages():
    top = np.array([["en", "en"], ["en", "de"], ["de", "de"], ["de", "de"]])
    query_langs = np.array(["en", "en", "en", "de"])  # per query: 1, 1/2, 0 (en) and 1 (de)
    shares = same_language_shares(top, query_langs, k=2)
    assert macro_mean(shares, [query_langs]) == pytest.approx((1.5 / 3 + 1.0) / 2)
    assert macro_mean(shares) == pytest.approx(2.5 / 4)


def test_perfect_scorer_gives_map_1_and_rank_distance_n_relevant_minus_1(normalise):
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
    ranks = exact_ranks(queries, pool, relevant, chunk_size=50)
    assert all(r.tolist() == list(range(1, n_langs + 1)) for r in ranks)
    assert mean_average_precision(ranks) == 1.0
    assert mean_rank_distance(ranks) == n_langs - 1


def test_expected_random_average_precision_is_exact_by_enumeration():
    n = 10
    for r in (1, 3, 10):
        exact = np.mean([average_precision(np.array(c) + 1) for c in itertools.combinations(range(n), r)])
        assert expected_random_average_precision(r, n) == pytest.approx(exact, abs=1e-12)
    assert expected_random_average_precision(1, n) == pytest.approx(sum(1 / j for j in range(1, n + 1)) / n)


def test_random_scorer_gives_chance_level_map(normalise):
    """Random embeddings and random relevant sets. Each relevant set lands at a uniformly
    random set of ranks, so mean AP estimates the analytic expectation. Tolerance is
    4 standard errors of that mean (a false alarm about once in 16,000 seeds; the seed is fixed)."""
    n_queries, pool_size, n_rel = 4000, 200, 5
    rng = np.random.default_rng(1)
    queries = normalise(rng.standard_normal((n_queries, 16)))
    pool = normalise(rng.standard_normal((pool_size, 16)))
    relevant = [rng.choice(pool_size, size=n_rel, replace=False) for _ in range(n_queries)]
    aps = np.array([average_precision(r) for r in exact_ranks(queries, pool, relevant)])
    expected = expected_random_average_precision(n_rel, pool_size)
    assert abs(aps.mean() - expected) < 4 * aps.std(ddof=1) / math.sqrt(n_queries)
    assert 0.02 < expected < 0.05  # about R/N = 0.025, plus the harmonic-number term
