"""FAISS indexes: exactness of re-scored flat search, ANN recall, persistence, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlret.errors import MlretError
from mlret.params import IndexParams, parse_index_params
from mlret.scoring.index import build_index, load_index, save_index, search
from mlret.scoring.ranking import exact_top_k
from mlret.scoring.runs import top_k_run


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def tie_heavy_pool(rng: np.random.Generator, n: int = 600, d: int = 16) -> np.ndarray:
    """Lattice vectors (exact ties everywhere), exact duplicates and 1-ulp-scale near-duplicates.

    The lattice is non-negative on purpose. Signed entries make scores that
    cancel to ~1e-8, where the exact scores depend on BLAS's matrix
    shape (exact_top_k with chunk_size=1 and 1024 differ there), so no
    re-scoring could be bitwise equal to it.
    """
    lattice = np.zeros((n, d))
    for row in lattice:
        row[rng.choice(d, 4, replace=False)] = 1.0
    pool = (lattice / 2.0).astype(np.float32)  # entries in {0, 0.5}: every lattice score is a multiple of 0.25
    pool[n // 2 : n // 2 + 50] = pool[:50]  # exact duplicates, later in the pool
    near = pool[50:150] + rng.normal(scale=1e-7, size=(100, d)).astype(np.float32)
    pool[150:250] = unit(near)  # near-ties that float32 summation order can flip
    pool[250:300] = unit(rng.normal(size=(50, d)))
    return pool


def clustered(rng: np.random.Generator, n: int, d: int = 32, centres: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Points around shared centres, a rough stand-in for sentence embeddings."""
    c = rng.normal(size=(centres, d))
    pool = unit(c[rng.integers(0, centres, n)] + 0.6 * rng.normal(size=(n, d)))
    queries = unit(c[rng.integers(0, centres, 200)] + 0.6 * rng.normal(size=(200, d)))
    return pool, queries


@pytest.mark.parametrize("k", [1, 5, 37, 100, 600])
@pytest.mark.parametrize("margin", [None, 0, 3])
def test_flat_rescored_search_is_identical_to_exact_top_k(k: int, margin: int | None) -> None:
    rng = np.random.default_rng(k)
    pool = tie_heavy_pool(rng)
    queries = np.concatenate(
        [pool[rng.choice(len(pool), 60, replace=False)], unit(rng.normal(size=(40, pool.shape[1])))]
    )
    index = build_index(pool, IndexParams("flat"))
    indices, scores = search(index, queries, k, pool_embeddings=pool, margin=margin)
    want_indices, want_scores = exact_top_k(queries, pool, k)
    assert indices.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_array_equal(scores, want_scores)


def test_ties_at_the_cut_are_ordered_by_the_exact_rule_not_by_faiss() -> None:
    rng = np.random.default_rng(1)
    pool = tie_heavy_pool(rng)
    index = build_index(pool, IndexParams("flat"))
    raw, _ = search(index, pool[:20], 10)
    want, _ = exact_top_k(pool[:20], pool, 10)
    assert (raw != want).any()  # FAISS alone orders these ties its own way
    np.testing.assert_array_equal(search(index, pool[:20], 10, pool_embeddings=pool)[0], want)
    smooth, queries = clustered(rng, 2000)
    indices, _ = search(build_index(smooth, IndexParams("flat")), queries, 10, pool_embeddings=smooth)
    np.testing.assert_array_equal(indices, exact_top_k(queries, smooth, 10)[0])


