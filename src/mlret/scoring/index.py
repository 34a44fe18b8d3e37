"""FAISS indexes over L2-normalised float32 embeddings, scored by inner product: the search side.

Inner product on unit vectors is cosine similarity, the score
:mod:`mlret.scoring.ranking` defines. FAISS adds speed (HNSW, IVF) but not
that definition: it sums float32 products in its own order, and it breaks ties
in no stated way. So :func:`search` can re-score FAISS's candidates with the
exact scoring and tie rule. On a flat index the result is then *identical* to
:func:`mlret.scoring.ranking.exact_top_k` (proved below, and tested); on
HNSW/IVF it is the exact order of the candidates the index found.

The reported numbers never go through an index (they are exact over the whole
pool); the indexes serve `python -m mlret.search`. This module loads FAISS's
OpenMP runtime and must never import torch (which brings its own).
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from tqdm.auto import tqdm

from mlret.artifacts import atomic_path, file_sha256, read_json, read_table, write_json, write_table
from mlret.data.corpora import EvalCorpora, load_candidate_embeddings
from mlret.errors import MlretError
from mlret.params import INDEX_TYPES, IndexParams
from mlret.scoring.checks import as_embeddings, is_count
from mlret.scoring.ranking import exact_scores, exact_top_k

#: Columns of ``{pool}.candidates.parquet``, the rows an index holds, in index order.
INDEX_CANDIDATE_COLUMNS = ["candidate_id", "lang", "text"]

#: Bytes of float64 candidate vectors re-scored at once (bounds :func:`search`'s memory).
RESCORE_BLOCK_BYTES = 64 << 20


# --------------------------------------------------------------------------- build, save, load


def build_index(embeddings: np.ndarray, params: IndexParams) -> faiss.Index:
    """An inner-product index over ``embeddings`` (row ``i`` gets id ``i``, the pool index).

    The embeddings pass the same checks as exact scoring (finite, unit norm):
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
    """Apply the search-time knobs and check the index is the type ``params`` describe."""
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
    """Write ``index`` atomically: a crash never leaves half an index."""
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))


def load_index(path: str | Path, params: IndexParams) -> faiss.Index:
    """Read an index written by :func:`save_index` and apply ``params``' search-time knobs."""
    path = Path(path)
    if not path.is_file():
        raise MlretError(f"{path}: file not found.", "Run the stage that builds the index (`dvc repro`).")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise MlretError(
            f"{path}: not a readable FAISS index ({first}).", "Delete it and rebuild it (`dvc repro`)."
        ) from None
    _configure(index, params)
    return index


# --------------------------------------------------------------------------- search


def score_tolerance(dim: int) -> float:
    """A bound on |FAISS float32 score - exact score| for one query/candidate pair.

    Any float32 summation order gives a dot product within ``gamma_d * sum|q_i
    p_i| <= gamma_d * |q| |p|`` of the true value (``gamma_d = d u / (1 - d
    u)``, ``u = 2**-24``); the exact score is within ``u |s|`` of it (one
    rounding of a float64 sum). Norms are at most ``1 + 1e-3``
    (checks.NORM_TOLERANCE). Twice ``(d + 2) u`` covers all of that with room
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
    ``max(k, 16)``); they are re-scored with the exact scoring (float64 sum
    rounded once to float32) and ordered by its tie rule (descending score,
    then pool index). For a *flat* index the result equals
    :func:`~mlret.scoring.ranking.exact_top_k` exactly. Why: FAISS's flat search is exhaustive,
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
    in ``-1`` with score ``-inf``, the padding :func:`~mlret.scoring.runs.top_k_run` drops.
    """
    q = _checked_queries(index, queries, k)
    n_total = int(index.ntotal)
    if pool_embeddings is None:
        scores, indices = index.search(q, int(k))
        return _padded(indices, scores)

    pool = as_embeddings(pool_embeddings, "pool")
    if pool.shape != (n_total, index.d):
        raise MlretError(
            f"pool embeddings have shape {pool.shape} but the index holds {n_total} vectors of dimension {index.d}",
            "Pass the pool the index was built from, in the same row order.",
        )
    if margin is None:
        margin = max(int(k), 16)
    if not is_count(margin) or margin < 0:
        raise MlretError(f"margin must be a non-negative integer, got {margin!r}", "Pass margin >= 0, or leave it out.")
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


