"""The exact ranking engine: scores, full-pool ranks and top-k, with one tie rule.

*Score.* The score of candidate ``j`` for query ``q`` is the inner product of
their L2-normalised float32 embeddings (cosine similarity), accumulated in
float64 and rounded once to float32. A float32 ``sgemm`` sums in an order that
depends on the matrix shape (on our OpenBLAS build a one-row chunk and a
1024-row chunk disagree in the last bits of about nine scores in ten); rounding
from float64 makes the score the same whatever the shape, so ranks do not
depend on the chunk size and identical embeddings get identical scores. (The
one exception needs a float64 sum within about 1e-16 of a float32 rounding
midpoint, which is vanishingly rare.)

*Rank and ties.* Candidates are ordered by descending score, ties broken by
pool order (a stable sort). The 1-based rank of relevant candidate ``r`` is
``1 + #{j : s_j > s_r} + #{j : s_j == s_r and j < r}``, exact over the whole
pool: no approximate index, no cutoff.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mlret.errors import MlretError
from mlret.scoring.checks import as_embeddings, check_chunk_size, check_same_dim, is_count, relevant_indices


def exact_scores(queries: NDArray[np.float32], pool_t64: NDArray[np.float64]) -> NDArray[np.float32]:
    """Scores of a block of queries against the whole pool; see the module docstring for why float64."""
    return np.matmul(queries.astype(np.float64), pool_t64).astype(np.float32)


def similarity_scores(queries: np.ndarray, pool: np.ndarray) -> NDArray[np.float32]:
    """The dense (n_queries, pool_size) score matrix, for small inputs and reference checks.

    Same numbers as :func:`exact_ranks` and :func:`exact_top_k` use, whatever
    the chunk size. For a full setting, use those: they never hold the whole
    matrix.
    """
    q = as_embeddings(queries, "query")
    p = as_embeddings(pool, "pool")
    check_same_dim(q, p)
    return exact_scores(q, p.astype(np.float64).T)


def exact_ranks(
    queries: np.ndarray,
    pool: np.ndarray,
    relevant: Sequence[np.ndarray],
    chunk_size: int = 1024,
) -> list[NDArray[np.int64]]:
    """1-based ranks, sorted ascending, of each query's relevant candidates in the full pool.

    ``relevant[i]`` holds the pool indices relevant to query ``i``. We count
    rather than sort because mAP needs the exact rank of every relevant
    candidate in the whole pool, not just a top-k; counting gives that without
    sorting 13k x 13k scores.

    Memory is O(chunk_size x pool_size): about ``13 * chunk_size * pool_size``
    bytes, plus a float64 copy of the pool. Ranks are identical for every
    ``chunk_size`` (see the module docstring on scores).
    """
    q = as_embeddings(queries, "query")
    p = as_embeddings(pool, "pool")
    check_same_dim(q, p)
    check_chunk_size(chunk_size)
    rel = relevant_indices(relevant, q.shape[0], p.shape[0])
    pool_t64 = p.astype(np.float64).T
    ranks: list[NDArray[np.int64]] = []
    for start in range(0, q.shape[0], chunk_size):
        scores = exact_scores(q[start : start + chunk_size], pool_t64)
        ranks.extend(_ranks_in_block(scores, rel[start : start + chunk_size]))
    return ranks


def _ranks_in_block(scores: NDArray[np.float32], rel: list[NDArray[np.int64]]) -> list[NDArray[np.int64]]:
    """Apply the rank formula to one block of score rows, one relevant "slot" at a time."""
    n_rows = scores.shape[0]
    lengths = np.array([r.size for r in rel])
    width = int(lengths.max())
    valid = np.arange(width)[None, :] < lengths[:, None]
    idx = np.zeros((n_rows, width), dtype=np.int64)
    for i, r in enumerate(rel):
        idx[i, : r.size] = r
    rel_scores = np.take_along_axis(scores, idx, axis=1)
    ranks = np.empty((n_rows, width), dtype=np.int64)
    for t in range(width):
        own = rel_scores[:, t : t + 1]
        ranks[:, t] = 1 + np.count_nonzero(scores > own, axis=1)
        n_equal = np.count_nonzero(scores == own, axis=1)  # includes the candidate itself
        for row in np.flatnonzero((n_equal > 1) & valid[:, t]):  # exact ties are rare: fix those rows one by one
            ranks[row, t] += np.count_nonzero(scores[row, : idx[row, t]] == own[row, 0])
    return [np.sort(ranks[i, : lengths[i]]) for i in range(n_rows)]


def exact_top_k(
    queries: np.ndarray,
    pool: np.ndarray,
    k: int,
    chunk_size: int = 1024,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Pool indices and scores of each query's top ``k`` candidates, in our exact order.

    Same scores and tie rule as :func:`exact_ranks`. So a relevant candidate of
    rank ``n <= k`` sits at column ``n - 1``, and @k metrics from this top-k
    agree exactly with those from :func:`exact_ranks`. A FAISS top-k carries
    no such guarantee (different float32 summation order, unspecified order
    among ties). Memory is O(chunk_size x pool_size).
    """
    q = as_embeddings(queries, "query")
    p = as_embeddings(pool, "pool")
    check_same_dim(q, p)
    check_chunk_size(chunk_size)
    if not is_count(k) or not 1 <= k <= p.shape[0]:
        raise MlretError(
            f"k must be an integer between 1 and the pool size {p.shape[0]}, got {k!r}",
            "Lower k (the retrieval depth) to at most the pool size.",
        )
    pool_t64 = p.astype(np.float64).T
    indices = np.empty((q.shape[0], k), dtype=np.int64)
    top_scores = np.empty((q.shape[0], k), dtype=np.float32)
    for start in range(0, q.shape[0], chunk_size):
        scores = exact_scores(q[start : start + chunk_size], pool_t64)
        idx, sc = _top_k_block(scores, k)
        indices[start : start + len(idx)] = idx
        top_scores[start : start + len(idx)] = sc
    return indices, top_scores


def _top_k_block(scores: NDArray[np.float32], k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Top-k of each row: partition, repair ties straddling the cut, then sort by (-score, index)."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k].astype(np.int64)
    cut = np.take_along_axis(scores, part, axis=1).min(axis=1)
    n_at_least = np.count_nonzero(scores >= cut[:, None], axis=1)
    for i in np.flatnonzero(n_at_least > k):  # candidates tied at the cut: the earliest in the pool win
        above = np.flatnonzero(scores[i] > cut[i])
        tied = np.flatnonzero(scores[i] == cut[i])[: k - above.size]
        part[i] = np.concatenate([above, tied])
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)
