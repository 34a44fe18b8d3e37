"""The study's answer on hand-made results: matching rows, raw / full / specific drops, the contrast, its interval,
Holm."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlret.errors import MlretError
from mlret.reporting.drops import Pairs, row_weights
from mlret.reporting.robustness import COLUMNS, SCOPES, Cell, headline_contrasts, ladder_cells
from mlret.reporting.robustness import robustness_tables as _robustness_tables
from mlret.reporting.stats import CLUSTER_RESAMPLES


def robustness_table(
    results: pd.DataFrame,
    low_resource: dict[str, set[str]],
    fractions: dict[str, dict[str, float]],
    headline: str,
    units: str = "question",
    articles: dict[str, dict[str, object]] | None = None,
    resamples: int = CLUSTER_RESAMPLES,
    scopes: tuple[str, ...] = SCOPES,
) -> pd.DataFrame:
    """The table of one resampling unit."""
    return _robustness_tables(results, low_resource, fractions, headline, articles, (units,), resamples, scopes)[units]


LANGS = ["de", "en", "ru", "zh"]
QIDS = ["q1", "q2", "q3"]
ARTICLES = {"ds": dict.fromkeys(QIDS, 1)}  # one article: resampling articles leaves no question variance
LOW = {"balanced": set(), "p": {"ru", "zh"}}
FRACTIONS = {"balanced": dict.fromkeys(LANGS, 1.0), "p": {"de": 1.0, "en": 1.0, "ru": 0.25, "zh": 0.0}}
ZH = Cell("p", "zh", 0.0, frozenset({"de", "en"}))


def rows_of(value) -> list[dict]:
    """Every (setting, query, pool, qid) row of one run, AP ``value(setting, q, p, qid)``; de's pairs lack q3
    (unequal pairs)."""
    pairs = (
        [("mono", lang, lang) for lang in LANGS]
        + [("cross", a, b) for a, b in itertools.permutations(LANGS, 2)]
        + [("multi", lang, "all") for lang in LANGS]
    )
    return [
        {"setting": s, "query_lang": q, "pool_lang": p, "qid": qid, "ap": value(s, q, p, qid)}
        for s, q, p in pairs
        for qid in QIDS
        if not (qid == "q3" and "de" in (q, p))
    ]


def run(strategy: str, profile: str, seed: int, value) -> pd.DataFrame:
    return pd.DataFrame(rows_of(value)).assign(dataset="ds", strategy=strategy, profile=profile, seed=seed)


def multi_under_p(setting: str, q: str, p: str, qid: str) -> float:
    """multi under profile p: zh's rows and the full-data languages' rows each score differently, macro ≠ micro."""
    if "ru" in (q, p):
        return 0.0  # rows with the other reduced language enter no zh cell
    if "zh" in (q, p):
        if setting == "mono":
            return 0.2 if qid == "q3" else 0.5  # zh→zh: 0.4
        if setting == "cross":
            return 0.4 if "en" in (q, p) else 0.1  # en↔zh 0.4 (3 questions), de↔zh 0.1 (2): macro 0.25, micro 0.28
        return 0.2
    return {
        ("mono", "en"): 0.6,
        ("mono", "de"): 0.5,
        ("cross", "en"): 0.3,
        ("cross", "de"): 0.5,
        ("multi", "en"): 0.6,
        ("multi", "de"): 0.4,
    }[setting, q]  # multi: en 3 questions at 0.6, de 2 at 0.4: macro 0.5


@pytest.fixture
def results() -> pd.DataFrame:
    return pd.concat(
        [
            run("multi", "balanced", 0, lambda *_: 0.8),
            run("multi", "balanced", 1, lambda *_: 0.6),
            run("multi", "p", 0, multi_under_p),
            run("hybrid", "balanced", 0, lambda *_: 0.7),
            run("hybrid", "balanced", 1, lambda *_: 0.7),
            run("hybrid", "p", 0, lambda s, q, p, qid: 0.55 if "zh" in (q, p) else 0.6),
            run("base", "-", -1, lambda *_: 0.1),
        ],
        ignore_index=True,
    )


def matching_rows(rows: pd.DataFrame, cell: Cell, scope: str, side: str) -> pd.DataFrame:
    """The rows of one run that enter m_L (``side="reduced"``) or m_F (``"full"``), each with its macro weight ``w``."""
    pairs, pair = Pairs.of(rows)
    weight = row_weights(pairs, pair, cell, scope)[side]
    return rows[weight > 0].assign(w=weight[weight > 0])


def pick(table: pd.DataFrame, severity: float, kind: str, strategy: str, scope: str) -> pd.Series:
    found = table[
        (table.severity == severity) & (table.kind == kind) & (table.strategy == strategy) & (table.scope == scope)
    ]
    assert len(found) == 1
    return found.iloc[0]


def test_cells_and_the_rows_each_side_of_a_cell_compares(results: pd.DataFrame) -> None:
    cells = ladder_cells(LOW, FRACTIONS, set(LANGS))
    assert cells == [Cell("p", "ru", 0.25, frozenset({"de", "en"})), ZH]
    one = results[(results.strategy == "multi") & (results.profile == "p")]
    reduced = matching_rows(one, ZH, "all", "reduced")
    assert sorted(set(zip(reduced.setting, reduced.query_lang, reduced.pool_lang))) == [
        ("cross", "de", "zh"),
        ("cross", "en", "zh"),
        ("cross", "zh", "de"),
        ("cross", "zh", "en"),
        ("mono", "zh", "zh"),
        ("multi", "zh", "all"),
    ]
    full = matching_rows(one, ZH, "all", "full")
    assert sorted(set(zip(full.setting, full.query_lang, full.pool_lang))) == [
        ("cross", "de", "en"),
        ("cross", "en", "de"),
        ("mono", "de", "de"),
        ("mono", "en", "en"),
        ("multi", "de", "all"),
        ("multi", "en", "all"),
    ]
    # settings weigh a third each, pairs equally within a setting, queries equally within a pair
    for side in (reduced, full):
        assert side.w.sum() == pytest.approx(1.0)
        assert side.groupby("setting").w.sum().tolist() == pytest.approx([1 / 3] * 3)
    cross = reduced[reduced.setting == "cross"]
    assert cross[cross.query_lang == "en"].w.tolist() == pytest.approx([1 / 36] * 3)
    assert cross[cross.query_lang == "de"].w.tolist() == pytest.approx([1 / 24] * 2)


def test_raw_full_and_specific_drops_equal_the_hand_computed_values(results: pd.DataFrame) -> None:
    table = robustness_table(results, LOW, FRACTIONS, headline="hybrid", resamples=500)
    assert table.columns.tolist() == COLUMNS
    # multi at (p, zh): balanced mean 0.7 everywhere; under p m_L / m_F are, by setting,
    # mono 0.4 / (0.6 + 0.5) / 2, cross (0.4 + 0.4 + 0.1 + 0.1) / 4 / (0.3 + 0.5) / 2, multi 0.2 / (0.6 + 0.4) / 2;
    # all: a third per setting, not a sixth per pair ((0.4 + 0.4 + 0.4 + 0.1 + 0.1 + 0.2) / 6 for zh)
    expected = {"mono": (0.7 - 0.4, 0.7 - 0.55), "cross": (0.7 - 0.25, 0.7 - 0.4), "multi": (0.7 - 0.2, 0.7 - 0.5)}
    expected["all"] = (0.7 - (0.4 + 0.25 + 0.2) / 3, 0.7 - (0.55 + 0.4 + 0.5) / 3)
    for scope, (raw, full) in expected.items():
        multi = pick(table, 0.0, "drop", "multi", scope)
        assert (multi.raw_drop, multi.full_drop, multi.specific_drop) == pytest.approx((raw, full, raw - full))
        hybrid = pick(table, 0.0, "drop", "hybrid", scope)  # 0.7 → 0.55 on zh's rows, → 0.6 on the others
        assert (hybrid.raw_drop, hybrid.full_drop, hybrid.specific_drop) == pytest.approx((0.15, 0.1, 0.05))
        contrast = pick(table, 0.0, "contrast", "hybrid − multi", scope)
        assert (contrast.raw_drop, contrast.full_drop, contrast.specific_drop) == pytest.approx(
            (0.15 - raw, 0.1 - full, 0.05 - (raw - full))
        )
        assert (
            contrast.cells == 1
            and contrast.reference_seeds == 2
            and contrast.reduced_seeds == 1
            and contrast.units == "question"
        )
        assert contrast.family == ("primary" if scope == "all" else "exploratory") and multi.family == ""


def flat(strategy: str, profile: str, seed: int, zh: float, other: float) -> pd.DataFrame:
    """A run whose every question scores ``zh`` on zh's rows and ``other`` elsewhere: only seeds vary."""
    return run(strategy, profile, seed, lambda s, q, p, qid: zh if "zh" in (q, p) else other)


