"""Report tables on hand-made per-query results whose every number is computed here, in plain Python.

The fixture is unbalanced (en has 6 questions, ru 2), so the macro average of the README and a
per-query mean differ, and so do weighted and unweighted resampling.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlret.artifacts import write_table
from mlret.params import Profile, TrainingRun, load_params
from mlret.reporting.collect import load_results, model_names, pair_map
from mlret.reporting.report import low_resource_languages
from mlret.reporting.stats import PERMUTATION_RESAMPLES, cluster_bootstrap_interval
from mlret.reporting.tables import results_markdown, results_table
from mlret.scoring.settings import AT_K_NAMES, PER_QUERY_COLUMNS, summarise

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = {
    "en": 6,
    "ru": 2,
}  # 6 questions (q0, q1 asked in both languages): 2^6 sign flips, fewer than the resamples, so tests are exact
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
                rows.append(
                    {
                        "setting": setting,
                        "query_lang": lang,
                        "pool_lang": lang if setting == "mono" else "all",
                        "qid": f"q{i}",
                        "n_relevant": len(ranks),
                        "ranks": ranks,
                        "ap": ap,
                        "rank_distance": ranks[-1] - ranks[0] if len(ranks) > 1 else np.nan,
                        "same_language_top10": 0.5 if setting == "multi" else np.nan,
                        **{c: float(ranks[0] <= 1) for c in AT_K_NAMES.values()},
                        "recall@10": float(ranks[0] <= 2),
                    }
                )
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
    hybrid = table[(table.strategy == "hybrid") & (table.profile == "balanced") & (table.setting == "mono")][
        "map"
    ].item()
    assert abs(hybrid - micro) > 1e-3  # the fixture tells the macro average from the per-query mean


def per_question(qids: pd.Series, values: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over the rows of each question, in plain Python."""
    sums: dict[str, float] = {}
    for qid, value in zip(qids, values):
        sums[qid] = sums.get(qid, 0.0) + value
    return np.array(list(sums.values()))


def test_bootstrap_interval_resamples_seed_averaged_questions_with_their_weights(frames, table) -> None:
    _, by_model = frames
    q = seed_mean(by_model, "mono", "lowres", "mono")
    weights = np.where(q.query_lang == "en", 1 / 12, 1 / 4)
    row = table[(table.strategy == "mono") & (table.profile == "lowres") & (table.setting == "mono")].iloc[0]
    assert (row.map_ci_low, row.map_ci_high) == cluster_bootstrap_interval(q.ap.to_numpy(), weights, q.qid.to_numpy())
    assert (row.map_ci_low, row.map_ci_high) != cluster_bootstrap_interval(
        q.ap.to_numpy(), np.ones(len(q)), q.qid.to_numpy()
    )
    assert (row.map_ci_low, row.map_ci_high) != cluster_bootstrap_interval(q.ap.to_numpy(), weights, np.arange(len(q)))


def test_paired_tests_are_exact_and_holm_adjusted_over_the_whole_report(
    frames, table, exact_sign_flip_pvalue, holm_by_hand
) -> None:
    """The sign-flip test on per-question weighted sums of differences, all 2^6 flips enumerated here."""
    _, by_model = frames
    tested = table[table.p_vs_headline.notna()]
    assert len(tested) == 4 and set(tested.strategy) == {"mono"}  # 2 profiles × 2 settings; base and hybrid untested
    raw = []
    for row in tested.itertuples():
        a, b = (
            seed_mean(by_model, "hybrid", row.profile, row.setting),
            seed_mean(by_model, "mono", row.profile, row.setting),
        )
        weights = np.where(a.query_lang == "en", 1 / 12, 1 / 4)
        by_question = per_question(a.qid, (a.ap - b.ap).to_numpy() * weights)
        assert len(by_question) == 6
        raw.append(exact_sign_flip_pvalue(by_question, np.zeros(6), np.ones(6)))
        assert row.p_vs_headline == pytest.approx(raw[-1], abs=1e-12)
        assert row.delta_vs_headline == pytest.approx(np.sum((a.ap - b.ap) * weights), abs=1e-12)
    assert tested.p_vs_headline_holm.tolist() == pytest.approx(holm_by_hand(raw), abs=1e-12)
    # Four p-values (4/64 to 22/64; two equal); Holm multiplies the three smallest by 4, 3 and 2 and raises them.
    assert sorted(raw) == [4 / 64, 6 / 64, 6 / 64, 22 / 64] and sorted(holm_by_hand(raw)) == [
        16 / 64,
        18 / 64,
        18 / 64,
        22 / 64,
    ]
    assert table[table.p_vs_headline.isna()].p_vs_headline_holm.isna().all()


