"""FAISS indexes over L2-normalised float32 embeddings, scored by inner product: the search side.

Inner product on unit vectors is cosine similarity, the score
:mod:`mlret.scoring.ranking` defines. FAISS adds speed (HNSW, IVF) but not
that definition's last digits: it sums float32 products in its own order and
breaks ties in no stated way, so its scores can differ from the exact ones by
float32 rounding and near-ties can come out in another order. A flat index
still finds the exact top k up to such ties; HNSW and IVF find what their graph
or probed lists reach.

The reported numbers never go through an index (they are exact over the whole
pool, :func:`mlret.scoring.ranking.exact_top_k`); the indexes serve
`python -m mlret.search`, which prints FAISS's own scores. This module loads
FAISS's OpenMP runtime and must never import torch (which brings its own).
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

#: Columns of ``{pool}.candidates.parquet``, the rows an index holds, in index order.
INDEX_CANDIDATE_COLUMNS = ["candidate_id", "lang", "text"]


# --------------------------------------------------------------------------- build, save, load


def build_index(embeddings: np.ndarray, params: IndexParams) -> faiss.Index:
    """An inner-product index over ``embeddings`` (row ``i`` gets id ``i``, the pool index).

    The embeddings pass the same checks as exact scoring (finite, unit norm):
    an index over unnormalised vectors would rank by something other than
    cosine similarity, without any error.
    """
    x = as_embeddings(embeddings, "pool")
    n, d = x.shape
    index: faiss.Index
    if params.type == "flat":
        index = faiss.IndexFlatIP(d)
    elif params.type == "hnsw":
        graph = faiss.IndexHNSWFlat(d, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = params.hnsw_ef_construction
        index = graph
    elif params.type == "ivf":
        if n < params.ivf_nlist:
            raise MlretError(
                f"index.ivf_nlist = {params.ivf_nlist} lists cannot be trained on only {n} vectors.",
                f"Lower index.ivf_nlist (about sqrt(n) = {max(1, int(np.sqrt(n)))} is usual; "
                "FAISS wants >= 39 vectors per list), or use type `flat`.",
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
            f"the index is a {type(index).__name__} (metric {index.metric_type}), "
            f"but index.type = {params.type!r} with inner product.",
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


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """FAISS's top ``k`` pool indices and float32 scores per query, best first.

    ``k`` larger than the index is an error. HNSW/IVF may find fewer than
    ``k`` candidates for a query (IVF lists probed are short): those rows end
    in ``-1`` with score ``-inf``, the padding :func:`~mlret.scoring.runs.top_k_run` drops.
    """
    q = _checked_queries(index, queries, k)
    scores, indices = index.search(q, int(k))
    return _padded(indices, scores)


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


# --------------------------------------------------------------------------- the indexes of one model


def index_model(corpora: EvalCorpora, embeddings_dir: str | Path, index_dir: str | Path, params: IndexParams) -> None:
    """For each dataset: ``{lang}.faiss`` per language, ``all.faiss`` over the pool, and the candidates they index."""
    for dataset in corpora.datasets:
        _, candidates = corpora.tables(dataset)
        candidate_emb = load_candidate_embeddings(Path(embeddings_dir) / dataset, candidates)
        build_pool_indexes(Path(index_dir) / dataset, candidates, candidate_emb, params)


def build_pool_indexes(out_dir: Path, candidates: pd.DataFrame, candidate_emb: np.ndarray, params: IndexParams) -> None:
    """Per pool: ``{pool}.faiss``, ``{pool}.candidates.parquet`` and, written last, ``{pool}.manifest.json``.

    The manifest ties the index and its candidates together (:func:`load_pool` checks it).
    """
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
    rebuild = (
        f"Delete {index_dir} and rebuild it (`dvc repro`): "
        "the index stage was interrupted, or its files were changed by hand."
    )
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
            f"{index_path}: {int(index.ntotal)} vectors, {table_path.name} {len(candidates)} rows, "
            f"{manifest_path.name} records {manifest.get('rows')!r}.",
            rebuild,
        )
    return index, candidates