def flat_runs() -> pd.DataFrame:
    """d = m_L − m_F per run at (p, zh): multi 0, 0 on balanced and −0.3 on p; hybrid 0, 0 and −0.05."""
    return pd.concat(
        [
            flat("multi", "balanced", 0, 0.8, 0.8),
            flat("multi", "balanced", 1, 0.6, 0.6),  # a whole-run shift: d agrees
            flat("multi", "p", 0, 0.3, 0.6),
            flat("hybrid", "balanced", 0, 0.7, 0.7),
            flat("hybrid", "balanced", 1, 0.7, 0.7),
            flat("hybrid", "p", 0, 0.55, 0.6),
        ],
        ignore_index=True,
    )


def test_seed_shifts_of_a_whole_run_cancel_and_a_second_seed_widens_the_interval() -> None:
    """Every question scores alike within a run's side, so only seeds vary: the standard error is computed by hand."""
    one = flat_runs()
    before = pick(
        robustness_table(one, LOW, FRACTIONS, "hybrid", resamples=200), 0.0, "contrast", "hybrid − multi", "all"
    )
    assert before.specific_drop == pytest.approx(0.05 - 0.3)
    assert before.se == pytest.approx(0.0, abs=1e-12) and before.ci_low == pytest.approx(before.ci_high)
    two = pd.concat([one, flat("multi", "p", 1, 0.1, 0.6)], ignore_index=True)  # d = −0.5 instead of −0.3
    after = pick(
        robustness_table(two, LOW, FRACTIONS, "hybrid", resamples=200), 0.0, "contrast", "hybrid − multi", "all"
    )
    assert after.specific_drop == pytest.approx(before.specific_drop + (-0.5 - -0.3) / 2)
    # ν = 3 (three groups with two seeds), Σ = (0.1² + 0.1²) / 3; the coefficients' squares sum to
    # hybrid 2·(1/2)² + 1 and multi 2·(1/2)² + 2·(1/2)²: V = 2.5 · 0.02 / 3, and one cell gives df = ν
    se = math.sqrt(2.5 * 0.02 / 3)
    assert (after.se, after.df) == pytest.approx((se, 3.0))
    assert (after.ci_low, after.ci_high) == pytest.approx(
        after.specific_drop + np.array([-1, 1]) * stats.t.ppf(0.975, 3) * se
    )
    assert after.p == pytest.approx(2 * stats.t.sf(abs(after.specific_drop) / se, 3))
    assert after.ci_high - after.ci_low > before.ci_high - before.ci_low
    assert after.reduced_seeds == 1 and after.reference_seeds == 2  # hybrid's ladder run has one seed