LANGS = ["en", "de", "ru"]


def cross_rows(strategy: str, value_of: dict[str, float], seed: int = 0) -> list[dict[str, object]]:
    """Cross-setting rows of one run: every question in every ordered pair of distinct languages (6
    pairs, so every row weighs 1 / (6 × questions)), each metric equal to the question's value."""
    return [
        {
            "dataset": "tiny",
            "setting": "cross",
            "strategy": strategy,
            "profile": "balanced",
            "seed": seed,
            "query_lang": x,
            "pool_lang": y,
            "qid": qid,
            "ap": v,
            "recall@10": v,
            "ndcg@10": v,
        }
        for x in LANGS
        for y in LANGS
        if x != y
        for qid, v in value_of.items()
    ]


def test_the_interval_draws_the_language_rows_of_a_question_together() -> None:
    """Three questions, each asked in 6 language pairs (18 rows of equal weight): q1 scores 1 in every
    pair, q2 and q3 score 0, so the mean is 1/3.

    Drawing 3 questions with replacement, the mean is (copies of q1) / 3: 0, 1/3, 2/3 or 1 with
    probabilities 8/27, 12/27, 6/27, 1/27, so the 2.5th percentile is 0 and the 97.5th is 1 (the CDF
    reaches only 26/27 < 0.975 at 2/3). Drawn one by one, the 18 rows would look like 18 independent
    values, 6 of them ones: an interval of about [0.1, 0.6], strictly inside [0, 1].
    """
    value_of = {"q1": 1.0, "q2": 0.0, "q3": 0.0}
    replicates = [np.mean([value_of[q] for q in draw]) for draw in itertools.product(value_of, repeat=3)]
    low, high = np.quantile(replicates, [0.025, 0.975], method="inverted_cdf")
    assert (low, high) == (0.0, 1.0)
    row = results_table(pd.DataFrame(cross_rows("mono", value_of)), headline="hybrid").iloc[0]
    for name in ("map", "recall@10", "ndcg@10"):
        assert row[name] == pytest.approx(1 / 3)
        assert (row[f"{name}_ci_low"], row[f"{name}_ci_high"]) == pytest.approx((low, high), abs=1e-12)
    rows_low, rows_high = cluster_bootstrap_interval(np.repeat([1.0, 0.0, 0.0], 6), np.ones(18), np.arange(18))
    assert 0 < rows_low < rows_high < 1


def test_the_paired_test_flips_whole_questions() -> None:
    """hybrid beats mono on every row of three questions (by 0.4, 0.2 and 0.1, in all 6 language pairs).

    Flipping whole questions, all 2^3 = 8 sign patterns are enumerated and only the two with equal
    signs reach |0.4 + 0.2 + 0.1|: p = 2/8. Flipping the 18 rows one by one would give 2/2^18, or
    the Monte Carlo floor 1/20,001. It is the table's only test, so Holm leaves it as it is.
    """
    differences = [0.4, 0.2, 0.1]
    flips = [abs(sum(s * d for s, d in zip(signs, differences))) for signs in itertools.product((1, -1), repeat=3)]
    exact = sum(f >= sum(differences) - 1e-12 for f in flips) / len(flips)
    assert exact == 0.25
    rows = cross_rows("mono", {"q1": 0.5, "q2": 0.5, "q3": 0.5}) + cross_rows(
        "hybrid", {"q1": 0.9, "q2": 0.7, "q3": 0.6}
    )
    table = results_table(pd.DataFrame(rows), headline="hybrid").set_index("strategy")
    assert table.at["mono", "p_vs_headline"] == exact and table.at["mono", "p_vs_headline_holm"] == exact
    assert table.at["mono", "delta_vs_headline"] == pytest.approx(sum(differences) / 3)
    assert np.isnan(table.at["hybrid", "p_vs_headline"]) and np.isnan(table.at["hybrid", "delta_vs_headline_ci_low"])