def _checked_queries(index: faiss.Index, queries: np.ndarray, k: int) -> NDArray[np.float32]:
    q = as_embeddings(queries, "query")
    if q.shape[1] != index.d:
        raise MlretError(
            f"query embeddings have dimension {q.shape[1]} but the index {index.d}", "Encode both with the same model."
        )
    if not is_count(k) or not 1 <= k <= int(index.ntotal):
        raise MlretError(
            f"k must be an integer between 1 and the index size {int(index.ntotal)}, got {k!r}",
            "Lower k (the retrieval depth) to at most the number of pool candidates.",
        )
    return q


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
    """Score each row's candidates exactly (:func:`exact_scores`); order by (-score, pool index)."""
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
            "Pass the pool the index was built from, in the same row order (or rebuild the index).",
        )
    exact[~valid] = -np.inf
    order = np.lexsort((np.where(valid, candidates, np.iinfo(np.int64).max), -exact), axis=1)
    return np.take_along_axis(np.where(valid, candidates, -1), order, axis=1), np.take_along_axis(exact, order, axis=1)


# --------------------------------------------------------------------------- the indexes of one model


def index_model(corpora: EvalCorpora, embeddings_dir: str | Path, index_dir: str | Path, params: IndexParams) -> None:
    """For each dataset: ``{lang}.faiss`` per language, ``all.faiss`` over the pool, and the candidates they index."""
    for dataset in corpora.datasets:
        _, candidates = corpora.tables(dataset)
        candidate_emb = load_candidate_embeddings(Path(embeddings_dir) / dataset, candidates)
        build_pool_indexes(Path(index_dir) / dataset, candidates, candidate_emb, params)


def build_pool_indexes(out_dir: Path, candidates: pd.DataFrame, candidate_emb: np.ndarray, params: IndexParams) -> None:
    """Per pool: ``{pool}.faiss``, ``{pool}.candidates.parquet`` and, written last, ``{pool}.manifest.json`` tying the two together."""
    groups = [("all", candidates.index.to_numpy())] + [
        (str(lang), rows.index.to_numpy()) for lang, rows in candidates.groupby("lang", sort=True)
    ]
    for name, rows in tqdm(groups, desc=f"index {out_dir.name}", unit="index", leave=False):
        index_path, table_path = out_dir / f"{name}.faiss", out_dir / f"{name}.candidates.parquet"
        save_index(build_index(candidate_emb[rows], params), index_path)
        write_table(table_path, candidates.loc[rows, INDEX_CANDIDATE_COLUMNS])
        write_json(
            out_dir / f"{name}.manifest.json",
            {"rows": len(rows), "index_sha256": file_sha256(index_path), "candidates_sha256": file_sha256(table_path)},
        )


def load_pool(index_dir: str | Path, pool: str, params: IndexParams) -> tuple[faiss.Index, pd.DataFrame]:
    """A pool's index and the candidates its rows are, checked to belong together.

    Row ``i`` of the index is row ``i`` of the candidates table; nothing in
    either file says so. An index stage stopped between its writes, or a file
    copied over another, would pair them wrongly and print other candidates'
    text for the hits (or fail on a row out of range), so both files must
    match the hashes and row count the manifest recorded when they were written.
    """
    index_dir = Path(index_dir)
    index_path, table_path = index_dir / f"{pool}.faiss", index_dir / f"{pool}.candidates.parquet"
    manifest_path = index_dir / f"{pool}.manifest.json"
    rebuild = f"Delete {index_dir} and rebuild it (`dvc repro`): the index stage was interrupted, or its files were changed by hand."
    if not manifest_path.is_file():
        raise MlretError(
            f"{manifest_path}: not found, so {index_path.name} cannot be checked against its candidates.", rebuild
        )
    manifest = read_json(manifest_path)
    index = load_index(index_path, params)
    candidates = read_table(table_path, INDEX_CANDIDATE_COLUMNS, "index")
    for path, key in ((index_path, "index_sha256"), (table_path, "candidates_sha256")):
        if not isinstance(manifest, dict) or file_sha256(path) != manifest.get(key):
            raise MlretError(
                f"{path}: not the file {manifest_path.name} records (its content changed after the index was built).",
                rebuild,
            )
    if not int(index.ntotal) == len(candidates) == manifest.get("rows"):
        raise MlretError(
            f"{index_path}: {int(index.ntotal)} vectors, {table_path.name} {len(candidates)} rows, {manifest_path.name} records {manifest.get('rows')!r}.",
            rebuild,
        )
    return index, candidates
