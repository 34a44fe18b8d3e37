"""Report tables on hand-made per-query results whose every number is computed here, in plain Python.

The fixture is unbalanced (en has 6 questions, ru 2), so the macro average of the README and a
per-query mean differ, and so do weighted and unweighted resampling.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlret.artifacts import write_table
from mlret.scoring.settings import AT_K_NAMES, PER_QUERY_COLUMNS, summarise
from mlret.params import Profile, load_params
from mlret.reporting.collect import load_results, model_names, pair_map
from mlret.reporting.report import low_resource_languages
from mlret.reporting.stats import bootstrap_interval
from mlret.reporting.tables import results_table, robustness_table

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = {"en": 6, "ru": 2}  # 8 queries per setting: 2^8 sign flips, fewer than the resamples, so tests are exact
MODELS = model_names(["mono", "hybrid"], ["balanced", "lowres"], [0, 1])


def model_frame(model: str) -> pd.DataFrame:
    """Per-query rows of one model: mono (X→X) and multi (X→all, two relevant answers).

    Ranks are drawn per model; the headline ``hybrid`` draws from better ranks than ``mono``.
    """
    rng = np.random.default_rng(MODELS.index(model))
    worst = {"base": 8, "mono": 5, "hybrid": 3}[model.split("/")[0]]
    rows = []
    for setting in ("mono", "multi"):
        for lang, n in QUESTIONS.items():
            for i in range(n):
                first = int(rng.integers(1, worst + 1))
                ranks = [first] if setting == "mono" else [first, first + int(rng.integers(1, 2 * worst))]
                ap = float(np.mean([k / r for k, r in enumerate(ranks, start=1)]))
                rows.append({"setting": setting, "query_lang": lang, "pool_lang": lang if setting == "mono" else "all", "qid": f"q{i}",
                             "n_relevant": len(ranks), "ranks": ranks, "ap": ap,
                             "rank_distance": ranks[-1] - ranks[0] if len(ranks) > 1 else np.nan,
                             "same_language_top10": 0.5 if setting == "multi" else np.nan,
                             **{c: float(ranks[0] <= 1) for c in AT_K_NAMES.values()}, "recall@10": float(ranks[0] <= 2)})
    return pd.DataFrame(rows)[PER_QUERY_COLUMNS]


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("eval")
    out = {model: model_frame(model) for model in MODELS}
    for model, frame in out.items():
        write_table(root / model / "tiny" / "per_query.parquet", frame)
    return root, out


@pytest.fixture(scope="module")
def table(frames) -> pd.DataFrame:
    root, _ = frames
    return results_table(load_results(root, MODELS, ["tiny"]), headline="hybrid")


def macro(frame: pd.DataFrame, column: str) -> float:
    """Mean over queries within each (query, pool) language pair, then over pairs."""
    by_pair: dict[tuple[str, str], list[float]] = {}
    for lang, pool, value in zip(frame.query_lang, frame.pool_lang, frame[column]):
        by_pair.setdefault((lang, pool), []).append(value)
    return sum(sum(v) / len(v) for v in by_pair.values()) / len(by_pair)


def seed_mean(frames: dict[str, pd.DataFrame], strategy: str, profile: str, setting: str) -> pd.DataFrame:
    """Per query, the value averaged over seeds 0 and 1, in a fixed row order."""
    parts = [frames[f"{strategy}/{profile}/{seed}"] for seed in (0, 1)]
    parts = [p[p.setting == setting].reset_index(drop=True) for p in parts]
    return parts[0][["query_lang", "pool_lang", "qid"]].assign(ap=(parts[0].ap + parts[1].ap) / 2)


def test_row_weights_make_the_weighted_mean_the_macro_average(frames) -> None:
    root, _ = frames
    results = load_results(root, ["base"], ["tiny"])
    # two pairs per setting: an en row weighs 1 / (2 × 6), an ru row 1 / (2 × 2)
    assert results.groupby("query_lang").weight.agg(set).to_dict() == {"en": {1 / 12}, "ru": {1 / 4}}
    assert results.groupby("setting").weight.sum().to_dict() == pytest.approx({"mono": 1.0, "multi": 1.0})


def test_point_estimates_equal_the_evaluate_stage_summary(frames, table) -> None:
    """The report's mean over seeds of each seed's setting average, which is `summarise`'s number."""
    _, by_model = frames
    for row in table.itertuples():
        models = ["base"] if row.strategy == "base" else [f"{row.strategy}/{row.profile}/{s}" for s in (0, 1)]
        per_seed = [macro(by_model[m][by_model[m].setting == row.setting], "ap") for m in models]
        assert row.map == pytest.approx(np.mean(per_seed), abs=1e-12)
        assert [summarise(by_model[m], 0)[row.setting]["map"] for m in models] == pytest.approx(per_seed, abs=1e-12)
        if len(models) == 2:
            assert row.map_seed_sd == pytest.approx(statistics.stdev(per_seed), abs=1e-12) and row.map_seed_sd > 0
        else:
            assert np.isnan(row.map_seed_sd)
        if row.setting == "multi":
            distances = [macro(by_model[m][by_model[m].setting == "multi"], "rank_distance") for m in models]
            assert row.rank_distance == pytest.approx(np.mean(distances), abs=1e-12)
    micro = np.mean([by_model[f"hybrid/balanced/{s}"].query("setting == 'mono'").ap.mean() for s in (0, 1)])
    hybrid = table[(table.strategy == "hybrid") & (table.profile == "balanced") & (table.setting == "mono")]["map"].item()
    assert abs(hybrid - micro) > 1e-3  # the fixture tells the macro average from the per-query mean


