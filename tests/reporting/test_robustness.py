"""The study's answer on hand-made results: which rows a reduced language owns, its drop, the contrast and its interval."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from mlret.errors import MlretError

from mlret.reporting.robustness import Cell, ladder_cells, own_rows, robustness_table

LANGS = ["en", "ru", "zh"]
QIDS = ["q1", "q2"]
ARTICLES = {"ds": {"q1": 1, "q2": 1}}  # one article: resampling articles leaves no question variance
LOW = {"balanced": set(), "p": {"ru", "zh"}}
FRACTIONS = {"balanced": dict.fromkeys(LANGS, 1.0), "p": {"en": 1.0, "ru": 0.25, "zh": 0.0}}


def rows_of(value) -> list[dict]:
    """Every (setting, query lang, pool lang, qid) row of one model, its AP given by ``value(setting, q, p)``."""
    pairs = [("mono", l, l) for l in LANGS] + [("cross", a, b) for a, b in itertools.permutations(LANGS, 2)] + [("multi", l, "all") for l in LANGS]
    return [{"setting": s, "query_lang": q, "pool_lang": p, "qid": qid, "ap": value(s, q, p)} for s, q, p in pairs for qid in QIDS]


def model(strategy: str, profile: str, seed: int, value) -> pd.DataFrame:
    return pd.DataFrame(rows_of(value)).assign(dataset="ds", strategy=strategy, profile=profile, seed=seed)


def multi_reduced(setting: str, q: str, p: str) -> float:
    """multi under profile p: zh's own rows at 0.5 (mono), 0.4 (cross with en), 0.1 (multi); rows zh shares with ru at 0."""
    if "zh" not in (q, p):
        return 0.9
    if "ru" in (q, p):
        return 0.0  # not zh's own: ru is reduced too
    return {"mono": 0.5, "cross": 0.4, "multi": 0.1}[setting]


@pytest.fixture
def results() -> pd.DataFrame:
    return pd.concat([
        model("multi", "balanced", 0, lambda *_: 0.8),
        model("multi", "balanced", 1, lambda *_: 0.6),
        model("multi", "p", 0, multi_reduced),
        model("hybrid", "balanced", 0, lambda *_: 0.7),
        model("hybrid", "balanced", 1, lambda *_: 0.7),
        model("hybrid", "p", 0, lambda *_: 0.6),
        model("base", "-", -1, lambda *_: 0.1),
    ], ignore_index=True)


def test_cells_and_own_rows_leave_out_pairs_with_another_reduced_language(results: pd.DataFrame) -> None:
    cells = ladder_cells(LOW, FRACTIONS, set(LANGS))
    assert cells == [Cell("p", "ru", 0.25, frozenset({"en"})), Cell("p", "zh", 0.0, frozenset({"en"}))]
    one = results[(results.strategy == "multi") & (results.profile == "p")]
    own = own_rows(one, cells[1], "all")
    assert sorted(set(zip(own.setting, own.query_lang, own.pool_lang))) == [
        ("cross", "en", "zh"), ("cross", "zh", "en"), ("mono", "zh", "zh"), ("multi", "zh", "all")]
    # settings weigh a third each, pairs equally within a setting, queries equally within a pair
    assert own.w.sum() == pytest.approx(1.0)
    assert own.groupby("setting").w.sum().tolist() == pytest.approx([1 / 3] * 3)
    assert own[own.setting == "cross"].w.tolist() == pytest.approx([1 / 12] * 4)