@pytest.mark.parametrize(
    "params",
    [
        IndexParams("hnsw", hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=64),
        IndexParams("ivf", ivf_nlist=32, ivf_nprobe=8),
    ],
    ids=["hnsw", "ivf"],
)
def test_approximate_indexes_recall_at_10(params: IndexParams) -> None:
    rng = np.random.default_rng(2)
    pool, queries = clustered(rng, 3000)
    want, _ = exact_top_k(queries, pool, 10)
    index = build_index(pool, params)
    for pool_embeddings in (None, pool):
        got, scores = search(index, queries, 10, pool_embeddings=pool_embeddings)
        recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
        assert recall >= 0.95, (params.type, pool_embeddings is None, recall)
        assert np.all(np.diff(scores, axis=1) <= 0)
    # re-scored: exactly the exact scores and order for whatever candidates were found
    got, scores = search(index, queries, 10, pool_embeddings=pool)
    pool64 = pool.astype(np.float64)
    for i in range(len(queries)):
        np.testing.assert_array_equal(scores[i], (pool64[got[i]] @ queries[i].astype(np.float64)).astype(np.float32))
        np.testing.assert_array_equal(np.lexsort((got[i], -scores[i])), np.arange(10))  # (-score, pool index) order


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip_gives_identical_results(index_type: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    pool, queries = clustered(rng, 1000)
    params = IndexParams(index_type, hnsw_m=8, hnsw_ef_construction=40, hnsw_ef_search=32, ivf_nlist=16, ivf_nprobe=4)
    index = build_index(pool, params)
    path = tmp_path / "sub" / f"{index_type}.faiss"
    save_index(index, path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    loaded = load_index(path, params)
    for pool_embeddings in (None, pool):
        a = search(index, queries, 20, pool_embeddings=pool_embeddings)
        b = search(loaded, queries, 20, pool_embeddings=pool_embeddings)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_load_applies_search_time_params(tmp_path: Path) -> None:
    pool, _ = clustered(np.random.default_rng(4), 500)
    save_index(build_index(pool, IndexParams("hnsw", hnsw_m=8, hnsw_ef_construction=40)), tmp_path / "h.faiss")
    assert load_index(tmp_path / "h.faiss", IndexParams("hnsw", hnsw_ef_search=77)).hnsw.efSearch == 77
    save_index(build_index(pool, IndexParams("ivf", ivf_nlist=8, ivf_nprobe=2)), tmp_path / "i.faiss")
    assert load_index(tmp_path / "i.faiss", IndexParams("ivf", ivf_nlist=8, ivf_nprobe=5)).nprobe == 5
    with pytest.raises(MlretError, match="stale"):
        load_index(tmp_path / "i.faiss", IndexParams("hnsw"))


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MlretError, match="missing.faiss: file not found"):
        load_index(tmp_path / "missing.faiss", IndexParams("flat"))
    (tmp_path / "junk.faiss").write_bytes(b"not an index")
    with pytest.raises(MlretError, match="junk.faiss: not a readable FAISS index"):
        load_index(tmp_path / "junk.faiss", IndexParams("flat"))


def test_ivf_with_fewer_vectors_than_lists_says_lower_nlist() -> None:
    pool, _ = clustered(np.random.default_rng(5), 100)
    with pytest.raises(MlretError, match=r"index.ivf_nlist = 1024 .* only 100 vectors[\s\S]*Lower index.ivf_nlist"):
        build_index(pool, IndexParams("ivf"))


def test_k_larger_than_the_pool_is_an_error_and_k_equal_works() -> None:
    pool, queries = clustered(np.random.default_rng(6), 50)
    index = build_index(pool, IndexParams("flat"))
    for pool_embeddings in (None, pool):
        with pytest.raises(MlretError, match="between 1 and the index size 50"):
            search(index, queries, 51, pool_embeddings=pool_embeddings)
        with pytest.raises(MlretError, match="between 1 and the index size"):
            search(index, queries, 0, pool_embeddings=pool_embeddings)
    indices, _ = search(index, queries, 50, pool_embeddings=pool)
    np.testing.assert_array_equal(indices, exact_top_k(queries, pool, 50)[0])


def test_short_ivf_results_are_padded_at_the_end_the_way_top_k_run_drops() -> None:
    pool, queries = clustered(np.random.default_rng(7), 400)
    index = build_index(pool, IndexParams("ivf", ivf_nlist=40, ivf_nprobe=1))  # ~10 vectors per probed list
    for pool_embeddings in (None, pool):
        indices, scores = search(index, queries, 60, pool_embeddings=pool_embeddings)
        assert (indices == -1).any()
        assert np.all(np.isneginf(scores[indices == -1]))
        run = top_k_run([f"q{i}" for i in range(len(queries))], indices, [f"d{j}" for j in range(len(pool))], scores)
        assert len(run) == int((indices >= 0).sum())


def test_mismatched_pool_is_caught() -> None:
    rng = np.random.default_rng(8)
    pool, queries = clustered(rng, 300)
    index = build_index(pool, IndexParams("flat"))
    with pytest.raises(MlretError, match="do not match the indexed vectors"):
        search(index, queries, 10, pool_embeddings=pool[rng.permutation(len(pool))])
    with pytest.raises(MlretError, match="pool embeddings have shape"):
        search(index, queries, 10, pool_embeddings=pool[:-1])


def test_unnormalised_embeddings_are_refused() -> None:
    pool, queries = clustered(np.random.default_rng(9), 100)
    with pytest.raises(MlretError, match="not L2-normalised"):
        build_index(pool * 2, IndexParams("flat"))
    with pytest.raises(MlretError, match="not L2-normalised"):
        search(build_index(pool, IndexParams("flat")), queries * 2, 5)


def test_parse_index_params() -> None:
    assert parse_index_params({"type": "flat"}) == IndexParams("flat")
    assert parse_index_params({"type": "ivf", "ivf_nlist": 64, "ivf_nprobe": 8}) == IndexParams(
        "ivf", ivf_nlist=64, ivf_nprobe=8
    )
    bad = [
        ({}, r"index: `type` is missing"),
        ({"type": "annoy"}, r"index.type = 'annoy' is not one of"),
        ({"type": "hnsw", "hnsw_m": 0}, r"index.hnsw_m = 0 must be a positive int"),
        ({"type": "hnsw", "hnsw_ef_search": 1.5}, r"index.hnsw_ef_search = 1.5 is not an integer"),
        ({"type": "hnsw", "hnsw_m": True}, r"index.hnsw_m = True is not an integer"),
        ({"type": "hnsw", "hnsw_ef_serch": 64}, r"index.hnsw_ef_serch: unknown key"),
        ({"type": "ivf", "ivf_nlist": 16, "ivf_nprobe": 32}, r"index.ivf_nprobe = 32 exceeds index.ivf_nlist = 16"),
    ]
    for raw, message in bad:
        with pytest.raises(MlretError, match=message):
            parse_index_params(raw)
    with pytest.raises(MlretError, match="index is not a mapping"):
        parse_index_params(["flat"])  # type: ignore[arg-type]


@pytest.mark.parametrize("module", ["mlret.scoring.index", "mlret.scoring.evaluate", "mlret.data.corpora"])
def test_scoring_modules_do_not_load_torch(module: str) -> None:
    """torch and faiss each bring an OpenMP runtime; the FAISS and numpy stages must not load torch."""
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_manifest_whose_row_count_disagrees_is_named_with_every_count(tmp_path: Path) -> None:
    """The message used to read "54 vectors, but all.candidates.parquet has 54 rows", leaving out the manifest that disagreed."""
    import json

    import pandas as pd

    from mlret.scoring.index import build_pool_indexes, load_pool

    emb = unit(np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32))
    candidates = pd.DataFrame(
        {"candidate_id": [f"c{i}" for i in range(6)], "lang": ["en", "ru"] * 3, "text": [f"t{i}" for i in range(6)]}
    )
    params = IndexParams("flat")
    build_pool_indexes(tmp_path, candidates, emb, params)
    manifest = json.loads((tmp_path / "all.manifest.json").read_text())
    (tmp_path / "all.manifest.json").write_text(json.dumps({**manifest, "rows": 1}))
    with pytest.raises(
        MlretError, match=r"all\.faiss: 6 vectors, all\.candidates\.parquet 6 rows, all\.manifest\.json records 1\."
    ):
        load_pool(tmp_path, "all", params)
