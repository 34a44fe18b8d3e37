"""Settings built from the alignment, scored with embeddings whose quality we control."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import paragraph_json, source_for, write_file
from mlret.data.parallel import build_parallel
from mlret.evaluation.metrics import expected_random_average_precision
from mlret.evaluation.settings import pair_matrix, score_dataset, settings, summarise


@pytest.fixture
def tables(tiny_xquad) -> tuple[pd.DataFrame, pd.DataFrame]:
    root, source = tiny_xquad
    data = build_parallel(source, root / source.name)
    return data.questions, data.candidates


def perfect_embeddings(questions: pd.DataFrame, candidates: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Scores from the alignment itself: a question matches exactly the sentences that answer it."""
    key = {}  # answer sentence position (article, paragraph, sentence) -> dimension
    cand_pos = candidates.set_index("candidate_id")[["article", "paragraph", "sentence"]]
    for c in questions.answer_candidate:
        key.setdefault(tuple(cand_pos.loc[c]), len(key))
    dim = len(key) + len(candidates)
    q = np.zeros((len(questions), dim), np.float32)
    for i, c in enumerate(questions.answer_candidate):
        q[i, key[tuple(cand_pos.loc[c])]] = 1
    p = np.zeros((len(candidates), dim), np.float32)
    for j, pos in enumerate(candidates[["article", "paragraph", "sentence"]].itertuples(index=False)):
        p[j, key.get(tuple(pos), len(key) + j)] = 1  # non-answers get a private, orthogonal dimension
    return q, p


def test_settings_follow_the_alignment(tables) -> None:
    questions, candidates = tables
    all_settings, skipped = settings(questions, candidates)
    kinds = pd.Series([s.name for s in all_settings]).value_counts().to_dict()
    assert kinds == {"mono": 3, "cross": 6, "multi": 3} and skipped == []
    cross = next(s for s in all_settings if (s.name, s.query_lang, s.pool_lang) == ("cross", "ru", "zh"))
    assert set(candidates.lang.to_numpy()[cross.pool_rows]) == {"zh"}
    first = cross.query_rows[0]
    relevant_id = candidates.candidate_id.to_numpy()[cross.pool_rows][cross.relevant[0][0]]
    qid = questions.qid[first]
    assert relevant_id == questions[(questions.qid == qid) & (questions.lang == "zh")].answer_candidate.item()
    multi = next(s for s in all_settings if s.name == "multi")
    assert len(multi.pool_rows) == len(candidates) and all(len(r) == 3 for r in multi.relevant)


def test_perfect_embeddings_give_map_one_and_minimal_rank_distance(tables) -> None:
    questions, candidates = tables
    q, p = perfect_embeddings(questions, candidates)
    per_query, _ = score_dataset(questions, candidates, q, p)
    assert (per_query.ap == 1.0).all()
    multi = per_query[per_query.setting == "multi"]
    # Three relevant answers fill ranks 1..3: rank distance 2, the smallest possible.
    assert (multi.rank_distance == 2).all() and (multi.ranks.map(list) == pd.Series([[1, 2, 3]] * len(multi), index=multi.index)).all()
    assert np.allclose(multi["recall@1"], 1 / 3) and np.allclose(multi["recall@10"], 1.0)
    summary = summarise(per_query, skipped=0)
    assert summary["mono"]["map"] == summary["cross"]["map"] == summary["multi"]["map"] == 1.0
    assert summary["multi"]["rank_distance"] == 2.0
    assert pair_matrix(per_query).shape == (3, 3) and (pair_matrix(per_query).to_numpy() == 1.0).all()


def test_random_embeddings_score_at_chance(tables) -> None:
    questions, candidates = tables
    rng = np.random.default_rng(0)
    q = rng.standard_normal((len(questions), 64)).astype(np.float32)
    p = rng.standard_normal((len(candidates), 64)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    per_query, _ = score_dataset(questions, candidates, q, p)
    multi = per_query[per_query.setting == "multi"]
    chance = expected_random_average_precision(3, len(candidates))
    # 72 queries; the AP of a random query has standard deviation below 0.15, so the mean is within 0.06 w.h.p.
    assert abs(multi.ap.mean() - chance) < 0.06


def test_language_pairs_without_shared_questions_are_skipped_and_counted(tmp_path: Path) -> None:
    # en holds q1 and q2; de only q1; hi only q2: de and hi share no question.
    write_file(tmp_path / "m" / "en.json", {"data": [{"paragraphs": [paragraph_json("en", 0, 0, 2, [("q1", 0), ("q2", 1)])]}]})
    write_file(tmp_path / "m" / "ru.json", {"data": [{"paragraphs": [paragraph_json("ru", 0, 0, 2, [("q1", 0)])]}]})
    write_file(tmp_path / "m" / "zh.json", {"data": [{"paragraphs": [paragraph_json("zh", 0, 0, 2, [("q2", 1)])]}]})
    data = build_parallel(source_for(tmp_path, "m", ["en", "ru", "zh"]), tmp_path / "m")
    _, skipped = settings(data.questions, data.candidates)
    assert sorted(skipped) == [("ru", "zh"), ("zh", "ru")]


def test_summary_averages_queries_within_a_pair_then_pairs() -> None:
    rows = []
    for lang, aps in (("en", [1.0, 1.0, 1.0, 0.0]), ("ru", [0.5])):
        for ap in aps:
            rows.append({"setting": "mono", "query_lang": lang, "pool_lang": lang, "ap": ap, "rank_distance": np.nan, "same_language_top10": np.nan,
                         **dict.fromkeys(["mrr@10", "recall@1", "recall@5", "recall@10", "recall@100", "ndcg@10"], 0.0)})
    summary = summarise(pd.DataFrame(rows), skipped=0)
    assert summary["mono"]["map"] == pytest.approx((0.75 + 0.5) / 2)
    assert summary["mono"]["queries"] == 5 and summary["mono"]["pairs"] == 2
