"""Paper tables on a hand-made, unbalanced evaluation tree: every number equals the `evaluate`
stage's own summary (``summarise``, written as metrics/eval JSON) or a plain-Python hand value.

Languages have 4 (en), 3 (de) and 2 (ru) questions, so cross pairs have 2 or 3 queries and a
per-query mean differs from the macro average over pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlret.artifacts import write_table
from mlret.errors import MlretError
from mlret.reporting.collect import load_results, model_names
from mlret.reporting.paper_tables import (
    beir_table,
    holm_bold,
    main_caption,
    main_latex,
    main_markdown,
    main_table,
    metrics_table,
    pair_tables,
    per_language_table,
    write_paper_tables,
)
from mlret.reporting.tables import results_table
from mlret.scoring.settings import PER_QUERY_COLUMNS, summarise

STRATEGIES = ["mono", "hybrid"]
PROFILES = ["balanced", "lowres"]
MODELS = model_names(STRATEGIES, PROFILES, [0, 1])
DATASETS = ["ml", "xq"]  # sorted, as params' eval_sources; xq is the training source
TRAIN = "xq"
LANGS_OF = {"q0": ["en", "de", "ru"], "q1": ["en", "de", "ru"], "q2": ["en", "de"], "q3": ["en", "de"]}
QUESTIONS = {lang: [q for q, langs in LANGS_OF.items() if lang in langs] for lang in ("en", "de", "ru")}
QUESTIONS["de"] = QUESTIONS["de"][:3]  # de has q0..q2 only: en 4, de 3, ru 2


def languages_of(qid: str) -> list[str]:
    return [lang for lang, qids in QUESTIONS.items() if qid in qids]


def per_query(model: str, dataset: str) -> pd.DataFrame:
    """Rows of every setting, with ranks drawn per model; the headline ``hybrid`` draws better ranks."""
    rng = np.random.default_rng([MODELS.index(model), DATASETS.index(dataset)])
    worst = {"base": 12, "mono": 6, "hybrid": 3}[model.split("/")[0]]
    rows = []
    for x, qids in QUESTIONS.items():
        for y in [*QUESTIONS, "all"]:
            setting = "multi" if y == "all" else "mono" if x == y else "cross"
            for qid in qids:
                if y != "all" and y not in languages_of(qid):
                    continue
                n = len(languages_of(qid)) if y == "all" else 1
                ranks = sorted(int(r) for r in rng.choice(np.arange(1, 4 * worst + 1), size=n, replace=False))
                rows.append(
                    {
                        "setting": setting,
                        "query_lang": x,
                        "pool_lang": y,
                        "qid": qid,
                        "n_relevant": n,
                        "ranks": ranks,
                        "ap": float(np.mean([k / r for k, r in enumerate(ranks, start=1)])),
                        "rank_distance": float(ranks[-1] - ranks[0]) if n > 1 else np.nan,
                        "same_language_top10": float(rng.integers(0, 11)) / 10 if setting == "multi" else np.nan,
                        "mrr@10": 1 / ranks[0] if ranks[0] <= 10 else 0.0,
                        "recall@1": float(np.mean([r <= 1 for r in ranks])),
                        "recall@5": float(np.mean([r <= 5 for r in ranks])),
                        "recall@10": float(np.mean([r <= 10 for r in ranks])),
                        "recall@100": float(np.mean([r <= 30 for r in ranks])),
                        "ndcg@10": float(rng.random()),
                    }
                )
    return pd.DataFrame(rows)[PER_QUERY_COLUMNS]


BEIR = {
    "en": {"ndcg@10": 0.5, "recall@100": 0.8, "queries": 3, "documents": 9},
    "de": {"ndcg@10": 0.25, "recall@100": 0.5, "queries": 2, "documents": 7},
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, dict[str, pd.DataFrame]]]:
    """data/eval (per-query parquet) and metrics/eval (the `evaluate` stage's summaries, plus BEIR)."""
    eval_root, metrics_root = tmp_path_factory.mktemp("eval"), tmp_path_factory.mktemp("metrics")
    frames = {model: {d: per_query(model, d) for d in DATASETS} for model in MODELS}
    for i, (model, by_dataset) in enumerate(frames.items()):
        summary: dict[str, object] = {}
        for dataset, frame in by_dataset.items():
            write_table(eval_root / model / dataset / "per_query.parquet", frame)
            summary[dataset] = summarise(frame, 0)
        summary["beir-mini"] = {lang: {**v, "ndcg@10": v["ndcg@10"] + i / 100} for lang, v in BEIR.items()}
        (metrics_root / f"{model}.json").parent.mkdir(parents=True, exist_ok=True)
        (metrics_root / f"{model}.json").write_text(json.dumps(summary))
    return eval_root, metrics_root, frames


@pytest.fixture(scope="module")
def results(tree) -> pd.DataFrame:
    return load_results(tree[0], MODELS, DATASETS)


@pytest.fixture(scope="module")
def table(results) -> pd.DataFrame:
    return results_table(results, headline="hybrid")


def evaluate_number(metrics_root: Path, strategy: str, profile: str, dataset: str, setting: str, metric: str) -> float:
    """The `evaluate` stage's number for a model, averaged over its seeds (as every report row is)."""
    names = ["base"] if strategy == "base" else [f"{strategy}/{profile}/{s}" for s in (0, 1)]
    return float(
        np.mean([json.loads((metrics_root / f"{m}.json").read_text())[dataset][setting][metric] for m in names])
    )


def test_main_table_holds_the_evaluate_stage_map_and_rank_distance(tree, results, table) -> None:
    main = main_table(table, results, TRAIN, STRATEGIES, PROFILES)
    for model in main.index:
        strategy, profile = (model, "-") if model == "base" else model.split("/")
        for dataset in DATASETS:
            label = "xq (in-domain test articles)" if dataset == TRAIN else dataset
            for setting in ("mono", "cross", "multi"):
                assert main.at[model, (label, setting)] == pytest.approx(
                    evaluate_number(tree[1], strategy, profile, dataset, setting, "map"), rel=1e-12
                )
            assert main.at[model, (label, "rank dist.")] == pytest.approx(
                evaluate_number(tree[1], strategy, profile, dataset, "multi", "rank_distance"), rel=1e-12
            )


def test_results_table_rank_distance_is_the_evaluate_stage_macro_average(tree, table) -> None:
    """Some multi queries have one relevant answer (no rank distance): the rest must keep equal pair weights."""
    multi = table[table.setting == "multi"]
    for row in multi.itertuples():
        expected = evaluate_number(tree[1], row.strategy, row.profile, row.dataset, "multi", "rank_distance")
        assert row.rank_distance == pytest.approx(expected, rel=1e-12)


def test_main_table_order_base_first_training_source_first_mono_cross_multi(results, table) -> None:
    main = main_table(table, results, TRAIN, STRATEGIES, PROFILES)
    assert list(main.index) == ["base", "mono/balanced", "hybrid/balanced", "mono/lowres", "hybrid/lowres"]
    assert list(main.columns) == [
        ("xq (in-domain test articles)", "seeds"),
        ("xq (in-domain test articles)", "mono"),
        ("xq (in-domain test articles)", "cross"),
        ("xq (in-domain test articles)", "multi"),
        ("xq (in-domain test articles)", "rank dist."),
        ("ml", "seeds"),
        ("ml", "mono"),
        ("ml", "cross"),
        ("ml", "multi"),
        ("ml", "rank dist."),
    ]
    assert main[("ml", "seeds")].to_dict() == {
        "base": 1,
        "mono/balanced": 2,
        "hybrid/balanced": 2,
        "mono/lowres": 2,
        "hybrid/lowres": 2,
    }


def test_main_table_bolds_only_what_the_holm_test_separates(results, table) -> None:
    main = main_table(table, results, TRAIN, STRATEGIES, PROFILES)
    maps = [c for c in main.columns if c[1] in ("mono", "cross", "multi")]
    # Nothing separated: nothing bold, not even each column's best.
    assert not holm_bold(main, table.assign(p_vs_headline_holm=1.0), "hybrid", TRAIN).any().any()
    # Everything separated in hybrid's favour: the best mAP of a column is bold where it is hybrid's, and only there.
    separated = table.assign(p_vs_headline_holm=0.001, delta_vs_headline=0.1)
    bold = holm_bold(main, separated, "hybrid", TRAIN)
    for column in main.columns:
        best = main[column].astype(float).idxmax()
        expected = {best} if column in maps and best.startswith("hybrid/") else set()
        assert set(bold.index[bold[column]]) == expected, column
    assert bold[maps].any().any() and not bold.loc["base"].any()
    markdown = main_markdown(main, bold)
    column = next(c for c in maps if bold[c].any())
    assert f"**{main[column].max():.3f}**" in markdown
    assert markdown.splitlines()[0].startswith(
        "| model | xq (in-domain test articles) seeds | xq (in-domain test articles) mono"
    )
    latex = main_latex(main, bold, main_caption(TRAIN))
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert latex.count(rule) == 1
    assert rf"\textbf{{{main[column].max():.3f}}}" in latex
    assert (
        latex.count(r"\textbf{") == markdown.count("**") // 2 == int(bold.to_numpy().sum())
    )  # the same cells bold in both
    assert "in-domain test articles" in latex and "mAP over the full pool" not in latex and "Holm" in latex
    assert r"\multicolumn{5}{c}{xq (in-domain test articles)}" in latex
    assert latex.index("base") < latex.index("mono/balanced") < latex.index("hybrid/lowres")


def hand_pair_means(
    frames: dict[str, dict[str, pd.DataFrame]], strategy: str, profile: str, dataset: str
) -> dict[tuple[str, str], float]:
    """(query, pool) -> mean AP over the pair's queries and both seeds, in plain Python."""
    values: dict[tuple[str, str], list[float]] = {}
    for seed in (0, 1):
        frame = frames[f"{strategy}/{profile}/{seed}"][dataset]
        for x, y, ap in zip(frame.query_lang, frame.pool_lang, frame.ap):
            values.setdefault((x, y), []).append(ap)
    return {pair: sum(v) / len(v) for pair, v in values.items()}


def test_per_language_map_is_the_mean_over_the_language_pairs(tree, results) -> None:
    per_language = per_language_table(results, STRATEGIES, PROFILES)
    means = hand_pair_means(tree[2], "hybrid", "lowres", "ml")
    row = per_language[
        (per_language.dataset == "ml")
        & (per_language.setting == "cross")
        & (per_language.strategy == "hybrid")
        & (per_language.profile == "lowres")
        & (per_language.query_lang == "ru")
    ].iloc[0]
    assert row["map"] == pytest.approx((means["ru", "en"] + means["ru", "de"]) / 2, rel=1e-12)
    assert row["pairs"] == 2
    assert list(per_language.setting.drop_duplicates()) == ["mono", "cross", "multi"]
    assert per_language.strategy.iloc[0] == "base"


def test_pair_tables_are_query_by_pool_matrices_with_mono_on_the_diagonal(tree, results) -> None:
    matrices = pair_tables(results)
    assert {"ml-base", "xq-base", "ml-hybrid-lowres", "xq-mono-balanced"} <= set(matrices)
    matrix = matrices["ml-hybrid-lowres"]
    means = hand_pair_means(tree[2], "hybrid", "lowres", "ml")
    assert matrix.index.name == "query_lang" and matrix.columns.name == "pool_lang"
    assert matrix.at["ru", "de"] == pytest.approx(means["ru", "de"], rel=1e-12)
    assert matrix.at["de", "de"] == pytest.approx(means["de", "de"], rel=1e-12)
    assert "all" not in matrix.columns


def test_metrics_table_equals_the_evaluate_summaries(tree, results) -> None:
    metrics = metrics_table(results, STRATEGIES, PROFILES)
    assert list(metrics.setting.drop_duplicates()) == ["mono", "cross", "multi"]
    assert metrics.strategy.iloc[0] == "base"
    checked = 0
    for row in metrics.to_dict("records"):
        where = (row["strategy"], row["profile"], row["dataset"], row["setting"])
        for column in ("mrr@10", "recall@1", "recall@100", "ndcg@10"):
            assert row[column] == evaluate_number(tree[1], *where, column)
            checked += 1
        share = row["same_language_top10"]
        if row["setting"] == "multi":
            assert share == evaluate_number(tree[1], *where[:3], "multi", "same_language_top10")
        else:
            assert np.isnan(share)
    assert checked == 2 * 3 * 5 * 4


def test_beir_table_averages_the_evaluate_files_over_seeds(tree) -> None:
    beir = beir_table(tree[1], MODELS, ["mini"], STRATEGIES, PROFILES)
    row = beir[(beir.strategy == "hybrid") & (beir.profile == "lowres") & (beir.language == "de")].iloc[0]
    seeds = [MODELS.index(f"hybrid/lowres/{s}") for s in (0, 1)]
    assert row["ndcg@10"] == pytest.approx(0.25 + sum(seeds) / 200, rel=1e-12)
    assert row["recall@100"] == 0.5 and row["seeds"] == 2
    assert beir.strategy.iloc[0] == "base"
    with pytest.raises(MlretError, match="beir-other"):
        beir_table(tree[1], MODELS, ["other"], STRATEGIES, PROFILES)


def test_write_paper_tables_writes_every_table_and_refuses_beir_without_metrics(
    tree, results, table, tmp_path: Path
) -> None:
    stale = tmp_path / "pairs" / "old-model.csv"
    stale.parent.mkdir()
    stale.write_text("x\n")
    kwargs = {"train_source": TRAIN, "strategies": STRATEGIES, "profiles": PROFILES, "models": MODELS}
    write_paper_tables(results, table, tmp_path, metrics_root=tree[1], beir=["mini"], **kwargs)
    for name in (
        "main.md",
        "main.tex",
        "per_language.csv",
        "per_language.md",
        "metrics.csv",
        "metrics.md",
        "beir.csv",
        "beir.md",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not stale.exists()
    matrix = pd.read_csv(tmp_path / "pairs" / "xq-base.csv", index_col="query_lang")
    assert list(matrix.columns) == ["de", "en", "ru"]
    with pytest.raises(MlretError, match=r"eval\.beir"):
        write_paper_tables(results, table, tmp_path / "again", beir=["mini"], **kwargs)
