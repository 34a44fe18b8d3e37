"""Settings built from the alignment, scored with embeddings whose quality we control."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlret.data.parallel import build_parallel
from mlret.scoring.measures import expected_random_average_precision
from mlret.scoring.ranking import similarity_scores
from mlret.scoring.settings import AT_K_NAMES, score_dataset, settings, summarise


@pytest.fixture
def tables(tiny_xquad) -> tuple[pd.DataFrame, pd.DataFrame]:
    root, source = tiny_xquad
    data = build_parallel(source, root / source.name)
    return data.questions, data.candidates


@pytest.fixture
def unbalanced(tmp_path: Path, paragraph_json, source_for, write_file) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MLQA-R-like: not every language holds every question, and languages differ in size.

    Two articles of two paragraphs. Per paragraph, en has 4 sentences and questions k = 0, 1, 2
    (answer: sentence k), ru 3 sentences and k = 0, 1, zh 2 sentences and k = 0. So en has 12
    questions and 16 candidates, ru 8 and 12, zh 4 and 8; pairs range from 12 queries (en→en) to 4
    (anything with zh); question k = 0 has 3 relevant answers in the multilingual pool, k = 1 two,
    k = 2 one. Averaging per pair first (macro) and per query (micro) therefore differ.
    """
    spec = {"en": (4, 3), "ru": (3, 2), "zh": (2, 1)}  # language -> (sentences, questions) per paragraph
    for lang, (n_sentences, n_questions) in spec.items():
        articles = [
            {
                "title": f"{lang}-{a}",
                "paragraphs": [
                    paragraph_json(lang, a, p, n_sentences, [(f"q{a}-{p}-{k}", k) for k in range(n_questions)])
                    for p in range(2)
                ],
            }
            for a in range(2)
        ]
        write_file(tmp_path / "unbalanced" / f"{lang}.json", {"version": "1.1", "data": articles})
    data = build_parallel(source_for(tmp_path, "unbalanced", list(spec)), tmp_path / "unbalanced")
    return data.questions, data.candidates