def test_half_width_and_detectable_contrast_computed_by_hand() -> None:
    """The contrast at (p, zh) when multi's ladder run has a second seed, every number derived here.

    d per run: multi balanced 0, 0; multi p −0.3, −0.5; hybrid balanced 0, 0; hybrid p −0.05. The
    estimate is (0 − (−0.05)) − (0 − (−0.4)) = −0.35. Only seeds vary: the three groups with two
    seeds (multi balanced, multi p, hybrid balanced) deviate by 0, ±0.1 and 0, so ν = 3 and
    Σ_run = (0.1² + 0.1²) / 3 = 0.02 / 3. The coefficients of hybrid − multi are ±1/2 on each
    balanced run, −1 on hybrid's p run and +1/2 on each of multi's: their squares sum to 2.5,
    so se = √(2.5 · 0.02 / 3) = 0.1290994 with df = ν = 3 (one cell, no question variance).
    From a t table, t(3; 0.975) = 3.182446, t(3; 1 − 0.05/4) = 4.176535 (Holm's strictest level
    over the family's two severities) and t(3; 0.80) = 0.978472:

    - half-width = 3.182446 × 0.1290994 = 0.410852;
    - mde80 = (4.176535 + 0.978472) × 0.1290994 = 0.665508.
    """
    two = pd.concat([flat_runs(), flat("multi", "p", 1, 0.1, 0.6)], ignore_index=True)
    table = robustness_table(two, LOW, FRACTIONS, "hybrid", resamples=200)
    contrast = pick(table, 0.0, "contrast", "hybrid − multi", "all")
    assert contrast.specific_drop == pytest.approx(-0.35)
    assert (contrast.se, contrast.df) == pytest.approx((0.1290994, 3.0), abs=1e-6)
    assert (contrast.ci_high - contrast.ci_low) / 2 == pytest.approx(0.410852, abs=1e-6)
    assert contrast.mde80 == pytest.approx(0.665508, abs=1e-6)
    assert headline_contrasts(table)["ds"]["severity_0"]["half_width"] == 0.4109


