from collections import Counter

import numpy as np
import pandas as pd
import pytest

from mlret.errors import MlretError
from mlret.params import CrossSettings, HybridSettings, MonoSettings, MultiSettings, Strategy, StrategySettings
from mlret.training.samplers import BatchKind, BatchSampler, PairPool

# Questions available per language: en has all 40, ru 20, zh 10, ar 5 (nested, as the profiles make them).
AVAILABLE = {"en": 40, "ru": 20, "zh": 10, "ar": 5}


def training_table(shared_answers: bool = True) -> pd.DataFrame:
    rows = []
    for lang, n in AVAILABLE.items():
        for i in range(n):
            # q0 and q1 share one answer sentence (as SQuAD questions often do); every other qid has its own.
            sentence = 0 if (shared_answers and i in (0, 1)) else i
            rows.append(
                {
                    "qid": f"q{i}",
                    "lang": lang,
                    "article": 0,
                    "paragraph": i // 4,
                    "query": f"{lang} question {i}",
                    "positive": f"{lang} sentence {sentence}",
                    "positive_id": f"{lang}:0:{i // 4}:{sentence}",
                    "hard_negative_ids": [f"{lang}:0:{i // 4}:{j}" for j in range(40, 43)]
                    + [f"{lang}:0:0:{(i + 1) % 40}"],
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def pool() -> PairPool:
    return PairPool(training_table())


def settings(strategy: str, mono_ratio: float = 0.5) -> StrategySettings:
    """A strategy's settings as params.yaml gives them."""
    return {
        "mono": MonoSettings(),
        "cross": CrossSettings(),
        "multi": MultiSettings(),
        "hybrid": HybridSettings(mono_ratio),
    }[strategy]


def batches(pool: PairPool, strategy: str, n: int, mono_ratio: float = 0.5, **kwargs) -> tuple[BatchSampler, list]:
    sampler = BatchSampler(
        pool,
        settings(strategy, mono_ratio),
        batch_size=kwargs.pop("batch_size", 4),
        seed=kwargs.pop("seed", 0),
        schedule=kwargs.pop("schedule", "random"),
        **kwargs,
    )
    return sampler, [sampler.next_batch() for _ in range(n)]


@pytest.mark.parametrize("strategy", list(Strategy))
def test_no_batch_repeats_a_question_or_an_answer_sentence(pool: PairPool, strategy: Strategy) -> None:
    _, drawn = batches(pool, strategy.value, 300, batch_size=6, hard_negatives=2)
    for batch in drawn:
        qids = [p.qid for p in batch.pairs]
        assert len(qids) == len(set(qids))
        assert not {"q0", "q1"} <= set(qids), "q0 and q1 share an answer sentence"
        positives = set(pool.rows.loc[qids, "positive_id"])
        for negatives in batch.hard_negatives:
            assert len(negatives) == 2 and not positives & set(negatives)


def test_mono_batches_are_one_language(pool: PairPool) -> None:
    _, drawn = batches(pool, "mono", 200)
    for batch in drawn:
        assert len({(p.query_lang, p.passage_lang) for p in batch.pairs}) == 1
        assert all(p.query_lang == p.passage_lang for p in batch.pairs)


def test_cross_batches_are_one_ordered_pair_of_different_languages(pool: PairPool) -> None:
    _, drawn = batches(pool, "cross", 300)
    seen = set()
    for batch in drawn:
        pairs = {(p.query_lang, p.passage_lang) for p in batch.pairs}
        assert len(pairs) == 1 and all(x != y for x, y in pairs)
        seen |= pairs
    assert ("ru", "en") in seen and ("en", "ru") in seen  # ordered pairs, both directions


def test_multi_batches_mix_languages_within_a_batch(pool: PairPool) -> None:
    _, drawn = batches(pool, "multi", 200, batch_size=8)
    mixed = [len({(p.query_lang, p.passage_lang) for p in b.pairs}) > 1 for b in drawn]
    assert np.mean(mixed) > 0.9
    assert any(p.query_lang == p.passage_lang for b in drawn for p in b.pairs)
    assert any(p.query_lang != p.passage_lang for b in drawn for p in b.pairs)


def test_answer_groups_link_questions_through_any_shared_sentence_in_any_language() -> None:
    """q0 ~ q1 share an English answer, q1 ~ q2 a Russian one: all three are one group; q3 is its own."""
    answers = {
        ("q0", "en"): "en:a",
        ("q1", "en"): "en:a",
        ("q1", "ru"): "ru:b",
        ("q2", "ru"): "ru:b",
        ("q2", "en"): "en:c",
        ("q3", "en"): "en:d",
    }
    rows = pd.DataFrame(
        [
            {"qid": q, "lang": lang, "query": q, "positive": a, "positive_id": a, "hard_negative_ids": []}
            for (q, lang), a in answers.items()
        ]
    )
    group = PairPool(rows).group_of
    assert group["q0"] == group["q1"] == group["q2"] != group["q3"]


def test_every_pair_exists_in_the_profile(pool: PairPool) -> None:
    for strategy in Strategy:
        _, drawn = batches(pool, strategy.value, 100)
        for p in (p for b in drawn for p in b.pairs):
            assert (p.qid, p.query_lang) in pool.rows.index and (p.qid, p.passage_lang) in pool.rows.index


def test_hybrid_builds_mono_batches_at_the_configured_ratio(pool: PairPool) -> None:
    _, drawn = batches(pool, "hybrid", 3000, mono_ratio=0.3)
    kinds = Counter(b.kind for b in drawn)
    assert set(kinds) == {BatchKind.MONO, BatchKind.CROSS}
    # Binomial standard deviation sqrt(0.3 * 0.7 / 3000) = 0.0084; allow four of them.
    assert abs(kinds[BatchKind.MONO] / 3000 - 0.3) < 0.034
    for b in drawn:
        same = {p.query_lang == p.passage_lang for p in b.pairs}
        assert same == ({True} if b.kind is BatchKind.MONO else {False})


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_batch_languages_follow_n_to_the_alpha(alpha: float) -> None:
    pool = PairPool(training_table(shared_answers=False))
    _, drawn = batches(pool, "mono", 4000, alpha=alpha)
    observed = Counter(b.pairs[0].query_lang for b in drawn)
    weights = {lang: n**alpha for lang, n in AVAILABLE.items()}
    total = sum(weights.values())
    for lang, weight in weights.items():
        # 4000 draws: the standard deviation of a share is at most 0.008; allow 0.03.
        assert abs(observed[lang] / 4000 - weight / total) < 0.03, (lang, observed)


def test_small_languages_give_short_batches_that_are_counted(pool: PairPool) -> None:
    sampler, drawn = batches(pool, "mono", 400, batch_size=8)
    arabic = [b for b in drawn if b.pairs[0].query_lang == "ar"]
    # Five Arabic questions, two of which share an answer sentence: four fit in one batch.
    assert arabic and all(len(b.pairs) == 4 for b in arabic)
    assert sampler.short_batches == len(arabic)


def test_a_language_pair_visits_all_its_questions_in_a_fresh_order_before_repeating() -> None:
    """Per language pair, the questions drawn so far are whole passes over the pair's questions, each in its own order.

    Batches of 5 divide every pair's questions (40, 20, 10, 5) and no two questions share an answer, so a pass
    never straddles a batch that would hold a question twice.
    """
    pool = PairPool(training_table(shared_answers=False))
    _, drawn = batches(pool, "mono", 300, batch_size=5)
    streams: dict[tuple[str, str], list[str]] = {}
    for batch in drawn:
        for p in batch.pairs:
            streams.setdefault((p.query_lang, p.passage_lang), []).append(p.qid)
    for (lang, _), stream in streams.items():
        n = AVAILABLE[lang]
        passes = [stream[i : i + n] for i in range(0, len(stream) - n + 1, n)]
        assert len(passes) >= 3, (lang, len(stream))
        assert all(sorted(one) == sorted(f"q{i}" for i in range(n)) for one in passes), lang
        if n > 5:  # 5! orders make a repeated order likely by chance for Arabic; 10! do not
            assert len({tuple(one) for one in passes}) == len(passes), lang


def test_same_seed_same_batches_other_seed_other_batches(pool: PairPool) -> None:
    def trace(seed: int) -> list:
        _, drawn = batches(pool, "hybrid", 50, seed=seed, hard_negatives=1)
        return [(b.kind, b.pairs, b.hard_negatives) for b in drawn]

    assert trace(7) == trace(7)
    assert trace(7) != trace(8)


def test_language_exposure_counts_the_query_side_and_the_passage_side() -> None:
    """Five planned cross batches of two pairs go to en-ru, ru-en, en-zh, ru-zh and zh-en (the largest quotas; see
    test_schedule.py). Both sides: en 2 + 2 query and 2 + 2 passage = 8, ru 4 + 2 = 6, zh 2 + 4 = 6 of 20.
    One side alone would give other shares (queries: en 0.4, ru 0.4, zh 0.2; passages: en 0.4, ru 0.2, zh 0.4)."""
    pool = PairPool(training_table(shared_answers=False))
    sampler, drawn = batches(pool, "cross", 5, batch_size=2, schedule="quota", total_batches=5)
    assert Counter((b.pairs[0].query_lang, b.pairs[0].passage_lang) for b in drawn) == {
        ("en", "ru"): 1,
        ("ru", "en"): 1,
        ("en", "zh"): 1,
        ("ru", "zh"): 1,
        ("zh", "en"): 1,
    }
    assert sampler.language_sides() == {"en": 8, "ru": 6, "zh": 6}
    assert sampler.language_share() == {"en": 0.4, "ru": 0.3, "zh": 0.3}


def test_cross_needs_two_languages_for_the_same_questions() -> None:
    rows = training_table()
    with pytest.raises(MlretError, match="no cross pairs"):
        BatchSampler(PairPool(rows[rows.lang == "en"]), CrossSettings(), batch_size=4, schedule="random")


def test_a_restored_sampler_continues_the_same_stream(pool: PairPool) -> None:
    first = BatchSampler(pool, HybridSettings(0.5), batch_size=4, hard_negatives=1, seed=11, schedule="random")
    for _ in range(17):
        first.next_batch()
    saved = first.state_dict()
    expected = [first.next_batch() for _ in range(20)]
    second = BatchSampler(pool, HybridSettings(0.5), batch_size=4, hard_negatives=1, seed=999, schedule="random")
    second.load_state_dict(saved)
    assert [second.next_batch() for _ in range(20)] == expected


def expected_shares(pairs: list[tuple[str, str]], alpha: float) -> dict[tuple[str, str], float]:
    """Nested profiles: a pair (x, y) has as many questions as the smaller of its two languages."""
    weights = {(x, y): min(AVAILABLE[x], AVAILABLE[y]) ** alpha for x, y in pairs}
    total = sum(weights.values())
    return {pair: w / total for pair, w in weights.items()}


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_cross_batch_language_pairs_follow_n_to_the_alpha(alpha: float) -> None:
    pool = PairPool(training_table(shared_answers=False))
    _, drawn = batches(pool, "cross", 4000, alpha=alpha)
    observed = Counter((b.pairs[0].query_lang, b.pairs[0].passage_lang) for b in drawn)
    expected = expected_shares([(x, y) for x in AVAILABLE for y in AVAILABLE if x != y], alpha)
    for pair, share in expected.items():
        # Twelve pairs, 4000 batches: a share's standard deviation is at most 0.008; allow 0.025.
        assert abs(observed[pair] / 4000 - share) < 0.025, (pair, share, observed)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_multi_pair_languages_follow_n_to_the_alpha(alpha: float) -> None:
    # Two pairs a batch: every bucket has room for both, so no draw is retried and the shares are exact.
    pool = PairPool(training_table(shared_answers=False))
    _, drawn = batches(pool, "multi", 4000, alpha=alpha, batch_size=2)
    observed = Counter((p.query_lang, p.passage_lang) for b in drawn for p in b.pairs)
    assert sum(observed.values()) == 8000
    expected = expected_shares([(x, y) for x in AVAILABLE for y in AVAILABLE], alpha)
    for pair, share in expected.items():
        # Sixteen pairs, 8000 draws: a share's standard deviation is at most 0.006; allow 0.02.
        assert abs(observed[pair] / 8000 - share) < 0.02, (pair, share, observed)