def test_a_p_value_at_the_resampling_floor_is_printed_as_a_bound() -> None:
    """hybrid beats mono on all of 20 questions: 2^20 sign patterns are too many to enumerate, and
    no random flip of the 20,000 reaches the observed sum, so p is the floor 1/20,001, below which
    the true p lies; the table says "≤" rather than an equality."""
    mono = {f"q{i}": 0.5 for i in range(20)}
    rows = cross_rows("mono", mono) + cross_rows("hybrid", {q: v + 0.01 * (1 + int(q[1:])) for q, v in mono.items()})
    table = results_table(pd.DataFrame(rows), headline="hybrid")
    assert table.set_index("strategy").at["mono", "p_vs_headline"] == 1 / (1 + PERMUTATION_RESAMPLES)
    assert "| ≤ 5e-05 |" in results_markdown(table, "hybrid")


@pytest.mark.parametrize(("spread", "interval"), [(0.0, (0.1, 0.1)), (0.1, (0.0, 0.2))])
def test_the_delta_interval_redraws_the_seeds_of_each_strategy(spread: float, interval: tuple[float, float]) -> None:
    """hybrid (one seed) scores mono's seed mean + 0.1 on every row, and questions score 0.3, 0.5, 0.8.

    With mono's two seeds identical (spread 0) the difference is 0.1 whichever questions are drawn:
    interval [0.1, 0.1]. With mono's seeds 0.1 below and above their mean, redrawing both seeds
    makes mono's mean 0.1 lower, the same or 0.1 higher on every row (probabilities 1/4, 1/2, 1/4),
    so the difference is 0.2, 0.1 or 0 whatever questions are drawn: the 95% interval is [0, 0.2].
    Seed 1 lists its rows in reverse order: seeds are matched by (languages, qid), not by position.
    """
    mean = {"q1": 0.3, "q2": 0.5, "q3": 0.8}
    rows = (
        cross_rows("hybrid", {q: v + 0.1 for q, v in mean.items()})
        + cross_rows("mono", {q: v - spread for q, v in mean.items()}, seed=0)
        + cross_rows("mono", {q: v + spread for q, v in mean.items()}, seed=1)[::-1]
    )
    table = results_table(pd.DataFrame(rows), headline="hybrid")
    mono = table.set_index("strategy").loc["mono"]
    assert mono.seeds == 2 and mono.delta_vs_headline == pytest.approx(0.1)
    assert (mono.delta_vs_headline_ci_low, mono.delta_vs_headline_ci_high) == pytest.approx(interval, abs=1e-12)
    # the Markdown Δ cell carries the interval; p = 2/8 (every question favours hybrid)
    assert f"| +0.100 [{interval[0]:+.3f}, {interval[1]:+.3f}] | 0.25 |" in results_markdown(table, "hybrid")


def test_low_resource_languages_follow_each_profile_fraction() -> None:
    params = load_params(REPO / "params.yaml")
    params = params.__class__(
        **{
            **params.__dict__,
            "profiles": {
                "balanced": Profile("balanced", 1.0),
                "lowres": Profile("lowres", 1.0, {"zh": 0.1, "ru": 1.0}),
                "scarce": Profile("scarce", 0.2, {"en": 1.0}),  # every language but en is low-resource
                "untrained": Profile("untrained", 1.0, {"ru": 0.0}),  # no run: no cell
            },
            "runs": [TrainingRun("e5", "hybrid", p, 0) for p in ("balanced", "lowres", "scarce")],
        }
    )
    assert low_resource_languages(params, ["en", "ru", "zh", "en"]) == {
        "balanced": set(),
        "lowres": {"zh"},
        "scarce": {"ru", "zh"},
    }


def test_pair_map_averages_every_query_and_seed_of_a_pair() -> None:
    """en→ru: 0.2 and 0.6 (seed 0), 0.7 (seed 1): mean 0.5, not the median 0.6 nor a mean of seed means 0.55."""
    rows = pd.DataFrame(
        {
            "setting": ["cross"] * 4 + ["mono"],
            "seed": [0, 0, 1, 0, 0],
            "query_lang": ["en", "en", "en", "ru", "en"],
            "pool_lang": ["ru", "ru", "ru", "en", "en"],
            "ap": [0.2, 0.6, 0.7, 0.9, 0.3],
        }
    )
    assert pair_map(rows).to_dict() == pytest.approx({("en", "en"): 0.3, ("en", "ru"): 0.5, ("ru", "en"): 0.9})
    by_setting = pair_map(rows, by=["setting"])
    assert by_setting[("cross", "en", "ru")] == pytest.approx(0.5) and ("mono", "en", "en") in by_setting.index
    matrix = pair_map(rows).unstack("pool_lang")  # the heatmap's X×Y layout: rows query language, columns pool language
    assert matrix.loc["ru", "en"] == pytest.approx(0.9) and np.isnan(matrix.loc["ru", "ru"])
