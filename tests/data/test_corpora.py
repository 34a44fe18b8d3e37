"""What each dataset is evaluated on, and embedding files that no longer fit their tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlret.artifacts import write_json, write_table
from mlret.data.beir import load_beir
from mlret.data.corpora import (
    beir_languages,
    load_beir_embeddings,
    load_embeddings,
    load_eval_tables,
    save_beir_embeddings,
    save_embeddings,
)
from mlret.data.parallel import build_parallel
from mlret.errors import MlretError

TEST_ARTICLES = [4, 5]


@pytest.fixture
def parallel(tiny_xquad, write_dataset) -> Path:
    """``tiny-xquad`` (6 articles, the training source; test articles 4 and 5) and ``other`` (3 articles),
    parallelised."""
    root, source = tiny_xquad
    for each in (source, write_dataset(root, "other", ["en", "ru", "zh"], n_articles=3)):
        data = build_parallel(each, root / each.name)
        for table in ("questions", "candidates"):
            write_table(root / "parallel" / each.name / f"{table}.parquet", getattr(data, table))
    write_json(root / "articles.json", {"train": [0, 1, 2], "dev": [3], "test": TEST_ARTICLES})
    return root


def unit_rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_training_source_tables_hold_its_test_articles_only(parallel: Path) -> None:
    questions, candidates = load_eval_tables(
        parallel / "parallel", "tiny-xquad", "tiny-xquad", parallel / "articles.json"
    )
    all_questions = pd.read_parquet(parallel / "parallel" / "tiny-xquad" / "questions.parquet")
    all_candidates = pd.read_parquet(parallel / "parallel" / "tiny-xquad" / "candidates.parquet")
    assert sorted(set(questions.article)) == sorted(set(candidates.article)) == TEST_ARTICLES
    assert (
        len(questions) == all_questions.article.isin(TEST_ARTICLES).sum() == 3 * 2 * 2 * 2
    )  # langs × articles × paragraphs × questions
    assert len(candidates) == all_candidates.article.isin(TEST_ARTICLES).sum() == 3 * 2 * 2 * 3
    other_questions, other_candidates = load_eval_tables(
        parallel / "parallel", "other", "tiny-xquad", parallel / "articles.json"
    )
    assert len(other_questions) == len(pd.read_parquet(parallel / "parallel" / "other" / "questions.parquet"))
    assert len(other_candidates) == len(pd.read_parquet(parallel / "parallel" / "other" / "candidates.parquet"))


def test_load_embeddings_checks_every_row_against_the_tables(parallel: Path) -> None:
    questions, candidates = load_eval_tables(
        parallel / "parallel", "tiny-xquad", "tiny-xquad", parallel / "articles.json"
    )
    q, p = unit_rows(len(questions), 0), unit_rows(len(candidates), 1)
    folder = parallel / "emb" / "tiny-xquad"
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
    with pytest.raises(MlretError, match="rows do not match the current questions table") as err:
        load_embeddings(folder, relabelled, candidates)
    assert "encode" in err.value.fix


def test_embeddings_must_have_one_row_per_table_row(parallel: Path) -> None:
    questions, candidates = load_eval_tables(parallel / "parallel", "other", "tiny-xquad", parallel / "articles.json")
    with pytest.raises(MlretError, match=f"{len(questions) - 1} embeddings for {len(questions)} rows"):
        save_embeddings(
            parallel / "emb", questions, candidates, unit_rows(len(questions) - 1, 0), unit_rows(len(candidates), 1)
        )
    save_embeddings(
        parallel / "emb", questions, candidates, unit_rows(len(questions), 0), unit_rows(len(candidates), 1)
    )
    np.save(
        parallel / "emb" / "candidates.npy", unit_rows(len(candidates) + 1, 1)
    )  # the ids file no longer describes it
    with pytest.raises(MlretError, match=f"but {len(candidates)} rows are listed beside it"):
        load_embeddings(parallel / "emb", questions, candidates)


def test_beir_embeddings_are_checked_by_id(tmp_path: Path, write_beir_language) -> None:
    data = load_beir(write_beir_language(tmp_path / "bench", "en"))
    queries, corpus = unit_rows(len(data.queries), 2), unit_rows(len(data.corpus), 3)
    save_beir_embeddings(tmp_path / "emb", data, queries, corpus)
    got_queries, got_corpus = load_beir_embeddings(tmp_path / "emb", data)
    np.testing.assert_array_equal(got_queries, queries)
    np.testing.assert_array_equal(got_corpus, corpus)
    reordered = type(data)(
        **{**vars(data), "corpus": data.corpus.iloc[::-1].reset_index(drop=True)}
    )  # same size, rows moved
    with pytest.raises(MlretError, match="rows do not match the current corpus table"):
        load_beir_embeddings(tmp_path / "emb", reordered)


def test_a_benchmark_without_language_folders_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    with pytest.raises(MlretError, match="no language subfolders") as err:
        beir_languages(tmp_path / "bench")
    assert "corpus.jsonl" in err.value.fix
    with pytest.raises(MlretError, match="no language subfolders"):
        beir_languages(tmp_path / "missing")


@pytest.mark.parametrize("content", ["[4, 5]", '{"train": [0]}', '{"test": ["4"]}'])
def test_an_articles_file_of_another_shape_is_named(parallel: Path, content: str) -> None:
    """A list at the top level used to be a TypeError traceback in encode and evaluate."""
    (parallel / "articles.json").write_text(content, encoding="utf-8")
    with pytest.raises(
        MlretError, match=r"articles\.json: expected a mapping whose `test` key lists article numbers"
    ) as caught:
        load_eval_tables(parallel / "parallel", "tiny-xquad", "tiny-xquad", parallel / "articles.json")
    assert "dvc repro split" in caught.value.fix
