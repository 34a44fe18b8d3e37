"""FAISS indexes over L2-normalised float32 embeddings, scored by inner product.

Inner product on unit vectors is cosine similarity, the score
:mod:`mlret.evaluation.metrics` defines. FAISS adds speed (HNSW, IVF) but not
that definition: it sums float32 products in its own order, and it breaks ties
in no stated way. So :func:`search` can re-score FAISS's candidates with
metrics.py's own scoring and tie rule. On a flat index the result is then
*identical* to :func:`mlret.evaluation.metrics.exact_top_k` (proved below, and
tested); on HNSW/IVF it is the exact order of the candidates the index found.

This module loads FAISS's OpenMP runtime and must never import torch (which
brings its own): the FAISS stage runs in its own process.
"""

from __future__ import annotations

import os
import tempfile

from pathlib import Path


import faiss
import numpy as np
from numpy.typing import NDArray

from mlret.errors import MlretError
from mlret.evaluation.metrics import as_embeddings, exact_scores, exact_top_k
from mlret.params import INDEX_TYPES, IndexParams


#: Bytes of float64 candidate vectors re-scored at once (bounds :func:`search`'s memory).
RESCORE_BLOCK_BYTES = 64 << 20


# --------------------------------------------------------------------------- build, save, load


def build_index(embeddings: np.ndarray, params: IndexParams) -> faiss.Index:
    """An inner-product index over ``embeddings`` (row ``i`` gets id ``i``, the pool index).

    The embeddings pass the same checks as in metrics.py (finite, unit norm):
    an index over unnormalised vectors would rank by something other than
    cosine similarity, without any error.
    """
    x = as_embeddings(embeddings, "pool")
    n, d = x.shape
    if params.type == "flat":
        index = faiss.IndexFlatIP(d)
    elif params.type == "hnsw":
        index = faiss.IndexHNSWFlat(d, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.hnsw_ef_construction
    elif params.type == "ivf":
        if n < params.ivf_nlist:
            raise MlretError(
                f"index.ivf_nlist = {params.ivf_nlist} lists cannot be trained on only {n} vectors.",
                f"Lower index.ivf_nlist (about sqrt(n) = {max(1, int(np.sqrt(n)))} is usual; FAISS wants >= 39 vectors per list), or use type `flat`.",
            )
        # index_factory owns its coarse quantizer, so nothing can free it under the index.
        index = faiss.index_factory(d, f"IVF{params.ivf_nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        index.train(x)
    else:
        raise MlretError(f"index.type = {params.type!r} is not one of {INDEX_TYPES}.", "Use `flat`, `hnsw` or `ivf`.")
    index.add(x)
    _configure(index, params)
    return index


def _configure(index: faiss.Index, params: IndexParams) -> None:
    """Apply the search-time knobs and check the index is the kind ``params`` describe."""
    expected = {"flat": faiss.IndexFlat, "hnsw": faiss.IndexHNSW, "ivf": faiss.IndexIVF}[params.type]
    if not isinstance(index, expected) or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise MlretError(
            f"the index is a {type(index).__name__} (metric {index.metric_type}), but index.type = {params.type!r} with inner product.",
            "The index file is stale; rebuild it with the current params (`dvc repro`).",
        )
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = params.hnsw_ef_search
    elif isinstance(index, faiss.IndexIVF):
        index.nprobe = params.ivf_nprobe


def save_index(index: faiss.Index, path: str | Path) -> None:
    """Write ``index`` atomically (temporary file, then rename): a crash never leaves half an index."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_index(path: str | Path, params: IndexParams) -> faiss.Index:
    """Read an index written by :func:`save_index` and apply ``params``' search-time knobs."""
    path = Path(path)
    if not path.is_file():
        raise MlretError(f"{path}: file not found.", "Run the stage that builds the index (`dvc repro`).")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise MlretError(f"{path}: not a readable FAISS index ({first}).", "Delete it and rebuild it (`dvc repro`).") from None
    _configure(index, params)
    return index


# --------------------------------------------------------------------------- search


def score_tolerance(dim: int) -> float:
    """A bound on |FAISS float32 score - metrics.py score| for one query/candidate pair.

    Any float32 summation order gives a dot product within ``gamma_d * sum|q_i
    p_i| <= gamma_d * |q| |p|`` of the true value (``gamma_d = d u / (1 - d
    u)``, ``u = 2**-24``); metrics.py's score is within ``u |s|`` of it (one
    rounding of a float64 sum). Norms are at most ``1 + 1e-3``
    (metrics.NORM_TOLERANCE). Twice ``(d + 2) u`` covers all of that with room
    to spare: about 9e-5 for d = 768, while typical errors are near 1e-6.
    """
    return 2.0 * (dim + 2) * 2.0**-24


def search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    pool_embeddings: np.ndarray | None = None,
    margin: int | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Top ``k`` pool indices and scores per query, best first.

    Without ``pool_embeddings`` this is FAISS's own top-k: its float32 scores,
    its order among near-ties.

    With ``pool_embeddings`` (the matrix the index was built from, same row
    order), FAISS proposes ``k + margin`` candidates (``margin`` defaults to
    ``max(k, 16)``); they are re-scored with metrics.py's scoring (float64 sum
    rounded once to float32) and ordered by its tie rule (descending score,
    then pool index). For a *flat* index the result equals
    :func:`metrics.exact_top_k` exactly. Why: FAISS's flat search is exhaustive,
    so every candidate it did not return has FAISS score <= ``last``, the
    lowest FAISS score it returned, hence exact score <= ``last + tol``
    (:func:`score_tolerance`). If that is strictly below the k-th best exact
    score among the candidates, no outsider can enter the top k, not even by a
    tie won on pool index. Rows where the margin does not prove this (a wall
    of near-duplicates at the cut) are recomputed by ``exact_top_k`` over the
    whole pool, so the guarantee never depends on the margin, only the speed
    does. For HNSW/IVF the candidates are whatever the graph/lists reached;
    re-scoring fixes their scores and order, not their recall.

    Every re-scored candidate is also checked against FAISS's score (within
    ``tol``), which catches a ``pool_embeddings`` that is not the indexed one.

    ``k`` larger than the index is an error. HNSW/IVF may find fewer than
    ``k`` candidates for a query (IVF lists probed are short): those rows end
    in ``-1`` with score ``-inf``, the padding :func:`metrics.top_k_run` drops.
    """
    q = as_embeddings(queries, "query")
    if q.shape[1] != index.d:
        raise MlretError(f"query embeddings have dimension {q.shape[1]} but the index {index.d}", "encode both with the same model")
    n_total = int(index.ntotal)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= n_total:
        raise MlretError(
            f"k must be an integer between 1 and the index size {n_total}, got {k!r}",
            "lower k (the retrieval depth) to at most the number of pool candidates",
        )
    if pool_embeddings is None:
        scores, indices = index.search(q, int(k))
        return _padded(indices, scores)

    pool = as_embeddings(pool_embeddings, "pool")
    if pool.shape != (n_total, index.d):
        raise MlretError(
            f"pool embeddings have shape {pool.shape} but the index holds {n_total} vectors of dimension {index.d}",
            "pass the pool the index was built from, in the same row order",
        )
    if margin is None:
        margin = max(int(k), 16)
    if not isinstance(margin, (int, np.integer)) or isinstance(margin, bool) or margin < 0:
        raise MlretError(f"margin must be a non-negative integer, got {margin!r}")
    fetch = min(n_total, int(k) + int(margin))
    faiss_scores, candidates = index.search(q, fetch)
    candidates, faiss_scores = _padded(candidates, faiss_scores)

    tol = score_tolerance(index.d)
    indices = np.empty((q.shape[0], k), dtype=np.int64)
    scores = np.empty((q.shape[0], k), dtype=np.float32)
    block = max(1, RESCORE_BLOCK_BYTES // (8 * fetch * index.d))
    for start in range(0, q.shape[0], block):
        rows = slice(start, start + block)
        idx, sc = _rescore(q[rows], pool, candidates[rows], faiss_scores[rows], tol)
        indices[rows] = idx[:, :k]
        scores[rows] = sc[:, :k]

    if isinstance(index, faiss.IndexFlat) and fetch < n_total:
        lowest_returned = faiss_scores[:, -1].astype(np.float64)
        unproven = np.flatnonzero(~(lowest_returned + tol < scores[:, k - 1].astype(np.float64)))
        if unproven.size:
            indices[unproven], scores[unproven] = exact_top_k(q[unproven], pool, int(k))
    return indices, scores


def _padded(indices: np.ndarray, scores: np.ndarray) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """FAISS pads short results with id -1 and score -FLT_MAX; make that score -inf."""
    indices = np.asarray(indices, dtype=np.int64)
    scores = np.array(scores, dtype=np.float32)
    scores[indices < 0] = -np.inf
    return indices, scores


def _rescore(
    q: NDArray[np.float32],
    pool: NDArray[np.float32],
    candidates: NDArray[np.int64],
    faiss_scores: NDArray[np.float32],
    tol: float,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Score each row's candidates with metrics.py's ``_scores``; order by (-score, pool index)."""
    valid = candidates >= 0
    safe = np.where(valid, candidates, 0)
    pool_t64 = pool[safe].astype(np.float64).transpose(0, 2, 1)  # (rows, d, candidates)
    exact = exact_scores(q[:, None, :], pool_t64)[:, 0, :]  # a batch of (1, d) @ (d, c) products
    gap = np.abs(exact.astype(np.float64) - faiss_scores.astype(np.float64))
    bad = valid & ~(gap <= tol)
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise MlretError(
            f"pool embeddings do not match the indexed vectors: candidate {int(candidates[row, col])} scores"
            f" {float(faiss_scores[row, col]):.7g} in the index but {float(exact[row, col]):.7g} from pool_embeddings",
            "pass the pool the index was built from, in the same row order (or rebuild the index)",
        )
    exact[~valid] = -np.inf
    order = np.lexsort((np.where(valid, candidates, np.iinfo(np.int64).max), -exact), axis=1)
    return np.take_along_axis(np.where(valid, candidates, -1), order, axis=1), np.take_along_axis(exact, order, axis=1)
