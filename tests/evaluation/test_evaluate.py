"""The evaluate stage end to end: what the training source is scored on, and embeddings that no longer fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_dataset
from mlret.artifacts import write_json, write_table
from mlret.data.parallel import build_parallel
from mlret.errors import MlretError
from mlret.evaluation.corpus import load_embeddings, load_eval_tables, save_embeddings
from mlret.evaluation.evaluate import evaluate_model
from mlret.params import IndexParams
from mlret.retrieval.embeddings import encode_corpora

TEST_ARTICLES = [4, 5]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Two parallelised datasets: ``src`` (6 articles, the training source) and ``other`` (3 articles)."""
    for name, n_articles in (("src", 6), ("other", 3)):
        source = write_dataset(tmp_path / "raw", name, ["en", "ru", "zh"], n_articles=n_articles)
        data = build_parallel(source, tmp_path / "raw" / name)
        write_table(tmp_path / "parallel" / name / "questions.parquet", data.questions)
        write_table(tmp_path / "parallel" / name / "candidates.parquet", data.candidates)
    write_json(tmp_path / "articles.json", {"train": [0, 1, 2], "dev": [3], "test": TEST_ARTICLES})
    return tmp_path


def full_tables(root: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = root / "parallel" / name
    return pd.read_parquet(folder / "questions.parquet"), pd.read_parquet(folder / "candidates.parquet")


def random_unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def evaluate(root: Path, datasets: list[str]) -> dict[str, object]:
    return evaluate_model(
        "m", datasets, "src", IndexParams("flat"), parallel_root=root / "parallel", articles_path=root / "articles.json",
        embeddings_root=root / "emb", index_root=root / "index", eval_root=root / "eval", metrics_root=root / "metrics",
    )


def test_training_source_tables_hold_its_test_articles_only(root: Path) -> None:
    questions, candidates = load_eval_tables(root / "parallel", "src", "src", root / "articles.json")
    all_questions, all_candidates = full_tables(root, "src")
    assert sorted(set(questions.article)) == sorted(set(candidates.article)) == TEST_ARTICLES
    assert len(questions) == all_questions.article.isin(TEST_ARTICLES).sum() == 3 * 2 * 2 * 2  # langs × articles × paragraphs × questions
    assert len(candidates) == all_candidates.article.isin(TEST_ARTICLES).sum() == 3 * 2 * 2 * 3
    other_questions, other_candidates = load_eval_tables(root / "parallel", "other", "src", root / "articles.json")
    assert (len(other_questions), len(other_candidates)) == tuple(map(len, full_tables(root, "other")))


def test_encode_then_evaluate_scores_the_training_source_on_its_test_articles(root: Path, tiny_checkpoint: Path, make_params) -> None:
    encode_corpora(tiny_checkpoint, make_params(), ["src", "other"], "src", root / "parallel", root / "articles.json", root / "emb" / "m", device="cpu")
    metrics = evaluate(root, ["src", "other"])
    all_questions, all_candidates = full_tables(root, "src")
    test_questions = all_questions[all_questions.article.isin(TEST_ARTICLES)]
    test_candidates = all_candidates[all_candidates.article.isin(TEST_ARTICLES)]
    per_query = pd.read_parquet(root / "eval" / "m" / "src" / "per_query.parquet")
    # Questions: every test-article question in every setting, nothing else.
    assert set(zip(per_query.qid, per_query.query_lang)) == set(zip(test_questions.qid, test_questions.lang))
    assert metrics["src"]["mono"]["queries"] == metrics["src"]["multi"]["queries"] == len(test_questions) == 24
    # Pool: the test articles' candidates (36), so no rank can exceed it.
    pool = pd.read_parquet(root / "index" / "m" / "src" / "all.candidates.parquet")
    assert sorted(pool.candidate_id) == sorted(test_candidates.candidate_id)
    assert max(max(r) for r in per_query.ranks) <= len(test_candidates) == 36
    # Any other dataset: in full, zero-shot.
    other_questions, other_candidates = full_tables(root, "other")
    assert metrics["other"]["multi"]["queries"] == len(other_questions)
    assert len(pd.read_parquet(root / "index" / "m" / "other" / "all.candidates.parquet")) == len(other_candidates)


def test_embeddings_from_another_split_stop_evaluation_before_any_score(root: Path) -> None:
    questions, candidates = load_eval_tables(root / "parallel", "src", "src", root / "articles.json")
    save_embeddings(root / "emb" / "m" / "src", questions, candidates, random_unit(len(questions), 0), random_unit(len(candidates), 1))
    write_json(root / "articles.json", {"train": [0, 1, 2], "dev": [4], "test": [3, 5]})  # re-split after encoding, same sizes
    with pytest.raises(MlretError, match="rows do not match the current questions table") as err:
        evaluate(root, ["src"])
    assert "encode" in err.value.fix
    assert not (root / "eval" / "m" / "src" / "per_query.parquet").exists() and not (root / "metrics" / "m.json").exists()


def test_load_embeddings_checks_every_row_against_the_tables(root: Path) -> None:
    questions, candidates = load_eval_tables(root / "parallel", "src", "src", root / "articles.json")
    q, p = random_unit(len(questions), 0), random_unit(len(candidates), 1)
    folder = root / "emb" / "m" / "src"
    with pytest.raises(MlretError, match="not found"):
        load_embeddings(folder, questions, candidates)
    save_embeddings(folder, questions, candidates, q, p)
    got_q, got_p = load_embeddings(folder, questions, candidates)
    np.testing.assert_array_equal(got_q, q)
    np.testing.assert_array_equal(got_p, p)
    swapped = candidates.iloc[[1, 0, *range(2, len(candidates))]]  # same rows, same count, another order
    with pytest.raises(MlretError, match="rows do not match the current candidates table"):
        load_embeddings(folder, questions, swapped)
    relabelled = questions.assign(lang=questions.lang.replace({"ru": "zh", "zh": "ru"}))  # same ids, other languages
    with pytest.raises(MlretError, match="rows do not match the current questions table"):
        load_embeddings(folder, relabelled, candidates)
