"""The quota schedule fixes how often each batch kind, language and language pair is used; the random one draws them."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from mlret.params import CrossSettings, HybridSettings, MonoSettings, MultiSettings, StrategySettings
from mlret.training.loop import train_run
from mlret.training.samplers import Batch, BatchKind, BatchSampler, PairPool, apportion

# Nested as the profiles make them: en has all 40 questions, ru the first 20, zh 10, ar 5.
AVAILABLE = {"en": 40, "ru": 20, "zh": 10, "ar": 5}
STRATEGIES: dict[str, StrategySettings] = {
    "mono": MonoSettings(),
    "cross": CrossSettings(),
    "multi": MultiSettings(),
    "hybrid": HybridSettings(0.3),
}


def table(available: dict[str, int], shared_answers: bool = False) -> pd.DataFrame:
    """Questions q0.. in each language; with ``shared_answers`` q0 and q1 share an answer sentence (one group)."""
    rows = []
    for lang, n in available.items():
        for i in range(n):
            sentence = 0 if (shared_answers and i in (0, 1)) else i
            rows.append(
                {
                    "qid": f"q{i}",
                    "lang": lang,
                    "query": f"{lang} question {i}",
                    "positive": f"{lang} sentence {sentence}",
                    "positive_id": f"{lang}:{sentence}",
                    "hard_negative_ids": [f"{lang}:{j}" for j in range(40, 43)],
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def pool() -> PairPool:
    return PairPool(table(AVAILABLE))


def quota(
    pool: PairPool, settings: StrategySettings, total: int, seed: int = 0, batch_size: int = 1, **kwargs
) -> BatchSampler:
    return BatchSampler(
        pool, settings, batch_size=batch_size, seed=seed, schedule="quota", total_batches=total, **kwargs
    )


def draw(sampler: BatchSampler, n: int) -> list[Batch]:
    return [sampler.next_batch() for _ in range(n)]


def pair_counts(batches: list[Batch]) -> Counter:
    return Counter((p.query_lang, p.passage_lang) for b in batches for p in b.pairs)


def trace(batches: list[Batch]) -> list:
    return [(b.kind, b.pairs, b.hard_negatives) for b in batches]


# -- the apportionment rule, by hand -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "batches", "expected"),
    [
        # Weights 10, 5, 1 (sum 16). 7 batches: one each, then 4 * (10, 5, 1) / 16 = 2.5, 1.25, 0.25
        # -> whole parts 2, 1, 0 and the one batch left to the largest remainder (0.5): 1 + (3, 1, 0).
        (1.0, 7, {"de": 4, "es": 2, "hi": 1}),
        # 20 batches: one each, then 17 * (10, 5, 1) / 16 = 10.625, 5.3125, 1.0625 -> 10, 5, 1, plus one to de.
        # (Plain largest remainder without the one each would give 13, 6, 1.)
        (1.0, 20, {"de": 12, "es": 6, "hi": 2}),
        # Weights sqrt(10), sqrt(5), 1 = 3.162, 2.236, 1 (sum 6.398). 7 batches: one each, then
        # 4 * w / 6.398 = 1.977, 1.398, 0.625 -> 1, 1, 0, and the two left to the remainders 0.977 and 0.625.
        (0.5, 7, {"de": 3, "es": 2, "hi": 2}),
        # 20: one each, then 17 * w / 6.398 = 8.402, 5.941, 2.657 -> 8, 5, 2, the two left to 0.941 and 0.657.
        (0.5, 20, {"de": 9, "es": 7, "hi": 4}),
        # 2 batches for 3 languages: too few to cover them; 2 * (10, 5, 1) / 16 = 1.25, 0.625, 0.125 -> 1, 0, 0 + es.
        (1.0, 2, {"de": 1, "es": 1}),
    ],
)
def test_mono_batches_per_language_are_the_largest_remainder_quota(
    alpha: float, batches: int, expected: dict[str, int]
) -> None:
    pool = PairPool(table({"de": 10, "es": 5, "hi": 1}))
    drawn = draw(quota(pool, MonoSettings(), batches, alpha=alpha), batches)
    assert Counter(b.pairs[0].query_lang for b in drawn) == expected


def test_ties_go_to_the_first_listed_and_decimal_ratios_are_taken_as_written() -> None:
    assert apportion([Fraction(1)] * 3, 2) == [1, 1, 0]
    assert apportion([Fraction(1)] * 3, 4, cover=True) == [2, 1, 1]
    assert apportion([Fraction(3, 10), Fraction(7, 10)], 10) == [3, 7]


def test_cross_batches_below_the_coverage_budget_go_to_the_largest_pairs(pool: PairPool) -> None:
    """Five batches for twelve pairs: 5 * n / 110 = 0.909 for en-ru and ru-en, 0.455 for the four pairs of
    en or ru with zh, 0.227 for the six with ar; nothing whole, so the five go to en-ru, ru-en and the first
    three 0.455s in the listed order (ar, en, ru, zh): en-zh, ru-zh, zh-en."""
    drawn = draw(quota(pool, CrossSettings(), 5), 5)
    assert pair_counts(drawn) == Counter(
        {("en", "ru"): 1, ("ru", "en"): 1, ("en", "zh"): 1, ("ru", "zh"): 1, ("zh", "en"): 1}
    )


def test_hybrid_kind_counts_are_exact_and_only_their_order_is_drawn(pool: PairPool) -> None:
    orders = set()
    for seed in range(5):
        kinds = [b.kind for b in draw(quota(pool, HybridSettings(0.3), 10, seed=seed), 10)]
        assert Counter(kinds) == {BatchKind.MONO: 3, BatchKind.CROSS: 7}
        orders.add(tuple(kinds))
    assert len(orders) > 1
    # 0.5 of 7 is 3.5 each: the tie goes to mono, listed first.
    assert Counter(b.kind for b in draw(quota(pool, HybridSettings(0.5), 7), 7)) == {
        BatchKind.MONO: 4,
        BatchKind.CROSS: 3,
    }
    # 0.15 of 10 is a tie too (1.5, 8.5) as written, though the float 0.15 is a hair below it.
    assert Counter(b.kind for b in draw(quota(pool, HybridSettings(0.15), 10), 10)) == {
        BatchKind.MONO: 2,
        BatchKind.CROSS: 8,
    }


# -- coverage ----------------------------------------------------------------------------------------------


def test_every_pair_with_data_is_covered_when_the_budget_allows(pool: PairPool) -> None:
    cross = draw(quota(pool, CrossSettings(), 12), 12)
    assert pair_counts(cross) == Counter({(x, y): 1 for x in AVAILABLE for y in AVAILABLE if x != y})
    # Hybrid at 0.5 of 24: 12 mono batches over four languages, 12 cross batches over twelve pairs.
    hybrid = pair_counts(draw(quota(pool, HybridSettings(0.5), 24, batch_size=1), 24))
    assert set(hybrid) == {(x, y) for x in AVAILABLE for y in AVAILABLE}
    assert all(hybrid[(x, y)] == 1 for x in AVAILABLE for y in AVAILABLE if x != y)


def test_multi_apportions_pair_slots_exactly() -> None:
    """50 batches of 2 = 100 slots over 16 pairs weighted by min(n) (sum 185): one each, then 84 * w / 185 =
    18.16 (en-en), 9.08 (weight 20: ru-ru, en-ru, ru-en), 4.54 (weight 10: five pairs), 2.27 (weight 5: seven
    pairs) -> 18, 9, 4, 2 add up to 79, and the 5 left go to the five 0.54 remainders."""
    pool = PairPool(table(AVAILABLE))
    counts = pair_counts(draw(quota(pool, MultiSettings(), 50, batch_size=2), 50))
    expected = {}
    for x in AVAILABLE:
        for y in AVAILABLE:
            expected[(x, y)] = {40: 19, 20: 10, 10: 6, 5: 3}[min(AVAILABLE[x], AVAILABLE[y])]
    assert counts == expected and sum(counts.values()) == 100


def test_multi_slots_that_do_not_fit_a_batch_wait_for_the_next_one() -> None:
    """en has q0-q2, ru q0-q1, and q0, q1 are one answer group: no batch finds three questions, every pair
    with ru only one, so slots miss and wait; none is lost (the run's short batches leave some unused).
    Quota: 90 slots, weights 3 (en-en) and 2 (the three pairs with ru): one each, then 86 * w / 9 = 28.67,
    19.11 -> 28 + 3 * 19 = 85, the one left to en-en."""
    pool = PairPool(table({"en": 3, "ru": 2}, shared_answers=True))
    sampler = quota(pool, MultiSettings(), 30, batch_size=3)
    drawn = draw(sampler, 30)
    assert sampler.short_batches == 30
    left = Counter(sampler.choices[BatchKind.MULTI].pairs[i] for i in sampler.planned_pairs[BatchKind.MULTI])
    assert pair_counts(drawn) + left == Counter(
        {("en", "en"): 30, ("en", "ru"): 20, ("ru", "en"): 20, ("ru", "ru"): 20}
    )
    assert sum(left.values()) == 90 - sum(len(b.pairs) for b in drawn)


# -- the seed decides the order only ------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_same_seed_same_order_other_seed_same_counts_other_order(pool: PairPool, strategy: str) -> None:
    def run(seed: int) -> list[Batch]:
        return draw(quota(pool, STRATEGIES[strategy], 40, seed=seed, batch_size=3, hard_negatives=1), 40)

    first, again, other = run(1), run(1), run(2)
    assert trace(first) == trace(again)
    languages = [[[(p.query_lang, p.passage_lang) for p in b.pairs] for b in run] for run in (first, other)]
    assert languages[0] != languages[1]
    assert Counter(b.kind for b in first) == Counter(b.kind for b in other)
    assert pair_counts(first) == pair_counts(other)
    batch_pairs = [
        Counter((b.kind, b.pairs[0].query_lang, b.pairs[0].passage_lang) for b in run) for run in (first, other)
    ]
    if strategy != "multi":  # one language pair per batch: the batches per pair are fixed too
        assert batch_pairs[0] == batch_pairs[1]


def test_past_the_planned_batches_the_stream_plans_again(pool: PairPool) -> None:
    sampler = quota(pool, HybridSettings(0.3), 10)
    drawn = draw(sampler, 30)
    assert [Counter(b.kind for b in drawn[i : i + 10])[BatchKind.MONO] for i in (0, 10, 20)] == [3, 3, 3]


# -- random: every batch draws its kind and its language pair on its own; resuming continues the plan --------


def languages_of(kind: BatchKind) -> list[tuple[str, str]]:
    if kind is BatchKind.MONO:
        return [(x, x) for x in AVAILABLE]
    if kind is BatchKind.CROSS:
        return [(x, y) for x in AVAILABLE for y in AVAILABLE if x != y]
    return [(x, y) for x in AVAILABLE for y in AVAILABLE]


def within_four_sigma(count: int, total: int, share: float) -> bool:
    """A binomial count of ``total`` draws is within four standard deviations of its expected ``share``."""
    return abs(count - total * share) <= 4 * math.sqrt(total * share * (1 - share))


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_the_random_schedule_draws_kinds_and_language_pairs_with_their_shares(strategy: str) -> None:
    """3000 batches of 4 at alpha 0.5: a hybrid batch is mono with probability 0.3; a mono or cross batch, or a
    multi pair slot, takes language pair (x, y) with probability proportional to min(n_x, n_y) ** 0.5 (nested
    questions). Every pair has at least 5 questions, so no batch is short and no slot is drawn again."""
    sampler = BatchSampler(
        PairPool(table(AVAILABLE)), STRATEGIES[strategy], batch_size=4, alpha=0.5, seed=5, schedule="random"
    )
    drawn = draw(sampler, 3000)
    kinds = Counter(b.kind for b in drawn)
    if strategy == "hybrid":
        assert set(kinds) == {BatchKind.MONO, BatchKind.CROSS}
        assert within_four_sigma(kinds[BatchKind.MONO], 3000, 0.3), kinds
    else:
        assert set(kinds) == {BatchKind(strategy)}
    for kind in kinds:
        of_kind = [b for b in drawn if b.kind is kind]
        if kind is BatchKind.MULTI:
            units = pair_counts(of_kind)
        else:
            assert all(len({(p.query_lang, p.passage_lang) for p in b.pairs}) == 1 for b in of_kind)
            units = Counter((b.pairs[0].query_lang, b.pairs[0].passage_lang) for b in of_kind)
        weights = {(x, y): min(AVAILABLE[x], AVAILABLE[y]) ** 0.5 for x, y in languages_of(kind)}
        total = sum(units.values())
        for pair, weight in weights.items():
            assert within_four_sigma(units[pair], total, weight / sum(weights.values())), (kind, pair, units)
    assert sampler.short_batches == 0 and all(len(b.pairs) == 4 for b in drawn)
    assert all(len({p.qid for p in b.pairs}) == 4 for b in drawn)


@pytest.mark.parametrize("schedule", ["random", "quota"])
def test_exposure_is_what_was_drawn_on_both_sides(schedule: str) -> None:
    """The run's metrics report the sampler's counts: pairs per language pair, batches per kind, and each language's
    pair sides (query and passage) with their share."""
    sampler = BatchSampler(
        PairPool(table(AVAILABLE)), HybridSettings(0.3), batch_size=3, seed=2, schedule=schedule, total_batches=40
    )
    drawn = draw(sampler, 40)
    assert sampler.pair_counts == pair_counts(drawn)
    assert sampler.kind_counts == Counter(b.kind.value for b in drawn)
    sides = Counter(lang for b in drawn for p in b.pairs for lang in (p.query_lang, p.passage_lang))
    assert sampler.language_sides() == dict(sides)
    assert sampler.language_share() == {lang: n / sides.total() for lang, n in sides.items()}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("stop", [4, 13])  # inside the first plan; inside the second
def test_a_restored_quota_sampler_continues_the_same_stream(pool: PairPool, strategy: str, stop: int) -> None:
    first = quota(pool, STRATEGIES[strategy], 10, seed=11, batch_size=3, hard_negatives=1)
    draw(first, stop)
    saved = json.loads(json.dumps(first.state_dict()))  # as a resumable checkpoint stores it
    expected = trace(draw(first, 25))
    second = quota(pool, STRATEGIES[strategy], 10, seed=999, batch_size=3, hard_negatives=1)
    second.load_state_dict(saved)
    assert trace(draw(second, 25)) == expected
    assert second.kind_counts == first.kind_counts


def test_a_state_of_another_schedule_or_plan_is_refused_whole(pool: PairPool) -> None:
    planned = quota(pool, HybridSettings(0.3), 10)
    draw(planned, 3)
    state = planned.state_dict()
    other_plan = quota(pool, HybridSettings(0.3), 20)
    before = other_plan.state_dict()
    for target, pattern in [
        (BatchSampler(pool, HybridSettings(0.3), batch_size=1, schedule="random"), "another schedule"),
        (other_plan, "plans 10 batches"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            target.load_state_dict(state)
    assert other_plan.state_dict() == before
    with pytest.raises(ValueError, match="another schedule"):
        planned.load_state_dict(BatchSampler(pool, HybridSettings(0.3), batch_size=1, schedule="random").state_dict())


def test_a_quota_needs_the_planned_number_of_batches(pool: PairPool) -> None:
    with pytest.raises(ValueError, match="planned number of batches"):
        BatchSampler(pool, MonoSettings(), batch_size=1, schedule="quota")


# -- through the trainer: planned steps reach the sampler; exposure lands in the metrics --------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, build_workspace) -> Path:
    return build_workspace(tmp_path_factory.mktemp("ws"), tiny_checkpoint)


def test_a_quota_run_records_exact_kinds_and_its_exposure(
    workspace: Path, tmp_path: Path, spec_for, tiny_model, tiny_train
) -> None:
    train = dataclasses.replace(tiny_train, schedule="quota", max_steps=5, grad_accumulation=2)
    metrics = train_run(spec_for(workspace, tmp_path, mono_ratio=0.3), tiny_model, train)
    assert metrics["batch_kinds"] == {"mono": 3, "cross": 7}  # 0.3 of 5 steps x 2 batches
    sides = metrics["language_sides"]
    assert set(sides) == {"en", "ru", "zh"} and sum(sides.values()) == 2 * metrics["pairs_seen"]
    assert metrics["language_share"] == {lang: n / sum(sides.values()) for lang, n in sides.items()}
    # 3 mono batches over three languages, 7 cross batches over six pairs: every one of the nine pairs is covered.
    assert metrics["language_pairs_seen"] == 9


def test_an_interrupted_quota_run_resumes_to_the_same_weights(
    workspace: Path, tmp_path: Path, spec_for, weights, same_weights, interrupt_at, tiny_model, tiny_train
) -> None:
    train = dataclasses.replace(tiny_train, schedule="quota")
    straight = spec_for(workspace, tmp_path / "straight")
    expected = train_run(straight, tiny_model, train)
    resumed = spec_for(workspace, tmp_path / "resumed")
    interrupt_at(resumed, tiny_model, train, step=3)
    got = train_run(resumed, tiny_model, train)
    assert same_weights(weights(straight), weights(resumed))
    assert {k: got[k] for k in ("language_sides", "batch_kinds")} == {
        k: expected[k] for k in ("language_sides", "batch_kinds")
    }
