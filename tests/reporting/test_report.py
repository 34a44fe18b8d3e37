"""The report on per-query results whose ordering we control: a clearly better strategy must win."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlret.artifacts import write_json, write_table
from mlret.data.parallel import build_parallel
from mlret.errors import MlretError
from mlret.params import Profile, TrainingRun, load_params
from mlret.reporting.grid import grid_record, read_grid
from mlret.reporting.report import finite_or_null, loss_curves, pool_labels
from mlret.scoring.settings import score_dataset, summarise

REPO = Path(__file__).resolve().parents[2]
NOISE = {"base": 2.0, "mono": 0.9, "hybrid": 0.3}  # lower noise = better retrieval


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


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory, write_dataset, report_from) -> Path:
    root = tmp_path_factory.mktemp("report")
    source = write_dataset(root / "raw", "tiny", ["en", "ru", "zh"], n_articles=6, questions_per_paragraph=3)
    data = build_parallel(source, root / "raw" / "tiny")
    models = {"base": "base"} | {
        f"{s}/{p}/{seed}": s for s in ("mono", "hybrid") for p in ("balanced", "lowres") for seed in (0, 1)
    }
    for model, strategy in models.items():
        seed = 0 if model == "base" else int(model[-1])
        q, p = noisy_embeddings(data.questions, data.candidates, NOISE[strategy], seed)
        per_query, _ = score_dataset(data.questions, data.candidates, q, p)
        write_table(root / "eval" / model / "tiny" / "per_query.parquet", per_query)
        write_json(
            root / "metrics-eval" / f"{model}.json",
            {"tiny": {"pool": "full pool, zero-shot", **summarise(per_query, 0)}},
        )  # the evaluate stage's summary
        if model != "base":  # the `train` stage's loss log: step, loss and what else it records
            log = pd.DataFrame(
                {
                    "step": [1, 2, 3],
                    "loss": [2.0, 1.5, NOISE[strategy] + seed],
                    "learning_rate": 1e-5,
                    "pairs_per_s": 9.0,
                }
            )
            (root / "loss" / model).parent.mkdir(parents=True, exist_ok=True)
            log.to_csv(root / "loss" / f"{model}.csv", index=False)
            share = {"en": 0.4, "ru": 0.4, "zh": 0.2} if "lowres" in model else {"en": 1 / 3, "ru": 1 / 3, "zh": 1 / 3}
            write_json(
                root / "metrics-train" / f"{model}.json", {"language_share": share, "batch_kinds": {strategy: 3}}
            )
    write_table(root / "parallel" / "tiny" / "questions.parquet", data.questions)
    params = load_params(REPO / "params.yaml")
    tiny = dataclasses.replace(params.data.sources["xquad-r"], name="tiny")
    params = dataclasses.replace(
        params,
        sampling="hybrid",
        runs=[TrainingRun(s, p, seed) for s in ("mono", "hybrid") for p in ("balanced", "lowres") for seed in (0, 1)],
        profiles={"balanced": Profile("balanced", 1.0), "lowres": Profile("lowres", 1.0, {"zh": 0.1})},
        data=dataclasses.replace(params.data, sources={"tiny": tiny}, train_source="tiny-other"),
    )
    report_from(params, root, root)
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
    for row in table.itertuples():
        models = ["base"] if row.strategy == "base" else [f"{row.strategy}/{row.profile}/{seed}" for seed in (0, 1)]
        per_seed = [
            summarise(pd.read_parquet(report_dir / "eval" / m / "tiny" / "per_query.parquet"), 0)[row.setting]["map"]
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
    # no multi run, so no headline contrast; the drops and the paper's comparison are still worded
    assert "No contrast: it needs `hybrid` and `multi`" in summary
    assert "| strategy | 10 % kept |" in summary and "| hybrid | " in summary and "| mono | " in summary
    [claim] = [line for line in summary.splitlines() if line.startswith("- tiny, mono mAP: ")]
    assert (
        claim.startswith("- tiny, mono mAP: hybrid − mono = +") and ": hybrid is better; Holm p " in claim
    )  # the Holm test's verdict
    assert "**Pools.** tiny: full pool, zero-shot." in summary and "| lowres | zh | 0.1 | 0.2000 |" in summary
    assert "leads" not in summary and "wins" not in summary
    assert "### tiny (full pool, zero-shot) — multi" in (report_dir / "reports" / "results.md").read_text()


def test_headline_metrics_and_figures(report_dir: Path) -> None:
    metrics = json.loads((report_dir / "report.json").read_text())
    # One `headline` section whose keys never name the strategy: `dvc metrics diff` compares any two headlines.
    headline = metrics["headline"]
    assert set(metrics) == {"headline", "robustness"} and set(headline) == {"strategy", "balanced", "lowres"}
    assert headline["strategy"] == "hybrid"
    assert (
        0 < headline["lowres"]["tiny"]["multi"]["map"] <= 1 and "rank_distance" in headline["lowres"]["tiny"]["multi"]
    )
    # Only what experiments are compared by: `dvc exp show` gets one column per number here.
    assert {
        name for profile in ("balanced", "lowres") for cell in headline[profile]["tiny"].values() for name in cell
    } == {"map", "rank_distance"}
    figures = sorted(p.name for p in (report_dir / "reports" / "figures").glob("*.png"))
    assert (
        "bars-tiny-map.png" in figures and "rank-distance.png" in figures and "train-loss.png" in figures
    )  # the DVC plots, offline
    assert "heatmap-tiny-hybrid-lowres.png" in figures and "robustness-tiny.png" in figures
    assert "heatmap-tiny-base.png" in figures and "heatmap-tiny-hybrid-lowres-vs-base.png" in figures
    assert not [name for name in figures if "--" in name or name.endswith("-.png")]
    robustness = pd.read_csv(report_dir / "reports" / "robustness.csv")
    # zh is the one reduced language (10 % kept): one cell, each strategy's drop in every scope, two balanced seeds
    assert set(zip(robustness.strategy, robustness.scope)) == {
        (s, scope) for s in ("hybrid", "mono") for scope in ("all", "mono", "cross", "multi")
    }
    assert set(robustness.kind) == {"drop"} and set(robustness.severity) == {0.1} and set(robustness.cells) == {1}
    assert set(robustness.reference_seeds) == {2} and "drop_map" not in robustness
    assert {"raw_drop", "full_drop", "specific_drop", "p", "p_holm", "family", "mde80", "reduced_seeds", "note"} <= set(
        robustness
    )
    assert (robustness.ci_low <= robustness.specific_drop).all() and (
        robustness.specific_drop <= robustness.ci_high
    ).all()
    by_article = pd.read_csv(report_dir / "reports" / "robustness_by_article.csv")
    assert set(by_article.units) == {"article"} and "specific_drop" in by_article
    assert metrics["robustness"] == {}


def test_each_model_gets_a_card_with_its_lareqa_results(report_dir: Path) -> None:
    """The card with results lives under reports/cards/: the model folder's card belongs to the stage that saved it."""
    cards = report_dir / "reports" / "cards"
    assert sorted(str(p.relative_to(cards)) for p in cards.rglob("*.md")) == sorted(
        ["base.md"]
        + [f"{s}/{p}/{seed}.md" for s in ("mono", "hybrid") for p in ("balanced", "lowres") for seed in (0, 1)]
    )
    card = (cards / "hybrid" / "lowres" / "1.md").read_text(encoding="utf-8")
    evaluated = json.loads((report_dir / "metrics-eval" / "hybrid" / "lowres" / "1.json").read_text())["tiny"]
    maps = " | ".join(f"{evaluated[s]['map']:.3f}" for s in ("mono", "cross", "multi"))
    row = f"| tiny | full pool, zero-shot | {maps} | {evaluated['multi']['rank_distance']:.1f} |"
    assert row in card.splitlines()
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
    assert files == ["tiny-cross.csv", "tiny-mono.csv", "tiny-multi.csv"]
    for setting in ("mono", "cross", "multi"):
        bars = pd.read_csv(report_dir / "plots" / "map" / f"tiny-{setting}.csv")
        assert bars.run.tolist() == ["base", "mono/balanced", "mono/lowres", "hybrid/balanced", "hybrid/lowres"]
        expected = table[table.setting == setting].set_index(["strategy", "profile"])["map"]
        assert bars.set_index(["strategy", "profile"])["map"].to_dict() == expected.to_dict()
    loss = pd.read_csv(report_dir / "plots" / "train-loss.csv")
    assert loss.groupby("run").step.apply(list).to_dict() == {
        f"{s}/{p}/{seed}": [1, 2, 3] for s in ("mono", "hybrid") for p in ("balanced", "lowres") for seed in (0, 1)
    }
    assert loss.set_index(["run", "step"]).loss[("mono/lowres/1", 3)] == pytest.approx(NOISE["mono"] + 1)


