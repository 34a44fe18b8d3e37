"""The exact ranking engine against a plain stable argsort of the full score matrix, with ties."""

from __future__ import annotations

import numpy as np
import pytest

from mlret.errors import MlretError
from mlret.scoring.ranking import exact_ranks, exact_top_k, similarity_scores


def normalise(x: np.ndarray) -> np.ndarray:
    """Local (not the fixture): the invalid-input cases are built at collection time."""
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_ranks_break_ties_by_pool_order():
    query = normalise([[1.0, 0.0]])
    # scores:       0          1           0.6         1 (dup of 1)  0.6 (dup of 2)  0.8
    pool = normalise([[0, 1], [1, 0], [0.6, 0.8], [1, 0], [0.6, 0.8], [0.8, 0.6]])
    # descending score, ties by pool index: 1, 3, 5, 2, 4, 0  ->  ranks of indices 0..5 are 6, 1, 4, 2, 5, 3
    cases = {(3, 4): [2, 5], (4, 3): [2, 5], (2,): [4], (0, 1): [1, 6], (1, 3): [1, 2], (5,): [3]}
    for chunk_size in (1, 2, 1024):
        got = exact_ranks(
            np.repeat(query, len(cases), axis=0), pool, [np.array(k) for k in cases], chunk_size=chunk_size
        )
        assert [g.tolist() for g in got] == list(cases.values())


@pytest.mark.parametrize("seed", range(3))
def test_exact_ranks_identical_across_chunk_sizes_and_to_stable_argsort(seed, random_setting, reference_ranks):
    queries, pool, relevant = random_setting(seed)
    rng = np.random.default_rng(seed)
    pool[rng.choice(len(pool), 40)] = pool[rng.choice(len(pool), 40)]  # exact duplicates: real ties
    reference, _ = reference_ranks(queries, pool, relevant)
    scores = similarity_scores(queries, pool)
    assert any(np.unique(row).size < row.size for row in scores)
    for chunk_size in (1, 7, 1024):
        got = exact_ranks(queries, pool, relevant, chunk_size=chunk_size)
        assert len(got) == len(reference)
        for g, ref in zip(got, reference):
            assert g.dtype == np.int64
            np.testing.assert_array_equal(g, ref)


def test_scores_are_cosine_similarities_rounded_once_to_float32():
    query = normalise([[3.0, 4.0]])  # (0.6, 0.8)
    pool = normalise([[1.0, 0.0], [0.0, 2.0], [-4.0, 3.0], [3.0, 4.0]])
    scores = similarity_scores(query, pool)
    assert scores.dtype == np.float32
    exact = query.astype(np.float64) @ pool.astype(np.float64).T  # the float32 inputs, multiplied exactly enough
    np.testing.assert_array_equal(scores, exact.astype(np.float32))
    np.testing.assert_allclose(scores, [[0.6, 0.8, 0.0, 1.0]], atol=1e-7)


def test_scores_do_not_depend_on_block_shape(random_setting):
    queries, pool, _ = random_setting(7, n_queries=33, dim=384)
    full = similarity_scores(queries, pool)
    for chunk in (1, 5, 32):
        parts = np.concatenate([similarity_scores(queries[i : i + chunk], pool) for i in range(0, len(queries), chunk)])
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
        exact_ranks(queries, pool, relevant)


def test_exact_top_k_matches_stable_argsort_including_ties_at_the_cut(random_setting, reference_ranks):
    queries, pool, relevant = random_setting(3, pool_size=120)
    pool[60:80] = pool[5]  # 21 identical candidates: every cut inside them is a tie
    _, order = reference_ranks(queries, pool, relevant)
    for k, chunk_size in [(1, 1), (10, 7), (120, 1024)]:
        indices, scores = exact_top_k(queries, pool, k, chunk_size=chunk_size)
        np.testing.assert_array_equal(indices, order[:, :k])
        np.testing.assert_array_equal(
            scores, np.take_along_axis(similarity_scores(queries, pool), order[:, :k], axis=1)
        )
    with pytest.raises(MlretError):
        exact_top_k(queries, pool, 121)
