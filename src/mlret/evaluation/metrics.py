"""Every retrieval metric of the study, defined once, here.

LAReQA-style evaluation (XQuAD-R, MLQA-R) retrieves from a pool of candidate
sentences in many languages, and every question has several relevant
candidates: its answer sentence in each language. The pipeline stages call
these functions and nothing else, so a number in a report has exactly one
definition, and the tests pin each definition to hand-computed examples and to
independent implementations (ir-measures / trec_eval, scikit-learn).

Definitions (README-ready)
--------------------------

*Score.* The score of candidate ``j`` for query ``q`` is the inner product of
their L2-normalised float32 embeddings (cosine similarity). It is accumulated
in float64 and rounded once to float32. Rounding from float64 makes the score
the same whatever matrix shape BLAS is given: a float32 ``sgemm`` sums in an
order that depends on the shape. On our OpenBLAS build, a one-row chunk and a
1024-row chunk disagree in the last bits of about nine scores in ten. So ranks do not depend
on the chunk size, and identical embeddings get identical scores. (The one
exception needs a float64 sum to land within about 1e-16 of a float32 rounding
midpoint, which is vanishingly rare.)

*Rank and ties.* Candidates are ordered by descending score. Ties are broken
by pool order, so the earlier candidate in the pool ranks first: this is a
stable sort by descending score. The 1-based rank of relevant candidate ``r``
is ``1 + #{j : s_j > s_r} + #{j : s_j == s_r and j < r}``. Ranks are exact over
the whole pool: no approximate index, no cutoff.

*AP / mAP.* For a query whose ``R`` relevant candidates sit at sorted ranks
``rank_1 < ... < rank_R`` in the full pool, AP = ``(1/R) * sum_k k / rank_k``.
This equals trec_eval's ``map`` on a full-pool run, and scikit-learn's
``average_precision_score`` when there are no ties. mAP is the mean over
queries. A query with no relevant candidate has no AP: it must be excluded
upstream, and passing one is an error. A random ranking scores
:func:`expected_random_average_precision` on average (about ``R/N`` for large
pools).

*Rank distance (LAReQA language bias).* For a query with ``R >= 2`` relevant
candidates (one per language), rank distance = highest rank - lowest rank
among them, i.e. how far apart in the ranking the same answer in different
languages lands. The setting-level value is the mean over queries with at
least two relevant candidates. Queries with one relevant candidate have no
rank distance and are left out of that mean; they still count for mAP.
**A perfect retriever does not score 0**: its ``R`` relevant candidates fill
ranks ``1..R``, so its rank distance is ``R - 1`` (10 on XQuAD-R, with 11
languages). That is also the smallest value any ranking can reach. "Perfect
encoder -> rank distance 0" would only hold for a shifted variant,
``max - min - (R - 1)``. We report LAReQA's unshifted quantity so our numbers
can be compared with the paper's.

*Same-language share@k.* The fraction of a query's top-k results that are in
the query's language, averaged over queries. ``k=10`` by default.

*Setting averages* (:func:`macro_mean`). Every setting-level number (mAP,
rank distance, same-language share, the @k metrics) is macro: per-query values
are averaged within each (query language, pool language) pair, then over
pairs, so a language with more questions does not weigh more. The aggregate
functions below take the pair labels as ``by``; without them all queries form
one group.

*@k metrics* (MRR@10, Recall@1/5/10/100, nDCG@10). These are computed by
ir-measures (trec_eval through pytrec_eval; MRR@k through the MS MARCO
scorer) from a TREC-style run and qrels, with binary relevance. Recall@k
divides by *all* relevant candidates of the query, so with 11 relevant
candidates Recall@1 is at most 1/11. A query with no relevant candidate in its
run scores 0; it is not dropped.

*Ties in runs.* trec_eval breaks score ties by doc id (descending, as
strings), and the MS MARCO scorer by doc id ascending. Neither matches the pool
order above. So every run built here (:func:`top_k_run`,
:func:`exact_ranks_to_run`) has score ``-rank``, strictly decreasing within a
query, and every library sees exactly our order. Runs built from
:func:`exact_top_k` and runs built from :func:`exact_ranks` give identical @k
metrics (tested). A FAISS top-k computes its float32 scores in a different
order, so near-ties can come out ordered differently. For reported numbers,
build runs from :func:`exact_top_k`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import ir_measures
import numpy as np
import pandas as pd
from ir_measures import R, RR, nDCG
from ir_measures.util import QrelsConverter, RunConverter
from numpy.typing import NDArray

from mlret.errors import MlretError

#: The @k measures the study reports, in report order.
AT_K_MEASURES: tuple[ir_measures.Measure, ...] = (RR @ 10, R @ 1, R @ 5, R @ 10, R @ 100, nDCG @ 10)

#: How far a row norm may be from 1 before embeddings count as not normalised.
#: float32 normalisation leaves errors near 1e-7, so this only flags real mistakes.
NORM_TOLERANCE = 1e-3

#: Doc ids of the unjudged filler documents in :func:`exact_ranks_to_run`.
FILLER_PREFIX = "mlret-unjudged-"

#: A run or qrels as ir-measures accepts them: a DataFrame or a dict of dicts.
Run = pd.DataFrame | Mapping[str, Mapping[str, float]]
Qrels = pd.DataFrame | Mapping[str, Mapping[str, int]]


# --------------------------------------------------------------------------- scores and exact ranks


def as_embeddings(x: np.ndarray, name: str) -> NDArray[np.float32]:
    """Check one embedding matrix and return it as C-contiguous float32.

    Non-finite values or rows that are not unit length would silently turn
    cosine retrieval into something else, so both are refused.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise MlretError(f"{name} embeddings must be a non-empty 2-D array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise MlretError(f"{name} embeddings must be floating point, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise MlretError(
            f"{name} embeddings contain NaN or infinite values",
            "check the encoder output (an empty text or a diverged checkpoint)",
        )
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    worst = int(np.argmax(np.abs(norms - 1.0)))
    if abs(norms[worst] - 1.0) > NORM_TOLERANCE:
        raise MlretError(
            f"{name} embeddings are not L2-normalised (row {worst} has norm {norms[worst]:.6g})",
            "normalise the embeddings (x / ||x||) before scoring; scores are cosine similarities",
        )
    return x


def exact_scores(queries: NDArray[np.float32], pool_t64: NDArray[np.float64]) -> NDArray[np.float32]:
    """Scores of a block of queries against the whole pool; see the module docstring for why float64."""
    return np.matmul(queries.astype(np.float64), pool_t64).astype(np.float32)


def similarity_scores(queries: np.ndarray, pool: np.ndarray) -> NDArray[np.float32]:
    """The dense (n_queries, pool_size) score matrix, for small inputs and tests.

    Same numbers as :func:`exact_ranks` and :func:`exact_top_k` use, whatever
    the chunk size. For a full setting, use those: they never hold the whole
    matrix.
    """
    q = as_embeddings(queries, "query")
    p = as_embeddings(pool, "pool")
    _check_dims(q, p)
    return exact_scores(q, p.astype(np.float64).T)


def _check_dims(q: np.ndarray, p: np.ndarray) -> None:
    if q.shape[1] != p.shape[1]:
        raise MlretError(f"query embeddings have dimension {q.shape[1]} but pool embeddings {p.shape[1]}", "encode both with the same model")


def _check_chunk_size(chunk_size: int) -> None:
    if not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise MlretError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def _relevant_indices(relevant: Sequence[np.ndarray], n_queries: int, pool_size: int) -> list[NDArray[np.int64]]:
    """Validate the per-query relevant pool indices: 1-D, integer, non-empty, unique, in range."""
    if len(relevant) != n_queries:
        raise MlretError(f"got relevant sets for {len(relevant)} queries but {n_queries} query embeddings")
    out = []
    for i, rel in enumerate(relevant):
        arr = np.asarray(rel)
        if arr.ndim != 1 or arr.size == 0:
            raise MlretError(
                f"query {i} has no relevant pool index (or not a 1-D array)",
                "drop questions without a retrievable answer before evaluation",
            )
        if not np.issubdtype(arr.dtype, np.integer):
            raise MlretError(f"relevant indices of query {i} must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.min() < 0 or arr.max() >= pool_size:
            raise MlretError(f"relevant indices of query {i} fall outside the pool of {pool_size} candidates")
        if np.unique(arr).size != arr.size:
            raise MlretError(f"relevant indices of query {i} repeat a candidate: {arr.tolist()}")
        out.append(arr)
    return out


def exact_ranks(
    queries: np.ndarray,
    pool: np.ndarray,
    relevant: Sequence[np.ndarray],
    chunk_size: int = 1024,
) -> list[NDArray[np.int64]]:
    """1-based ranks, sorted ascending, of each query's relevant candidates in the full pool.

    ``relevant[i]`` holds the pool indices relevant to query ``i``. The rank of
    relevant candidate ``r`` is ``1 + #{j : s_j > s_r} + #{j : s_j == s_r and
    j < r}``: descending score, ties broken by pool order (a stable sort). We
    count rather than sort because mAP needs the exact rank of every relevant
    candidate in the whole pool, not just a top-k. Counting gives that without
    sorting 13k x 13k scores.

    Memory is O(chunk_size x pool_size). One block of ``chunk_size`` queries is
    scored against the whole pool at a time: about ``13 * chunk_size *
    pool_size`` bytes, plus a float64 copy of the pool. Ranks are identical for
    every ``chunk_size`` (see the module docstring on scores).
    """
    q = as_embeddings(queries, "query")
    p = as_embeddings(pool, "pool")
    _check_dims(q, p)
    _check_chunk_size(chunk_size)
    rel = _relevant_indices(relevant, q.shape[0], p.shape[0])
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
        for i in np.flatnonzero((n_equal > 1) & valid[:, t]):  # exact ties are rare: fix those rows one by one
            ranks[i, t] += np.count_nonzero(scores[i, : idx[i, t]] == own[i, 0])
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
    _check_dims(q, p)
    _check_chunk_size(chunk_size)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= p.shape[0]:
        raise MlretError(f"k must be an integer between 1 and the pool size {p.shape[0]}, got {k!r}")
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


# --------------------------------------------------------------------------- AP and language bias


def _sorted_ranks(ranks: np.ndarray, what: str) -> NDArray[np.int64]:
    arr = np.asarray(ranks)
    if arr.ndim != 1 or arr.size == 0:
        raise MlretError(
            f"{what} needs the ranks of at least one relevant candidate, got shape {arr.shape}",
            "exclude queries without a relevant candidate before evaluation",
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise MlretError(f"ranks must be integers, got dtype {arr.dtype}")
    if arr[0] < 1 or np.any(np.diff(arr) <= 0):
        raise MlretError(f"ranks must be 1-based and strictly increasing, got {arr.tolist()[:20]}")
    return arr.astype(np.int64)


def average_precision(ranks: np.ndarray) -> float:
    """Exact AP over the full pool: ``mean_k k / rank_k`` over the sorted 1-based relevant ranks.

    Precision is taken at each relevant candidate's rank and averaged over
    *all* relevant candidates. None is left out, because the ranks cover the
    whole pool.
    """
    r = _sorted_ranks(ranks, "average precision")
    return float(np.mean(np.arange(1, r.size + 1, dtype=np.float64) / r))


def mean_average_precision(ranks_per_query: Sequence[np.ndarray], by: Sequence[np.ndarray] | None = None) -> float:
    """mAP: :func:`average_precision` averaged over queries, macro over the groups ``by`` (see :func:`macro_mean`)."""
    if len(ranks_per_query) == 0:
        raise MlretError("mean average precision of zero queries is undefined")
    return macro_mean([average_precision(r) for r in ranks_per_query], by)


def macro_mean(values: Sequence[float] | np.ndarray, by: Sequence[np.ndarray] | None = None) -> float:
    """The setting average: the mean over queries within each group, then the unweighted mean over groups.

    ``by`` holds one label array per grouping key (the pipeline passes query
    language and pool language), each with one label per query; ``None`` puts
    every query in one group. Averaging per language pair first keeps a
    language with more questions from weighing more. Groups are visited in
    sorted label order and summed as pandas does, so the number is the same
    bit for bit wherever it is computed. A non-finite value means a per-query
    metric was undefined and not filtered out upstream, so it is refused.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise MlretError(f"a setting average needs a non-empty 1-D array of per-query values, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise MlretError(f"{int((~np.isfinite(v)).sum())} per-query values are NaN or infinite", "leave out queries for which the metric is undefined")
    keys = [np.zeros(v.size, dtype=np.int8)] if by is None else [np.asarray(b) for b in by]
    if not keys or any(k.shape != v.shape for k in keys):
        raise MlretError(f"group labels must have one entry per query ({v.size}), got shapes {[k.shape for k in keys]}")
    return float(pd.Series(v).groupby(keys, sort=True).mean().mean())


def expected_random_average_precision(n_relevant: int, pool_size: int) -> float:
    """Chance-level AP: the exact mean AP of a uniformly random ranking.

    The chance reference next to a model's mAP. With ``x_j`` indicating a
    relevant candidate at rank ``j``, ``E[x_j] = R/N`` and ``E[x_i x_j] =
    R(R-1)/(N(N-1))`` for ``i != j``. Summing ``E[x_j * (sum_{i<=j} x_i) / j] / R``
    over ``j`` gives ``(H_N + (R-1)/(N-1) * (N - H_N)) / N``, with ``H_N`` the
    N-th harmonic number. This is ``H_N/N`` for ``R = 1`` and ``1`` for
    ``R = N``.
    """
    if not 1 <= n_relevant <= pool_size:
        raise MlretError(f"need 1 <= n_relevant <= pool_size, got {n_relevant} and {pool_size}")
    if pool_size == 1:
        return 1.0
    harmonic = math.fsum(1.0 / j for j in range(1, pool_size + 1))
    return (harmonic + (n_relevant - 1) / (pool_size - 1) * (pool_size - harmonic)) / pool_size


def rank_distance(ranks: np.ndarray) -> int:
    """LAReQA rank distance of one query: highest minus lowest rank of its relevant candidates.

    Large values mean some languages' answers are retrieved far later than
    others (language bias). A perfect retriever gets ``R - 1``, not 0, because
    ``R`` distinct ranks span at least ``R - 1``. Only defined for two or more
    relevant candidates.
    """
    r = _sorted_ranks(ranks, "rank distance")
    if r.size < 2:
        raise MlretError("rank distance needs at least two relevant candidates, got one")
    return int(r[-1] - r[0])


def rank_distances(ranks_per_query: Sequence[np.ndarray]) -> NDArray[np.float64]:
    """Per-query :func:`rank_distance`, NaN where a query has a single relevant candidate (undefined)."""
    return np.array([rank_distance(r) if np.asarray(r).size >= 2 else np.nan for r in ranks_per_query], dtype=np.float64)


def mean_rank_distance(ranks_per_query: Sequence[np.ndarray], by: Sequence[np.ndarray] | None = None) -> float:
    """Setting-level rank distance: :func:`rank_distance` averaged over queries with >= 2 relevant candidates,
    macro over the groups ``by`` (see :func:`macro_mean`).

    Queries with a single relevant candidate have no spread to measure and are
    left out of this mean (they still count for mAP); a group left with no
    query is left out of the macro average.
    """
    distances = rank_distances(ranks_per_query)
    defined = ~np.isnan(distances)
    if not defined.any():
        raise MlretError("no query has two or more relevant candidates, so rank distance is undefined")
    return macro_mean(distances[defined], None if by is None else [np.asarray(b)[defined] for b in by])


def same_language_shares(top_k_langs: np.ndarray, query_langs: np.ndarray, k: int = 10) -> NDArray[np.float64]:
    """Per query, the fraction of its top ``k`` results written in the query's own language.

    Language bias seen from the top of the ranking. On an 11-way parallel pool
    a language-agnostic retriever has about ``1/11`` of its top results in the
    query's language. Values far above that mean same-language candidates are
    preferred.
    """
    langs = np.asarray(top_k_langs)
    qlangs = np.asarray(query_langs)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise MlretError(f"k must be a positive integer, got {k!r}")
    if langs.ndim != 2 or langs.shape[0] == 0:
        raise MlretError(f"top_k_langs must be a non-empty (n_queries, k) array, got shape {langs.shape}")
    if qlangs.shape != (langs.shape[0],):
        raise MlretError(f"query_langs must have shape ({langs.shape[0]},), got {qlangs.shape}")
    if langs.shape[1] < k:
        raise MlretError(f"top_k_langs holds only {langs.shape[1]} results per query, fewer than k={k}", f"retrieve at least {k} per query")
    return (langs[:, :k] == qlangs[:, None]).mean(axis=1)


def same_language_share_at_k(top_k_langs: np.ndarray, query_langs: np.ndarray, k: int = 10, by: Sequence[np.ndarray] | None = None) -> float:
    """Setting-level same-language share: :func:`same_language_shares` averaged over queries, macro over ``by``."""
    return macro_mean(same_language_shares(top_k_langs, query_langs, k), by)


# --------------------------------------------------------------------------- runs, qrels and @k metrics


def _ids(ids: Sequence[str], what: str) -> list[str]:
    out = [str(i) for i in ids]
    bad = next((i for i in out if not i or any(c.isspace() for c in i)), None)
    if bad is not None:
        raise MlretError(f"{what} {bad!r} is empty or contains whitespace, which the TREC format cannot hold")
    if len(set(out)) != len(out):
        raise MlretError(f"{what}s are not unique")
    return out


def qrels_frame(query_ids: Sequence[str], relevant: Sequence[np.ndarray], doc_ids: Sequence[str]) -> pd.DataFrame:
    """Binary qrels (``query_id, doc_id, relevance=1``) from relevant pool indices."""
    qids = _ids(query_ids, "query id")
    dids = _ids(doc_ids, "doc id")
    rel = _relevant_indices(relevant, len(qids), len(dids))
    rows_q = np.repeat(np.array(qids, dtype=object), [r.size for r in rel])
    rows_d = np.array(dids, dtype=object)[np.concatenate(rel)]
    return pd.DataFrame({"query_id": rows_q, "doc_id": rows_d, "relevance": np.ones(len(rows_q), dtype=np.int64)})


def _run_frame(qids: list[str], doc_lists: list[list[str]]) -> pd.DataFrame:
    """A run whose score is ``-rank``: strictly decreasing, so no library re-breaks ties."""
    lengths = [len(d) for d in doc_lists]
    ranks = np.concatenate([np.arange(1, n + 1) for n in lengths]) if doc_lists else np.empty(0)
    return pd.DataFrame(
        {
            "query_id": np.repeat(np.array(qids, dtype=object), lengths),
            "doc_id": np.array([d for docs in doc_lists for d in docs], dtype=object),
            "score": -ranks.astype(np.float64),
        }
    )


def top_k_run(
    query_ids: Sequence[str],
    indices: np.ndarray,
    doc_ids: Sequence[str],
    scores: np.ndarray | None = None,
) -> pd.DataFrame:
    """A run (``query_id, doc_id, score``) from a FAISS-like top-k, keeping its order exactly.

    ``indices[i]`` lists pool indices best first. ``-1`` entries (FAISS's
    padding when the pool is short) are dropped. The run's score is ``-rank``,
    not the similarity: trec_eval and the MS MARCO scorer each re-break score
    ties by doc id, in opposite directions, so scores that are strictly
    decreasing in our order are the only way every library sees the ranking we
    computed. If ``scores`` are given, they must be non-increasing along each
    row. That catches an unsorted top-k, which would otherwise be evaluated in
    the wrong order without any error.
    """
    qids = _ids(query_ids, "query id")
    dids = np.array(_ids(doc_ids, "doc id"), dtype=object)
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.shape[0] != len(qids):
        raise MlretError(f"indices must have shape ({len(qids)}, k), got {idx.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise MlretError(f"indices must be integers, got dtype {idx.dtype}")
    if idx.size and (idx.min() < -1 or idx.max() >= len(dids)):
        raise MlretError(f"indices fall outside the pool of {len(dids)} candidates")
    if scores is not None:
        sc = np.asarray(scores, dtype=np.float64)
        if sc.shape != idx.shape:
            raise MlretError(f"scores have shape {sc.shape} but indices {idx.shape}")
        with np.errstate(invalid="ignore"):  # -inf - -inf between padding entries
            rising = np.any(np.diff(np.where(idx >= 0, sc, -np.inf), axis=1) > 0, axis=1)
        if rising.any():
            row = int(np.flatnonzero(rising)[0])
            raise MlretError(f"top-k of query {qids[row]!r} is not sorted by descending score", "pass the search results in ranked order")
    doc_lists = []
    for i, row in enumerate(idx):
        kept = row[row >= 0]
        if np.any(row[kept.size :] >= 0):
            raise MlretError(f"top-k of query {qids[i]!r} has -1 padding before real results")
        if np.unique(kept).size != kept.size:
            raise MlretError(f"top-k of query {qids[i]!r} lists a candidate twice")
        doc_lists.append(dids[kept].tolist())
    return _run_frame(qids, doc_lists)


def exact_ranks_to_run(
    query_ids: Sequence[str],
    ranks: Sequence[np.ndarray],
    relevant: Sequence[np.ndarray],
    doc_ids: Sequence[str],
    depth: int = 100,
) -> pd.DataFrame:
    """A depth-``depth`` run that puts each query's relevant candidates at their exact ranks.

    This is the cross-check that @k metrics do not depend on how they are
    computed. Every rank up to ``depth`` that holds no relevant candidate gets
    an unjudged filler doc (``FILLER_PREFIX + rank``), which trec_eval counts as
    non-relevant. So ir-measures on this run gives exactly what it gives on
    the run of :func:`exact_top_k`. ``ranks`` are sorted, so which relevant
    candidate fills which relevant rank is not recorded. No binary-relevance
    measure can tell the difference. Use it for checks, not for run files.
    """
    qids = _ids(query_ids, "query id")
    dids = np.array(_ids(doc_ids, "doc id"), dtype=object)
    if any(d.startswith(FILLER_PREFIX) for d in dids):
        raise MlretError(f"doc ids starting with {FILLER_PREFIX!r} clash with the filler documents")
    rel = _relevant_indices(relevant, len(qids), len(dids))
    if len(ranks) != len(qids):
        raise MlretError(f"got ranks for {len(ranks)} queries but {len(qids)} query ids")
    if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
        raise MlretError(f"depth must be a positive integer, got {depth!r}")
    doc_lists = []
    for qid, r, rel_idx in zip(qids, ranks, rel):
        r = _sorted_ranks(r, "a run from exact ranks")
        if r.size != rel_idx.size:
            raise MlretError(f"query {qid!r} has {r.size} ranks but {rel_idx.size} relevant candidates")
        docs = [f"{FILLER_PREFIX}{n}" for n in range(1, depth + 1)]
        for n, doc in zip(r, dids[np.sort(rel_idx)]):
            if n <= depth:
                docs[n - 1] = doc
        doc_lists.append(docs)
    return _run_frame(qids, doc_lists)


@dataclass(frozen=True)
class AtKResult:
    """@k metrics of one run: per query (rows: query ids, in qrels order) and their means."""

    per_query: pd.DataFrame
    mean: dict[str, float]


def _run_df(run: Run) -> pd.DataFrame:
    try:
        df = RunConverter(run).as_pd_dataframe()
    except ValueError as err:
        raise MlretError(f"not a run: {err}", "pass a DataFrame with query_id, doc_id, score or a dict of dicts") from None
    return df.astype({"query_id": str, "doc_id": str, "score": np.float64})[["query_id", "doc_id", "score"]]


def _qrels_df(qrels: Qrels) -> pd.DataFrame:
    try:
        df = QrelsConverter(qrels).as_pd_dataframe()
    except ValueError as err:
        raise MlretError(f"not qrels: {err}", "pass a DataFrame with query_id, doc_id, relevance or a dict of dicts") from None
    return df.astype({"query_id": str, "doc_id": str, "relevance": np.int64, "iteration": str})


def _nested(df: pd.DataFrame, value: str) -> dict[str, dict[str, object]]:
    """``{query_id: {doc_id: value}}``, the form every ir-measures provider works on.

    Built from plain lists: ir-measures' own converter walks ``itertuples``,
    which takes seconds on a 13k-query run.
    """
    out: dict[str, dict[str, object]] = {}
    for q, d, v in zip(df["query_id"].tolist(), df["doc_id"].tolist(), df[value].tolist()):
        out.setdefault(q, {})[d] = v
    return out


def evaluate_at_k(
    run: Run,
    qrels: Qrels,
    measures: Sequence[ir_measures.Measure] = AT_K_MEASURES,
) -> AtKResult:
    """Per-query values and means of the @k ``measures``, as computed by ir-measures.

    The run must cover exactly the qrels queries, and every qrels query needs a
    relevant doc. Otherwise the mean is taken over some other set of queries
    than the one meant, and no error says so: pytrec_eval drops run queries
    that have no qrels. The run must be at least as deep as the largest
    cutoff (100 for Recall@100) unless the pool is smaller than that.
    """
    run_df = _run_df(run)
    qrels_df = _qrels_df(qrels)
    if run_df.duplicated(["query_id", "doc_id"]).any():
        raise MlretError("the run lists the same doc twice for a query")
    qrels_queries = pd.unique(qrels_df["query_id"])
    run_queries = set(pd.unique(run_df["query_id"]).tolist())
    missing = set(qrels_queries.tolist()) - run_queries
    extra = run_queries - set(qrels_queries.tolist())
    if missing or extra:
        raise MlretError(
            f"run and qrels cover different queries ({len(missing)} only in qrels, {len(extra)} only in the run,"
            f" e.g. {sorted(missing | extra)[:3]})",
            "build the run and the qrels from the same evaluated questions",
        )
    has_relevant = qrels_df.groupby("query_id")["relevance"].max() > 0
    if not has_relevant.all():
        raise MlretError(
            f"{int((~has_relevant).sum())} qrels queries have no relevant doc",
            "exclude queries without a relevant candidate before evaluation",
        )
    evaluator = ir_measures.evaluator(list(measures), _nested(qrels_df, "relevance"))
    result = evaluator.calc(_nested(run_df, "score"))  # iter_calc and calc_aggregate in one pass
    names = [str(m) for m in measures]
    per_query = (
        pd.DataFrame([(m.query_id, str(m.measure), float(m.value)) for m in result.per_query], columns=["query_id", "measure", "value"])
        .pivot(index="query_id", columns="measure", values="value")
        .reindex(index=qrels_queries, columns=names)
    )
    per_query.columns.name = None
    mean = {str(m): float(v) for m, v in result.aggregated.items()}
    return AtKResult(per_query=per_query, mean={n: mean[n] for n in names})


def write_trec_run(path: str | Path, run: Run, tag: str) -> None:
    """Write a run as a TREC run file (``qid Q0 docid rank score tag``); ``.gz`` paths are gzipped.

    The rank column follows descending score, with ties kept in input order.
    Scores are written at full precision (shortest round-trip repr), so
    ``ir_measures.read_trec_run`` reads back exactly the run that was
    evaluated.
    """
    if not tag or any(c.isspace() for c in tag):
        raise MlretError(f"run tag {tag!r} is empty or contains whitespace, which the TREC format cannot hold")
    df = _run_df(run)
    _ids(pd.unique(df["query_id"]), "query id")
    _ids(pd.unique(df["doc_id"]), "doc id")
    order = {q: i for i, q in enumerate(pd.unique(df["query_id"]))}
    df = df.assign(
        Q0="Q0",
        rank=df.groupby("query_id", sort=False)["score"].rank(method="first", ascending=False).astype(np.int64),
        tag=tag,
        _q=df["query_id"].map(order),
    ).sort_values(["_q", "rank"], kind="stable")
    _write_table(path, df[["query_id", "Q0", "doc_id", "rank", "score", "tag"]])


def write_trec_qrels(path: str | Path, qrels: Qrels) -> None:
    """Write qrels as a TREC qrels file (``qid iteration docid relevance``); ``.gz`` paths are gzipped."""
    df = _qrels_df(qrels)
    _ids(pd.unique(df["query_id"]), "query id")
    _ids(pd.unique(df["doc_id"]), "doc id")
    _write_table(path, df[["query_id", "iteration", "doc_id", "relevance"]])


def _write_table(path: str | Path, df: pd.DataFrame) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, sep=" ", header=False, index=False, lineterminator="\n")