def test_no_replicated_run_means_no_interval_and_a_note(results: pd.DataFrame) -> None:
    single = results[results.seed <= 0]
    table = robustness_table(single, LOW, FRACTIONS, "hybrid", resamples=200)
    levels = table.kind.isin(["level", "level contrast"])
    assert table[~levels].specific_drop.notna().all() and table[levels].level.notna().all()
    assert table[["ci_low", "ci_high", "se", "df", "p", "p_holm", "mde80"]].isna().all().all()
    assert set(table.note) == {"needs ≥ 2 seeds of some run on ds"}
    # one strategy replicated: the other's drops borrow its seed variance, and say so
    borrowed = robustness_table(
        results[(results.strategy != "multi") | (results.seed <= 0)], LOW, FRACTIONS, "hybrid", resamples=200
    )
    assert pick(borrowed, 0.0, "drop", "multi", "all").note == "seed variance pooled with the other strategies' runs"
    assert pick(borrowed, 0.0, "drop", "hybrid", "all").note == ""
    assert headline_contrasts(table)["ds"]["severity_0"]["ci_low"] is None


def random_results(seed: int = 0) -> tuple[pd.DataFrame, dict, dict]:
    """Random per-query AP of two strategies on a 2 × 2 Latin square, unequal seeds and unequal pairs."""
    rng = np.random.default_rng(seed)
    langs, qids = ["de", "en", "fr", "ru", "zh"], [f"q{i}" for i in range(12)]
    low = {"balanced": set(), "p1": {"ru", "zh"}, "p2": {"ru", "zh"}}
    fractions = {
        "balanced": dict.fromkeys(langs, 1.0),
        "p1": {**dict.fromkeys(langs, 1.0), "ru": 0.0, "zh": 0.5},
        "p2": {**dict.fromkeys(langs, 1.0), "ru": 0.5, "zh": 0.0},
    }
    pairs = (
        [("mono", lang, lang) for lang in langs]
        + [("cross", a, b) for a, b in itertools.permutations(langs, 2)]
        + [("multi", lang, "all") for lang in langs]
    )
    seeds = {
        ("multi", "balanced"): 3,
        ("hybrid", "balanced"): 2,
        ("multi", "p1"): 2,
        ("hybrid", "p1"): 2,
        ("multi", "p2"): 1,
        ("hybrid", "p2"): 2,
    }
    # each strategy's questions suffer unequally from the reduction, the same in every seed
    suffers = {strategy: dict(zip(qids, rng.uniform(0, 0.6, len(qids)))) for strategy in ("hybrid", "multi")}
    frames = []
    for (strategy, profile), n in seeds.items():
        for s in range(n):
            rows = [
                (st, q, p, qid) for st, q, p in pairs for qid in qids if not (qid in ("q10", "q11") and "fr" in (q, p))
            ]
            frame = pd.DataFrame(rows, columns=["setting", "query_lang", "pool_lang", "qid"])
            hurt = (frame.query_lang.isin(["ru", "zh"]) | frame.pool_lang.isin(["ru", "zh"])) & (profile != "balanced")
            ap = rng.uniform(0, 0.4, len(frame)) - hurt * frame.qid.map(suffers[strategy])
            frames.append(frame.assign(ap=ap, dataset="ds", strategy=strategy, profile=profile, seed=s))
    return pd.concat(frames, ignore_index=True), low, fractions


def mono_contrast_from_pair_means(pairs: pd.DataFrame, low: dict, fractions: dict, headline: str) -> dict[float, float]:
    """The mono-scope specific contrast straight from the definition, on per-run pair mAPs (as reports/pairs/)."""
    mono = pairs[pairs.setting == "mono"]

    def value(strategy: str, profile: str, langs: set[str]) -> float:
        """Mean over the profile's seeds of the unweighted mean of mAP(X→X) over ``langs``."""
        runs = mono[(mono.strategy == strategy) & (mono.profile == profile) & mono.query_lang.isin(langs)]
        return float(runs.groupby("seed").map.mean().mean())

    out: dict[float, list[float]] = {}
    for profile, reduced in low.items():
        full = {lang for lang, f in fractions[profile].items() if f == 1.0}
        for lang in reduced:
            specific = {}
            for strategy in (headline, "multi"):
                raw = value(strategy, "balanced", {lang}) - value(strategy, profile, {lang})
                specific[strategy] = raw - (value(strategy, "balanced", full) - value(strategy, profile, full))
            out.setdefault(fractions[profile][lang], []).append(specific[headline] - specific["multi"])
    return {severity: float(np.mean(values)) for severity, values in out.items()}