def test_bootstrap_interval_resamples_seed_averaged_queries_with_their_weights(frames, table) -> None:
    _, by_model = frames
    q = seed_mean(by_model, "mono", "lowres", "mono")
    weights = np.where(q.query_lang == "en", 1 / 12, 1 / 4)
    row = table[(table.strategy == "mono") & (table.profile == "lowres") & (table.setting == "mono")].iloc[0]
    assert (row.map_ci_low, row.map_ci_high) == bootstrap_interval(q.ap.to_numpy(), weights)
    assert (row.map_ci_low, row.map_ci_high) != bootstrap_interval(q.ap.to_numpy(), np.ones(len(q)))


def test_paired_tests_are_exact_and_holm_adjusted_over_the_whole_report(frames, table, exact_sign_flip_pvalue, holm_by_hand) -> None:
    _, by_model = frames
    tested = table[table.p_vs_headline.notna()]
    assert len(tested) == 4 and set(tested.strategy) == {"mono"}  # 2 profiles × 2 settings; base and hybrid untested
    raw = []
    for row in tested.itertuples():
        a, b = seed_mean(by_model, "hybrid", row.profile, row.setting), seed_mean(by_model, "mono", row.profile, row.setting)
        weights = np.where(a.query_lang == "en", 1 / 12, 1 / 4)
        raw.append(exact_sign_flip_pvalue(a.ap.to_numpy(), b.ap.to_numpy(), weights))
        assert row.p_vs_headline == pytest.approx(raw[-1], abs=1e-12)
        assert row.delta_vs_headline == pytest.approx(np.sum((a.ap - b.ap) * weights), abs=1e-12)
    assert tested.p_vs_headline_holm.tolist() == pytest.approx(holm_by_hand(raw), abs=1e-12)
    # Four distinct p-values (3/64 to 17/64); Holm multiplies the three smallest by 4, 3 and 2 and raises them.
    assert sorted(raw) == [3 / 64, 4 / 64, 7 / 64, 17 / 64] and sorted(holm_by_hand(raw)) == [12 / 64, 12 / 64, 14 / 64, 17 / 64]
    assert table[table.p_vs_headline.isna()].p_vs_headline_holm.isna().all()


