"""FAISS indexes: flat search finds the exact top k, ANN recall, persistence, errors."""

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


def clustered(rng: np.random.Generator, n: int, d: int = 32, centres: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Points around shared centres, a rough stand-in for sentence embeddings."""
    c = rng.normal(size=(centres, d))
    pool = unit(c[rng.integers(0, centres, n)] + 0.6 * rng.normal(size=(n, d)))
    queries = unit(c[rng.integers(0, centres, 200)] + 0.6 * rng.normal(size=(200, d)))
    return pool, queries


@pytest.mark.parametrize("k", [1, 10, 100])
def test_flat_search_finds_the_exact_top_k_up_to_float32_rounding(k: int) -> None:
    """On a pool without near-ties FAISS's flat top k is the exact one; only the last digits of scores differ."""
    pool, queries = clustered(np.random.default_rng(k), 2000)
    indices, scores = search(build_index(pool, IndexParams("flat")), queries, k)
    want_indices, want_scores = exact_top_k(queries, pool, k)
    assert indices.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-5)


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
    got, scores = search(build_index(pool, params), queries, 10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
    assert recall >= 0.95, (params.type, recall)
    assert np.all(np.diff(scores, axis=1) <= 0)


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
    a, b = search(index, queries, 20), search(loaded, queries, 20)
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
    with pytest.raises(MlretError, match=r"missing\.faiss: file not found"):
        load_index(tmp_path / "missing.faiss", IndexParams("flat"))
    (tmp_path / "junk.faiss").write_bytes(b"not an index")
    with pytest.raises(MlretError, match=r"junk\.faiss: not a readable FAISS index"):
        load_index(tmp_path / "junk.faiss", IndexParams("flat"))


def test_ivf_with_fewer_vectors_than_lists_says_lower_nlist() -> None:
    pool, _ = clustered(np.random.default_rng(5), 100)
    with pytest.raises(MlretError, match=r"index.ivf_nlist = 1024 .* only 100 vectors[\s\S]*Lower index.ivf_nlist"):
        build_index(pool, IndexParams("ivf"))


def test_k_larger_than_the_pool_is_an_error_and_k_equal_works() -> None:
    pool, queries = clustered(np.random.default_rng(6), 50)
    index = build_index(pool, IndexParams("flat"))
    with pytest.raises(MlretError, match="between 1 and the index size 50"):
        search(index, queries, 51)
    with pytest.raises(MlretError, match="between 1 and the index size"):
        search(index, queries, 0)
    indices, _ = search(index, queries, 50)
    assert sorted(indices[0]) == list(range(50))  # every candidate, once


def test_short_ivf_results_are_padded_at_the_end_the_way_top_k_run_drops() -> None:
    pool, queries = clustered(np.random.default_rng(7), 400)
    index = build_index(pool, IndexParams("ivf", ivf_nlist=40, ivf_nprobe=1))  # ~10 vectors per probed list
    indices, scores = search(index, queries, 60)
    assert (indices == -1).any()
    assert np.all(np.isneginf(scores[indices == -1]))
    run = top_k_run([f"q{i}" for i in range(len(queries))], indices, [f"d{j}" for j in range(len(pool))], scores)
    assert len(run) == int((indices >= 0).sum())


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
    """All three counts are named, the manifest's too: two equal counts alone would not say which file disagrees."""
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