def test_the_mono_contrast_recomputed_from_pair_means() -> None:
    results, low, fractions = random_results()
    pairs = (
        results.groupby(["strategy", "profile", "seed", "setting", "query_lang", "pool_lang"], as_index=False)
        .ap.mean()
        .rename(columns={"ap": "map"})
    )
    expected = mono_contrast_from_pair_means(pairs, low, fractions, "hybrid")
    table = robustness_table(results, low, fractions, "hybrid", resamples=200, scopes=("mono",))
    contrasts = table[table.kind == "contrast"].set_index("severity").specific_drop
    assert sorted(contrasts.index) == sorted(expected) == [0.0, 0.5]
    for severity, value in expected.items():
        assert abs(contrasts[severity] - value) < 1e-9


def test_holm_over_the_primary_family_and_the_detectable_contrast(holm_by_hand) -> None:
    results, low, fractions = random_results(1)
    table = robustness_table(results, low, fractions, "hybrid", resamples=500)
    primary = table[table.family == "primary"]
    assert len(primary) == 2 and set(primary.scope) == {"all"} and (primary.kind == "contrast").all()
    assert primary.p_holm.tolist() == pytest.approx(holm_by_hand(primary.p.tolist()))
    assert (primary.p_holm >= primary.p).all()
    ordered = primary.sort_values("p")
    assert ordered.p_holm.is_monotonic_increasing
    assert table[table.family != "primary"].p_holm.isna().all()
    assert set(table[table.kind == "contrast"].family) == {"primary", "exploratory"} and set(
        table[table.kind == "drop"].family
    ) == {""}
    assert table[table.kind == "drop"].mde80.isna().all()
    for row in table[table.kind == "contrast"].itertuples():
        assert row.ci_low < row.specific_drop < row.ci_high
    summary = headline_contrasts(table)["ds"]
    assert set(summary) == {"severity_0", "severity_0.5"}
    top = summary["severity_0"]
    row = primary[primary.severity == 0.0].iloc[0]
    assert top == {
        "estimate": round(row.specific_drop, 4),
        "ci_low": round(row.ci_low, 4),
        "ci_high": round(row.ci_high, 4),
        "half_width": round((row.ci_high - row.ci_low) / 2, 4),
        "se": round(row.se, 4),
        "p": round(row.p, 4),
        "p_holm": round(row.p_holm, 4),
        "mde80": round(row.mde80, 4),
        "raw": round(row.raw_drop, 4),
    }


def test_question_variance_enters_and_articles_pool_questions() -> None:
    results, low, fractions = random_results(2)
    by_question = robustness_table(results, low, fractions, "hybrid", resamples=500, scopes=("all",))
    one_article = {"ds": dict.fromkeys(results.qid.unique(), "a")}
    by_article = robustness_table(
        results, low, fractions, "hybrid", units="article", articles=one_article, resamples=500, scopes=("all",)
    )
    for column in ("specific_drop", "level", "reference_level"):  # each NaN in the other kinds' rows
        assert by_question[column].tolist() == pytest.approx(by_article[column].tolist(), nan_ok=True)
    assert set(by_article.units) == {"article"}
    # one article: no question variance left, only the seeds'; questions add theirs
    assert (by_question.se > by_article.se).all()
    with pytest.raises(MlretError, match=r"^ds: 1 test question\(s\) have no resampling unit"):
        robustness_table(
            results,
            low,
            fractions,
            "hybrid",
            units="article",
            articles={"ds": dict.fromkeys(results.qid.unique()[1:], "a")},
            resamples=10,
        )


def test_a_run_missing_rows_is_an_error_not_a_silent_skip(results: pd.DataFrame) -> None:
    gap = (
        (results.strategy == "multi")
        & (results.profile == "balanced")
        & (results.seed == 1)
        & (results.query_lang == "zh")
    )
    with pytest.raises(
        MlretError, match=r"^multi/balanced/1: no score for \d+ of zh's rows that the cell \(p, zh\) compares"
    ):
        robustness_table(results[~gap], LOW, FRACTIONS, headline="hybrid", resamples=100)
    gap = (
        (results.strategy == "hybrid")
        & (results.profile == "p")
        & (results.query_lang == "en")
        & (results.setting == "mono")
    )
    with pytest.raises(MlretError, match=r"^hybrid/p/0: no score for 3 of the full-data languages' rows"):
        robustness_table(results[~gap], LOW, FRACTIONS, headline="hybrid", resamples=100)