def answer_embeddings(questions: pd.DataFrame, candidates: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A question matches exactly its answer sentences; every other candidate is orthogonal to all queries."""
    answers = set(questions.answer_candidate)
    position = {
        c: pos
        for c, pos in zip(
            candidates.candidate_id, candidates[["article", "paragraph", "sentence"]].itertuples(index=False)
        )
    }
    dims = {key: i for i, key in enumerate(dict.fromkeys(position[c] for c in questions.answer_candidate))}
    q = np.zeros((len(questions), len(dims) + len(candidates)), np.float32)
    q[np.arange(len(questions)), [dims[position[c]] for c in questions.answer_candidate]] = 1
    p = np.zeros_like(q, shape=(len(candidates), q.shape[1]))
    for j, c in enumerate(candidates.candidate_id):
        p[j, dims[position[c]] if c in answers else len(dims) + j] = 1
    return q, p


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


def random_unit(n_questions: int, n_candidates: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random unit-length question and candidate embeddings (drawn in that order, float32 before normalising)."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n_questions, dim)).astype(np.float32)
    p = rng.standard_normal((n_candidates, dim)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True), p / np.linalg.norm(p, axis=1, keepdims=True)


def test_settings_follow_the_alignment(tables) -> None:
    questions, candidates = tables
    all_settings, skipped = settings(questions, candidates)
    per_name = pd.Series([s.name for s in all_settings]).value_counts().to_dict()
    assert per_name == {"mono": 3, "cross": 6, "multi": 3} and skipped == []
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
    assert (multi.rank_distance == 2).all() and (
        multi.ranks.map(list) == pd.Series([[1, 2, 3]] * len(multi), index=multi.index)
    ).all()
    assert np.allclose(multi["recall@1"], 1 / 3) and np.allclose(multi["recall@10"], 1.0)
    summary = summarise(per_query, skipped=0)
    assert summary["mono"]["map"] == summary["cross"]["map"] == summary["multi"]["map"] == 1.0
    assert summary["multi"]["rank_distance"] == 2.0


def test_random_embeddings_score_at_chance(tables) -> None:
    questions, candidates = tables
    q, p = random_unit(len(questions), len(candidates), dim=64, seed=0)
    per_query, _ = score_dataset(questions, candidates, q, p)
    multi = per_query[per_query.setting == "multi"]
    chance = expected_random_average_precision(3, len(candidates))
    # 72 queries; the AP of a random query has standard deviation below 0.15, so the mean is within 0.06 w.h.p.
    assert abs(multi.ap.mean() - chance) < 0.06


def test_language_pairs_without_shared_questions_are_skipped_and_counted(
    tmp_path: Path, paragraph_json, source_for, write_file
) -> None:
    # en holds q1 and q2; de only q1; hi only q2: de and hi share no question.
    write_file(
        tmp_path / "m" / "en.json", {"data": [{"paragraphs": [paragraph_json("en", 0, 0, 2, [("q1", 0), ("q2", 1)])]}]}
    )
    write_file(tmp_path / "m" / "ru.json", {"data": [{"paragraphs": [paragraph_json("ru", 0, 0, 2, [("q1", 0)])]}]})
    write_file(tmp_path / "m" / "zh.json", {"data": [{"paragraphs": [paragraph_json("zh", 0, 0, 2, [("q2", 1)])]}]})
    data = build_parallel(source_for(tmp_path, "m", ["en", "ru", "zh"]), tmp_path / "m")
    _, skipped = settings(data.questions, data.candidates)
    assert sorted(skipped) == [("ru", "zh"), ("zh", "ru")]


def hand_row(
    setting: str,
    query_lang: str,
    pool_lang: str,
    ranks: list[int],
    ap: float,
    same: float = np.nan,
    recall10: float = 0.0,
) -> dict:
    return {
        "setting": setting,
        "query_lang": query_lang,
        "pool_lang": pool_lang,
        "qid": f"q{len(ranks)}{ranks[0]}",
        "n_relevant": len(ranks),
        "ranks": ranks,
        "ap": ap,
        "rank_distance": ranks[-1] - ranks[0] if len(ranks) > 1 else np.nan,
        "same_language_top10": same,
        **dict.fromkeys(AT_K_NAMES.values(), 0.0),
        "recall@10": recall10,
    }


def test_summary_is_the_macro_average_of_hand_computed_per_query_values() -> None:
    rows = [
        # mono: en holds three queries (AP 1, 1/2, 1/4), ru one (AP 1).
        hand_row("mono", "en", "en", [1], 1.0, recall10=1.0),
        hand_row("mono", "en", "en", [2], 0.5, recall10=1.0),
        hand_row("mono", "en", "en", [4], 0.25, recall10=0.0),
        hand_row("mono", "ru", "ru", [1], 1.0, recall10=0.0),
        # multi: en rank distances 2 and 8 plus a single-answer query; ru 2; zh only a single-answer query.
        hand_row("multi", "en", "all", [1, 2, 3], 1.0, same=1.0),
        hand_row("multi", "en", "all", [1, 9], (1 + 2 / 9) / 2, same=0.5),
        hand_row("multi", "en", "all", [3], 1 / 3, same=0.0),
        hand_row("multi", "ru", "all", [2, 4], 0.5, same=0.2),
        hand_row("multi", "zh", "all", [5], 0.2, same=0.9),
    ]
    summary = summarise(pd.DataFrame(rows), skipped=3)
    assert summary["mono"]["map"] == pytest.approx(((1 + 0.5 + 0.25) / 3 + 1.0) / 2)  # per query it would be 0.6875
    assert summary["mono"]["recall@10"] == pytest.approx((2 / 3 + 0.0) / 2)  # per query: 0.5
    assert summary["mono"]["queries"] == 4 and summary["mono"]["pairs"] == 2
    assert summary["multi"]["map"] == pytest.approx(((1 + (1 + 2 / 9) / 2 + 1 / 3) / 3 + 0.5 + 0.2) / 3)
    # en (2 + 8) / 2 = 5, ru 2, zh has none: (5 + 2) / 2. Per query it would be 4, the largest 8.
    assert summary["multi"]["rank_distance"] == pytest.approx(3.5)
    assert summary["multi"]["same_language_top10"] == pytest.approx((1.5 / 3 + 0.2 + 0.9) / 3)  # per query: 0.52
    assert summary["skipped_cross_pairs"] == 3


def test_unbalanced_answer_embeddings_give_hand_computed_rank_distance(unbalanced) -> None:
    questions, candidates = unbalanced
    per_query, skipped = score_dataset(questions, candidates, *answer_embeddings(questions, candidates))
    assert skipped == [] and (per_query.ap == 1.0).all()
    sizes = per_query.groupby(["setting", "query_lang", "pool_lang"]).size()
    assert sizes[("mono", "en", "en")] == 12 and sizes[("cross", "en", "ru")] == 8 and sizes[("cross", "ru", "zh")] == 4
    multi = per_query[per_query.setting == "multi"]
    # A question in k languages has its answers at ranks 1..k: rank distance k - 1, undefined for k = 1.
    assert (multi.ranks.map(list) == multi.n_relevant.map(lambda k: list(range(1, k + 1)))).all()
    assert multi.groupby("query_lang").n_relevant.agg(sorted).map(tuple).to_dict() == {
        "en": (1,) * 4 + (2,) * 4 + (3,) * 4,
        "ru": (2,) * 4 + (3,) * 4,
        "zh": (3,) * 4,
    }
    # en: four queries at 2, four at 1 (four undefined) = 1.5; ru 1.5; zh 2. Macro 5/3; per query 32/20; the largest 2.
    assert summarise(per_query, 0)["multi"]["rank_distance"] == pytest.approx(5 / 3)


def test_language_biased_embeddings_give_hand_computed_same_language_share(unbalanced) -> None:
    """Every text is its language's unit vector: a query scores 1 on its language's candidates, 0 elsewhere.

    Its top 10 are its own language's candidates first (16 en, 12 ru, only 8 zh), so the share is
    1 for en and ru queries and 8/10 for zh queries.
    """
    questions, candidates = unbalanced
    langs = {lang: i for i, lang in enumerate(sorted(candidates.lang.unique()))}
    q = np.eye(3, dtype=np.float32)[questions.lang.map(langs)]
    p = np.eye(3, dtype=np.float32)[candidates.lang.map(langs)]
    per_query, _ = score_dataset(questions, candidates, q, p)
    multi = per_query[per_query.setting == "multi"]
    assert multi.groupby("query_lang").same_language_top10.agg(set).to_dict() == {"en": {1.0}, "ru": {1.0}, "zh": {0.8}}
    assert per_query[per_query.setting != "multi"].same_language_top10.isna().all()
    assert summarise(per_query, 0)["multi"]["same_language_top10"] == pytest.approx(
        (1 + 1 + 0.8) / 3
    )  # per query: 23.2 / 24


def test_summary_of_random_embeddings_matches_a_plain_macro_average(unbalanced) -> None:
    """Per-query values checked against a stable argsort; setting values against dictionaries of lists."""
    questions, candidates = unbalanced
    q, p = random_unit(len(questions), len(candidates), dim=8, seed=3)
    per_query, _ = score_dataset(questions, candidates, q, p)
    multi = per_query[per_query.setting == "multi"]
    order = np.argsort(-similarity_scores(q, p), axis=1, kind="stable")
    for row, query in zip(multi.itertuples(), multi.qid):
        i = np.flatnonzero((questions.qid == query).to_numpy() & (questions.lang == row.query_lang).to_numpy())[0]
        assert row.same_language_top10 == pytest.approx(
            np.mean(candidates.lang.to_numpy()[order[i, :10]] == row.query_lang)
        )
        if row.n_relevant >= 2:
            assert row.rank_distance == max(row.ranks) - min(row.ranks)
    summary = summarise(per_query, 0)
    for setting, group in per_query.groupby("setting"):
        for column, name in [("ap", "map"), ("recall@10", "recall@10"), ("ndcg@10", "ndcg@10"), ("mrr@10", "mrr@10")]:
            by_pair: dict[tuple[str, str], list[float]] = {}
            for lang, pool, value in zip(group.query_lang, group.pool_lang, group[column]):
                by_pair.setdefault((lang, pool), []).append(value)
            macro = sum(sum(v) / len(v) for v in by_pair.values()) / len(by_pair)
            assert summary[setting][name] == pytest.approx(macro, abs=1e-12)
            assert abs(macro - group[column].mean()) > 1e-6  # the fixture tells macro and per-query averages apart