def test_a_missing_loss_log_names_the_file_and_the_stage(tmp_path: Path) -> None:
    (tmp_path / "mono" / "balanced").mkdir(parents=True)
    (tmp_path / "mono" / "balanced" / "0.csv").write_text("step,loss\n1,2.0\n")
    with pytest.raises(MlretError) as caught:
        loss_curves(tmp_path, ["base", "mono/balanced/0", "hybrid/balanced/0"])
    assert (
        str(tmp_path / "hybrid" / "balanced" / "0.csv") in caught.value.what
        and "train@hybrid-balanced-0" in caught.value.fix
    )
    (tmp_path / "mono" / "balanced" / "0.csv").write_text("step,lr\n1,0.1\n")
    with pytest.raises(MlretError, match=r"missing column\(s\) \['loss'\]"):
        loss_curves(tmp_path, ["mono/balanced/0"])
    (tmp_path / "mono" / "balanced" / "0.csv").write_text("step,loss\nx,y\n")  # used to pass into the loss plot
    with pytest.raises(MlretError, match=r"0\.csv: columns \['step', 'loss'\] should hold numbers"):
        loss_curves(tmp_path, ["mono/balanced/0"])


def test_the_report_writes_the_paper_tables(report_dir: Path) -> None:
    reports = report_dir / "reports"
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
    record = grid_record(load_params(REPO / "params.yaml"))
    write_json(tmp_path / "grid.json", record)
    assert read_grid(tmp_path / "grid.json") == record["runs"]
    write_json(tmp_path / "grid.json", {"headline": "hybrid", "runs": {"hybrid": {"balanced": 0}}})
    with pytest.raises(MlretError, match=r"grid\.json: no run grid") as caught:
        read_grid(tmp_path / "grid.json")
    assert "dvc repro check_params" in caught.value.fix


def test_base_eval_metrics_that_are_not_an_object_are_named(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text("[]", encoding="utf-8")
    with pytest.raises(MlretError, match=r"base\.json: expected a JSON object keyed by dataset, found a list"):
        pool_labels(tmp_path, ["xquad-r"])


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
