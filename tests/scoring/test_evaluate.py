"""Encode, index and evaluate one model end to end: what the training source is scored on, and stale embeddings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlret.artifacts import write_json, write_table
from mlret.data.corpora import EvalCorpora, save_embeddings
from mlret.data.parallel import build_parallel
from mlret.encoding.corpora import encode_corpora
from mlret.errors import MlretError
from mlret.models.encoder import Encoder
from mlret.params import IndexParams, load_params
from mlret.scoring.evaluate import evaluate_model
from mlret.scoring.index import index_model

TEST_ARTICLES = [4, 5]


@pytest.fixture
def corpora(tmp_path: Path, write_dataset) -> EvalCorpora:
    """``src`` (6 articles, the training source, tested on articles 4 and 5) and ``other`` (3 articles, zero-shot)."""
    for name, n_articles in (("src", 6), ("other", 3)):
        data = build_parallel(
            write_dataset(tmp_path / "raw", name, ["en", "ru", "zh"], n_articles=n_articles), tmp_path / "raw" / name
        )
        write_table(tmp_path / "parallel" / name / "questions.parquet", data.questions)
        write_table(tmp_path / "parallel" / name / "candidates.parquet", data.candidates)
    write_json(tmp_path / "articles.json", {"train": [0, 1, 2], "dev": [3], "test": TEST_ARTICLES})
    return EvalCorpora(tmp_path / "parallel", tmp_path / "articles.json", "src", ["src", "other"])


def test_encode_index_evaluate_score_the_training_source_on_its_test_articles(
    tmp_path: Path, corpora: EvalCorpora, tiny_checkpoint: Path, make_params
) -> None:
    encoded = encode_corpora(
        Encoder(tiny_checkpoint, make_params(), device="cpu", show_progress=False), corpora, tmp_path / "emb"
    )
    index_model(corpora, tmp_path / "emb", tmp_path / "index", IndexParams("flat"))
    metrics = evaluate_model(
        corpora, tmp_path / "emb", tmp_path / "eval", tmp_path / "metrics.json", "tiny", ["mono", "multi"]
    )
    all_questions = pd.read_parquet(tmp_path / "parallel" / "src" / "questions.parquet")
    all_candidates = pd.read_parquet(tmp_path / "parallel" / "src" / "candidates.parquet")
    test_questions = all_questions[all_questions.article.isin(TEST_ARTICLES)]
    test_candidates = all_candidates[all_candidates.article.isin(TEST_ARTICLES)]
    assert encoded["src"] == len(test_questions) + len(test_candidates) == 24 + 36
    per_query = pd.read_parquet(tmp_path / "eval" / "src" / "per_query.parquet")
    assert sorted(p.name for p in (tmp_path / "eval" / "src").iterdir()) == ["per_query.parquet", "runs"]
    assert sorted(p.name for p in (tmp_path / "eval" / "src" / "runs").iterdir()) == [
        f"{s}.{kind}" for s in ("mono", "multi") for kind in ("qrels", "run.gz")
    ]  # eval.trec_runs
    # Questions: every test-article question in every setting, nothing else.
    assert set(zip(per_query.qid, per_query.query_lang)) == set(zip(test_questions.qid, test_questions.lang))
    assert metrics["src"]["mono"]["queries"] == metrics["src"]["multi"]["queries"] == len(test_questions) == 24
    # Pool: the test articles' candidates (36), so no rank can exceed it; the index holds the same pool.
    assert max(max(r) for r in per_query.ranks) <= len(test_candidates) == 36
    pool = pd.read_parquet(tmp_path / "index" / "src" / "all.candidates.parquet")
    assert sorted(pool.candidate_id) == sorted(test_candidates.candidate_id)
    assert sorted(p.name for p in (tmp_path / "index" / "src").glob("*.faiss")) == [
        "all.faiss",
        "en.faiss",
        "ru.faiss",
        "zh.faiss",
    ]
    # Any other dataset: in full, zero-shot.
    other_questions = pd.read_parquet(tmp_path / "parallel" / "other" / "questions.parquet")
    assert metrics["other"]["multi"]["queries"] == len(other_questions)
    assert metrics["src"]["pool"] == "in-domain test articles" and metrics["other"]["pool"] == "full pool, zero-shot"
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8")) == json.loads(json.dumps(metrics))


def test_embeddings_from_another_split_stop_evaluation_before_any_score(tmp_path: Path, corpora: EvalCorpora) -> None:
    questions, candidates = corpora.tables("src")
    rng = np.random.default_rng(0)
    q, p = rng.standard_normal((len(questions), 8)), rng.standard_normal((len(candidates), 8))
    save_embeddings(
        tmp_path / "emb" / "src",
        questions,
        candidates,
        q / np.linalg.norm(q, axis=1, keepdims=True),
        p / np.linalg.norm(p, axis=1, keepdims=True),
    )
    write_json(
        corpora.articles_path, {"train": [0, 1, 2], "dev": [4], "test": [3, 5]}
    )  # re-split after encoding, same sizes
    with pytest.raises(MlretError, match="rows do not match the current questions table") as err:
        evaluate_model(
            corpora, tmp_path / "emb", tmp_path / "eval", tmp_path / "metrics.json", "tiny", ["mono", "multi"]
        )
    assert "encode" in err.value.fix
    assert not (tmp_path / "eval" / "src" / "per_query.parquet").exists() and not (tmp_path / "metrics.json").exists()


def test_in_domain_corpora_score_the_training_source_alone(corpora: EvalCorpora, tmp_path: Path) -> None:
    """`corpora: in_domain` runs skip every zero-shot dataset and benchmark, whatever params.yaml lists."""
    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    params = dataclasses.replace(params, eval=dataclasses.replace(params.eval, beir={"bench": str(tmp_path)}))
    full = EvalCorpora.from_params(params, corpora.parallel_root, corpora.articles_path)
    assert full.datasets == params.data.eval_sources and full.beir == {"bench": str(tmp_path)}
    in_domain = EvalCorpora.from_params(params, corpora.parallel_root, corpora.articles_path, "in_domain")
    assert in_domain.datasets == ["xquad-r"] and in_domain.beir == {}