def test_robustness_separates_pairs_with_one_low_resource_side_and_keeps_the_sign() -> None:
    """zh is low-resource in ``lowres``. Per pair, lowres mAP minus balanced mAP:

    with zh on one side or both: en→zh, zh→en, ru→zh, zh→ru −0.2 each, zh→zh −0.3, zh→all −0.1: mean −0.2;
    without zh: en→ru, ru→en, en→en, ru→ru +0.1 each, en→all, ru→all 0: mean +1/15.
    """
    langs = ["en", "ru", "zh"]
    pairs = [("mono" if x == y else "cross", x, y) for x in langs for y in langs] + [("multi", x, "all") for x in langs]

    def ap(profile: str, x: str, y: str) -> float:
        if profile == "balanced":
            return 0.5
        if "zh" not in (x, y):
            return 0.5 if y == "all" else 0.6
        return {("zh", "zh"): 0.2, ("zh", "all"): 0.4}.get((x, y), 0.3)

    rows = []
    for profile in ("balanced", "lowres"):
        for setting, x, y in pairs:
            spread = 0.1 if (x, y) == ("en", "ru") else 0.0  # two queries around the pair's mean
            for i, value in enumerate((ap(profile, x, y) - spread, ap(profile, x, y) + spread)):
                rows.append({"dataset": "tiny", "strategy": "hybrid", "profile": profile, "seed": 0, "setting": setting,
                             "query_lang": x, "pool_lang": y, "qid": f"q{i}", "ap": value})
    rows += [{**r, "strategy": "base", "profile": "-", "ap": 0.0} for r in rows[:4]]  # the base model is no strategy
    robustness = robustness_table(pd.DataFrame(rows), {"balanced": set(), "lowres": {"zh"}})
    got = robustness.set_index("pairs")
    assert robustness.strategy.tolist() == ["hybrid", "hybrid"] and robustness.profile.tolist() == ["lowres", "lowres"]
    assert got.loc["with low-resource language", "n_pairs"] == 6 and got.loc["high-resource only", "n_pairs"] == 6
    assert got.loc["with low-resource language", "delta_map"] == pytest.approx(-0.2)
    assert got.loc["high-resource only", "delta_map"] == pytest.approx(0.4 / 6)


def test_low_resource_languages_follow_each_profile_fraction() -> None:
    params = load_params(REPO / "params.yaml")
    params = params.__class__(**{**params.__dict__, "profiles": {
        "balanced": Profile("balanced", 1.0),
        "lowres": Profile("lowres", 1.0, {"zh": 0.1, "ru": 1.0}),
        "scarce": Profile("scarce", 0.2, {"en": 1.0}),  # every language but en is low-resource
    }})
    assert low_resource_languages(params, ["en", "ru", "zh", "en"]) == {"balanced": set(), "lowres": {"zh"}, "scarce": {"ru", "zh"}}


def test_pair_map_averages_every_query_and_seed_of_a_pair() -> None:
    """en→ru: 0.2 and 0.6 (seed 0), 0.7 (seed 1): mean 0.5, not the median 0.6 nor a mean of seed means 0.55."""
    rows = pd.DataFrame({
        "setting": ["cross"] * 4 + ["mono"],
        "seed": [0, 0, 1, 0, 0],
        "query_lang": ["en", "en", "en", "ru", "en"],
        "pool_lang": ["ru", "ru", "ru", "en", "en"],
        "ap": [0.2, 0.6, 0.7, 0.9, 0.3],
    })
    assert pair_map(rows).to_dict() == pytest.approx({("en", "en"): 0.3, ("en", "ru"): 0.5, ("ru", "en"): 0.9})
    by_setting = pair_map(rows, by=["setting"])
    assert by_setting[("cross", "en", "ru")] == pytest.approx(0.5) and ("mono", "en", "en") in by_setting.index
    matrix = pair_map(rows).unstack("pool_lang")  # the heatmap's X×Y layout: rows query language, columns pool language
    assert matrix.loc["ru", "en"] == pytest.approx(0.9) and np.isnan(matrix.loc["ru", "ru"])