def test_drops_and_the_contrast_equal_the_hand_computed_values(results: pd.DataFrame) -> None:
    table = robustness_table(results, LOW, FRACTIONS, headline="hybrid", resamples=4000)
    zh = table[table.severity == 0.0].set_index(["kind", "strategy", "scope"])
    # multi: balanced mean 0.7; under p, zh's own rows score 0.5 / 0.4 / 0.1 by setting
    assert zh.loc[("drop", "multi", "mono")].drop_map == pytest.approx(0.2)
    assert zh.loc[("drop", "multi", "cross")].drop_map == pytest.approx(0.3)
    assert zh.loc[("drop", "multi", "multi")].drop_map == pytest.approx(0.6)
    assert zh.loc[("drop", "multi", "all")].drop_map == pytest.approx(0.7 - (0.5 + 0.4 + 0.1) / 3)
    assert zh.loc[("drop", "hybrid", "all")].drop_map == pytest.approx(0.1)
    contrast = zh.loc[("contrast", "hybrid − multi", "all")]
    assert contrast.drop_map == pytest.approx(0.1 - (0.7 - 1 / 3))
    # Every question scores alike, so only the balanced seeds vary: multi's reference is 0.8, 0.7 or 0.6
    # with probabilities 1/4, 1/2, 1/4, and the 95 % interval spans the two extremes; hybrid's seeds agree.
    multi = zh.loc[("drop", "multi", "all")]
    assert (multi.ci_low, multi.ci_high) == pytest.approx((0.6 - 1 / 3, 0.8 - 1 / 3))
    hybrid = zh.loc[("drop", "hybrid", "all")]
    assert (hybrid.ci_low, hybrid.ci_high) == pytest.approx((0.1, 0.1))
    assert (contrast.ci_low, contrast.ci_high) == pytest.approx((0.1 - (0.8 - 1 / 3), 0.1 - (0.6 - 1 / 3)))
    assert contrast.reference_seeds == 2 and contrast.cells == 1


def test_question_variance_enters_and_articles_pool_questions(results: pd.DataFrame) -> None:
    """q1 loses everything under p, q2 nothing: resampling the two questions spreads hybrid's drop; one article does not."""
    hybrid_p = (results.strategy == "hybrid") & (results.profile == "p")
    varied = results.copy()
    varied.loc[hybrid_p, "ap"] = varied.loc[hybrid_p].qid.map({"q1": 0.0, "q2": 0.7})
    by_question = robustness_table(varied, LOW, FRACTIONS, headline="hybrid", resamples=4000)
    row = by_question[(by_question.kind == "drop") & (by_question.strategy == "hybrid") & (by_question.scope == "all") & (by_question.severity == 0.0)].iloc[0]
    assert row.drop_map == pytest.approx(0.35)
    assert (row.ci_low, row.ci_high) == pytest.approx((0.0, 0.7))  # both draws of q2, both of q1
    by_article = robustness_table(varied, LOW, FRACTIONS, headline="hybrid", units="article", articles=ARTICLES, resamples=4000)
    row = by_article[(by_article.kind == "drop") & (by_article.strategy == "hybrid") & (by_article.scope == "all") & (by_article.severity == 0.0)].iloc[0]
    assert (row.drop_map, row.ci_low, row.ci_high) == pytest.approx((0.35, 0.35, 0.35))


def test_several_cells_at_a_severity_are_averaged_and_resampled(results: pd.DataFrame) -> None:
    """Two profiles put zh at 0: the drop is the mean over cells, and the cell level spans their two values."""
    second = results[results.profile == "p"].assign(profile="p2")
    second.loc[second.strategy == "hybrid", "ap"] = 0.3  # hybrid drops 0.4 here, 0.1 under p
    low = {**LOW, "p2": {"zh"}}
    fractions = {**FRACTIONS, "p2": {"en": 1.0, "ru": 1.0, "zh": 0.0}}
    table = robustness_table(pd.concat([results, second], ignore_index=True), low, fractions, headline="hybrid", resamples=4000)
    row = table[(table.kind == "drop") & (table.strategy == "hybrid") & (table.scope == "mono") & (table.severity == 0.0)].iloc[0]
    assert row.cells == 2 and row.drop_map == pytest.approx((0.1 + 0.4) / 2)
    assert (row.ci_low, row.ci_high) == pytest.approx((0.1, 0.4))


def test_a_reference_run_missing_rows_is_an_error_not_a_silent_skip(results: pd.DataFrame) -> None:
    gap = (results.strategy == "multi") & (results.profile == "balanced") & (results.seed == 1) & (results.query_lang == "zh")
    with pytest.raises(MlretError, match=r"^multi/balanced/1: no score for \d+ of zh's rows"):
        robustness_table(results[~gap], LOW, FRACTIONS, headline="hybrid", resamples=100)
