"""The real `dvc repro` and `dvc exp run`, end to end, on a tiny configuration.

A copy of the repository gets a params.yaml that points at hand-made fixture
data (two datasets, three scripts), a tiny BertModel saved locally, and a few
training steps; every stage then runs exactly as it does for a user.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

BIN = Path(sys.executable).parent
DEP_COLUMNS = "^(data|models|plots|src|stages)/"  # `dvc exp show --drop`: the stage dependencies' hash columns
STRATEGIES = ("multi", "hybrid")
BASES = ("tiny", "tiny2")
RUNS = [f"{b}/{s}/{p}/0" for b in BASES for s in STRATEGIES for p in ("balanced", "lowres")]
# Passed on to the stages, so that the suite can be timed with a host's code paths narrowed
# (README, Tests: AVX2 forced, native bf16 hidden by benchmarks/no_native_bf16).
CPU_DISPATCH = ("PYTHONPATH", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")


def run(args: list[str], cwd: Path, status: int = 0) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(cwd.parent),
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "OMP_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
        "HF_HUB_OFFLINE": "1",
        **{name: os.environ[name] for name in CPU_DISPATCH if name in os.environ},
    }
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == status, (
        f"{' '.join(args)} exited {result.returncode}, not {status}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def commit_results(repo: Path, message: str) -> None:
    """Commit the pipeline's results (running it first when no earlier test did): experiments are compared with them."""
    if not (repo / "data" / "eval").is_dir():  # reports/ alone says nothing: the copy holds the committed study's
        run([str(BIN / "dvc"), "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message, "--allow-empty"], repo)


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, copy_repository, write_dataset, save_tiny_checkpoint) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    repo = copy_repository(root / "repo")
    # The tiny configuration is a project of its own: the committed study's dvc.lock (one entry per stage of
    # its grid, ~380 KB) holds nothing it can reuse, and DVC parses the lock again for every stage it runs
    # (about 2.5 s of each stage at that size, more than the tiny stage itself).
    (repo / "dvc.lock").unlink()
    mirror = root / "mirror"
    sources = {
        "tiny-xquad": write_dataset(mirror, "tiny-xquad", ["en", "ru", "zh"], n_articles=6),
        "tiny-mlqa": write_dataset(mirror, "tiny-mlqa", ["ar", "en", "zh"], n_articles=3),
    }
    model = save_tiny_checkpoint(root / "tiny-model")
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["data"].update(
        mirror="../mirror",  # relative, as in the committed params: found from DVC's temporary workspaces too
        train_source="tiny-xquad",
        split={"train": 0.5, "dev": 0.0, "test": 0.5, "seed": 1},
        sources={
            name: {"url": s.url, "sha256": s.sha256, "expected_questions": s.expected_questions}
            for name, s in sources.items()
        },
    )
    params["profiles"] = {"balanced": {"default": 1.0}, "lowres": {"default": 1.0, "zh": 0.5}}
    params["runs"] = {  # no mono run; the lowres runs are scored in-domain only, as the shipped ladder runs are
        f"{b}-{s}-{p}-0": {
            "base": b,
            "strategy": s,
            "profile": p,
            "seed": 0,
            "corpora": "in_domain" if p == "lowres" else "all",
        }
        for b in BASES
        for s in STRATEGIES
        for p in ("balanced", "lowres")
    }
    # Two bases from one checkpoint, encoding with different prefixes and training different weights.
    tiny = {
        "name": str(model),
        "pooling": "mean",
        "max_query_length": 16,
        "max_passage_length": 16,
        "normalize": True,
    }
    params["bases"] = {
        "tiny": {**tiny, "query_prefix": "query : ", "passage_prefix": "passage : ", "freeze_word_embeddings": False},
        "tiny2": {**tiny, "query_prefix": "", "passage_prefix": "", "freeze_word_embeddings": True},
    }
    params["train"].update(batch_size=4, max_steps=3, save_every=2, max_query_length=16, max_passage_length=16)
    params["report"] = {"primary_scope": {"tiny2": "mono"}}  # tiny keeps the default: all settings
    params["eval"]["batch_size"] = 8
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny configuration"], repo)
    return repo


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_and_reports(repo: Path) -> None:
    first = run([str(BIN / "dvc"), "repro"], repo)
    stages = ran_stages(first.stdout)
    assert {"download", "parallelise", "split", "check_params", "report"} <= stages
    assert {f"{stage}@{b}" for stage in ("base_model", "encode_base", "evaluate_base") for b in BASES} <= stages
    assert {f"train@{run.replace('/', '-')}" for run in RUNS} <= stages

    summary = (repo / "reports" / "summary.md").read_text(encoding="utf-8")
    assert all(f"## Base `{b}`" in summary for b in BASES) and summary.count("### Answer") == 2
    # Each base's primary family in its own scope.
    assert "#### tiny-xquad, all settings\n" in summary and "#### tiny-xquad, mono only (primary)\n" in summary
    table = pd.read_csv(repo / "reports" / "results.csv")
    assert set(table.base) == set(BASES) and list(table.columns[:1]) == ["base"]
    assert set(table.dataset) == {"tiny-xquad", "tiny-mlqa"} and set(table.setting) == {"mono", "cross", "multi"}
    assert table.groupby(["base", "dataset", "setting"]).head(1).strategy.eq("base").all()
    robustness = pd.read_csv(repo / "reports" / "robustness.csv")
    assert set(robustness.base) == set(BASES)
    # Each base's numbers are its own: the two bases encode differently, so their untuned rows differ.
    untuned = table[table.strategy == "base"].set_index(["base", "dataset", "setting"])["map"]
    assert not untuned.loc["tiny"].equals(untuned.loc["tiny2"])
    report = json.loads((repo / "metrics" / "report.json").read_text())
    assert set(report) == {"headline", "robustness"} and set(report["headline"]) == set(BASES)
    headline = report["headline"]["tiny"]
    assert set(headline) == {"strategy", "balanced", "lowres"}
    assert headline["strategy"] == "hybrid" and 0 <= headline["lowres"]["tiny-xquad"]["multi"]["map"] <= 1
    assert set(headline["lowres"]) == {"tiny-xquad"} and set(report["robustness"]["tiny"]) == {
        "tiny-xquad"
    }  # lowres: in-domain only
    assert {
        name
        for datasets in (headline["balanced"], headline["lowres"])
        for settings in datasets.values()
        for metrics in settings.values()
        for name in metrics
    } == {"map", "rank_distance"}
    evaluated = json.loads((repo / "metrics" / "eval" / "tiny" / "hybrid" / "lowres" / "0.json").read_text())
    assert evaluated["tiny-xquad"]["cross"]["pairs"] == 6
    # Per-run diagnostics are not declared metrics, yet `dvc metrics show` reads them when named.
    shown = run([str(BIN / "dvc"), "metrics", "show", "metrics/eval/tiny/hybrid/lowres/0.json"], repo)
    assert "tiny-xquad.cross.map" in shown.stdout

    # Every plot renders: the loss overlay has one line per trained model, the mAP bars one file per
    # base × dataset × setting.
    plots = run([str(BIN / "dvc"), "plots", "show", "-o", "dvc_plots"], repo)
    assert "failed to load" not in plots.stdout + plots.stderr, plots.stdout + plots.stderr
    html = (repo / "dvc_plots" / "index.html").read_text(encoding="utf-8")
    assert all(f'"run": "{run}"' in html for run in RUNS)
    assert all(
        f"plots/report/map/{b}-{d}-{t}.csv" in html
        for b in BASES
        for d in ("tiny-xquad", "tiny-mlqa")
        for t in ("mono", "cross", "multi")
    )
    assert all((repo / "reports" / "figures" / b).is_dir() for b in BASES)
    loss = pd.read_csv(repo / "plots" / "report" / "train-loss.csv")
    assert loss.groupby("run").step.count().to_dict() == dict.fromkeys(RUNS, 3)
    assert (repo / "models" / "tiny" / "hybrid" / "lowres" / "0" / "training_params.json").is_file()

    again = run([str(BIN / "dvc"), "repro"], repo)
    assert ran_stages(again.stdout) == set(), "a second repro with nothing changed must do no work"

    # Byte-code written by running the code (tests, stages) is not a change of any stage's deps.
    run([str(BIN / "python"), "-m", "compileall", "-q", "src", "stages"], repo)
    assert any((repo / "src" / "mlret" / "training").glob("__pycache__/*.pyc"))
    status = run([str(BIN / "dvc"), "status"], repo)
    assert "up to date" in status.stdout, status.stdout

    search = run(
        [
            str(BIN / "python"),
            "-m",
            "mlret.search",
            "--model",
            "models/tiny/hybrid/balanced/0",
            "--dataset",
            "tiny-mlqa",
            "-k",
            "3",
            "where a1 p0 s1?",
        ],
        repo,
    )
    assert len(search.stdout.strip().splitlines()) == 3


def outputs(repo: Path) -> dict[str, bytes]:
    """Every file of the report stage that a refused experiment must leave as it was."""
    files = [
        *sorted((repo / "reports").rglob("*")),
        *sorted((repo / "plots" / "report").rglob("*")),
        repo / "metrics" / "report.json",
    ]
    return {str(f.relative_to(repo)): f.read_bytes() for f in files if f.is_file()}


def readme_exp_show() -> list[str]:
    """The README's `dvc exp show` recipe, as a user copies it (on the shipped grid's dataset names)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    line = next(line for line in readme.splitlines() if "dvc exp show --only-changed --drop" in line)
    return shlex.split(line, comments=True)


@pytest.mark.slow
def test_experiments_rerun_only_what_changed(repo: Path) -> None:
    commit_results(repo, "baseline results")

    # A headline strategy with no run is refused before DVC removes anything the report stage wrote.
    before = outputs(repo)
    refused = run(
        [str(BIN / "dvc"), "exp", "run", "-S", "sampling=mono"], repo, status=255
    )  # DVC's status for a failed stage
    assert (
        "error: sampling = 'mono' is not among the strategies trained on base 'tiny' ['hybrid', 'multi']"
        in refused.stdout + refused.stderr
    )
    assert (
        "failed to reproduce 'check_params'" in refused.stdout + refused.stderr
        and "exited with 1" in refused.stdout + refused.stderr
    )
    assert "Running stage 'report'" not in refused.stdout
    assert outputs(repo) == before
    run(["git", "checkout", "params.yaml"], repo)  # `dvc exp run` leaves the refused value in the workspace

    headline = run([str(BIN / "dvc"), "exp", "run", "-S", "sampling=multi"], repo)
    assert ran_stages(headline.stdout) == {"check_params", "report"}
    # The headline section keeps its keys whichever strategy it holds: every number is compared. (The
    # robustness contrast is hybrid − multi under the hybrid headline and has no counterpart under multi.)
    compared = json.loads(run([str(BIN / "dvc"), "metrics", "diff", "HEAD", "--all", "--json"], repo).stdout)[
        "metrics/report.json"
    ]
    numbers = {key: row for key, row in compared.items() if key.startswith("headline.") and ".strategy" not in key}
    assert all(compared[f"headline.{b}.strategy"] == {"old": "hybrid", "new": "multi"} for b in BASES)
    assert len(numbers) == 24 and all("diff" in row for row in numbers.values()), compared
    shown_diff = run([str(BIN / "dvc"), "metrics", "diff", "HEAD", "--all"], repo).stdout
    unsupported = [line for line in shown_diff.splitlines() if "diff not supported" in line]
    assert not [line for line in unsupported if "headline." in line and ".strategy" not in line], shown_diff
    run(["git", "checkout", "params.yaml", "metrics/report.json", "reports", "plots/report", "dvc.lock"], repo)

    ratio = run([str(BIN / "dvc"), "exp", "run", "-S", "hybrid.mono_ratio=0.3"], repo)
    assert {s for s in ran_stages(ratio.stdout) if s.startswith("train@")} == {
        f"train@{b}-hybrid-{p}-0" for b in BASES for p in ("balanced", "lowres")
    }

    source = run([str(BIN / "dvc"), "exp", "run", "-S", "data.train_source=tiny-mlqa"], repo)
    assert {"split", "encode_base@tiny", "report"} <= ran_stages(source.stdout) and "download" not in ran_stages(
        source.stdout
    )

    shown = run([str(BIN / "dvc"), "exp", "show", "--csv"], repo)
    assert "hybrid.mono_ratio" in shown.stdout and "data.train_source" in shown.stdout
    diff = run([str(BIN / "dvc"), "metrics", "diff", "HEAD", "--all"], repo)
    assert "metrics/report.json" in diff.stdout
    assert (
        "metrics/eval" not in diff.stdout
        and "metrics/train" not in diff.stdout
        and "metrics/data.json" not in diff.stdout
    )

    # The experiment table: metrics are the headline section and the robustness contrast only. Params and
    # deps add a column each (params.yaml keys, stage dependencies); the README recipe keeps what a reader compares.
    columns = next(csv.reader(io.StringIO(shown.stdout)))
    top = [row["data"] for row in json.loads(run([str(BIN / "dvc"), "exp", "show", "--json"], repo).stdout)]
    metric_columns = {
        key for data in top for m in (data.get("metrics") or {}).values() for key in _flat(m.get("data", {}))
    }
    param_columns = {
        key for data in top for p in (data.get("params") or {}).values() for key in _flat(p.get("data", {}))
    }
    dep_columns = {path for data in top for path in (data.get("deps") or {})}
    recipe = [arg.replace("xquad-r", "tiny-xquad").replace("mlqa-r", "tiny-mlqa") for arg in readme_exp_show()]
    assert recipe[0].endswith("dvc")
    compact = run([str(BIN / "dvc"), *recipe[1:], "--csv"], repo)
    kept = [
        c for c in next(csv.reader(io.StringIO(compact.stdout))) if c not in ("rev", "typ", "parent")
    ]  # merged into Experiment on screen
    print(
        f"\ndvc exp show --csv: {len(columns)} columns ({len(metric_columns)} metrics, {len(param_columns)} params, "
        f"{len(dep_columns)} deps); README recipe: {kept}; dvc metrics diff: {len(diff.stdout.splitlines())} lines"
    )
    assert all(key.startswith(("headline.", "robustness.")) for key in metric_columns), sorted(metric_columns)
    assert {"sampling", "hybrid.mono_ratio", "data.train_source", "headline.tiny.strategy"} <= set(kept), kept
    assert "headline.tiny.balanced.tiny-xquad.multi.map" in kept and len(kept) <= 20, kept
    assert len(diff.stdout.splitlines()) <= 25 * len(BASES), diff.stdout  # a screenful a base


def _flat(data: dict, prefix: str = "") -> list[str]:
    return [
        k
        for key, value in data.items()
        for k in (_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"])
    ]


@pytest.mark.slow
def test_experiment_in_a_temporary_workspace_finds_the_mirror(repo: Path) -> None:
    """`--temp` (and the queue) run in .dvc/tmp/exps/…, where a relative mirror path points nowhere."""
    commit_results(repo, "results before the temporary experiment")

    # Another headline than the committed one (an earlier test's experiments may have changed it) re-runs
    # `report`; a changed download param re-runs `download` inside the temporary workspace, offline.
    committed = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))["sampling"]
    other = next(s for s in STRATEGIES if s != committed)
    temp = run(
        [str(BIN / "dvc"), "exp", "run", "--temp", "-S", f"sampling={other}", "-S", "data.download_retries=2"], repo
    )
    assert {"download", "report"} <= ran_stages(temp.stdout), temp.stdout
    shown = run([str(BIN / "dvc"), "exp", "show", "--csv"], repo)
    assert other in shown.stdout
