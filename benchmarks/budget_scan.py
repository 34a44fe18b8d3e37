"""Scan training budgets (steps × learning rate) on the dev articles: where does a base learn, and does imbalance bind?

The base is the one keyed ``--base`` under params.yaml's ``bases`` (``minilm``, the English base, by
default), with its own settings there. Each budget point is one `budget_point.py --articles dev` run
(same base and settings for every point but ``train.max_steps``, ``train.learning_rate`` and, scaled
with the steps, ``train.save_every``), training ``--runs`` (by default multi and hybrid on ``balanced``
and on ``--profile``, seeds 0 and 1) and scoring the training source's dev articles, so the budget is
chosen without the test set. Then, per point, it prints:

* each run's final loss (mean of the last tenth of its steps) and mAP per setting (mono, cross, multi);
* per strategy, the specific monolingual drop of every language ``--profile`` reduces, at each of its
  severities, against ``balanced``, and the contrast hybrid − multi, each with the report's 95 %
  interval (:func:`mlret.reporting.robustness.robustness_tables`: questions and seeds; with one seed
  per run the seed noise cannot be estimated and the interval is NaN, so scan with two seeds);
* the level each strategy reaches on the reduced language under imbalance (its monolingual mAP there).

    python benchmarks/budget_scan.py --work scan --steps 150,600 --lr 3e-5

``--set`` overrides reach the base as ``bases.{base}.{key}``, e.g. ``--base e5 --set
bases.e5.freeze_word_embeddings=false``. Needs `dvc repro split` first. Points already scored under
WORK (WORK/steps{steps}-lr{lr}/metrics/{base}/...) are read, not run again. Writes WORK/budget_scan.json
and prints a Markdown table per point.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from budget_point import DEFAULT_BASE, override

from mlret.errors import cli_errors
from mlret.params import parse_params, read_yaml
from mlret.reporting.collect import load_results
from mlret.reporting.robustness import robustness_tables
from mlret.vocabulary import RunId, Setting

HERE = Path(__file__).resolve().parent
SOURCE = "xquad-r"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument(
        "--base", default=DEFAULT_BASE, help="the base model's key under `bases` in params.yaml (default: %(default)s)"
    )
    parser.add_argument("--steps", default="150,600,1200", help="comma-separated train.max_steps values")
    parser.add_argument("--lr", default="3e-5", help="comma-separated train.learning_rate values")
    parser.add_argument("--profile", default="ladder_a", help="the imbalanced profile beside balanced")
    parser.add_argument("--strategies", default="multi,hybrid")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds of every run")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="passed on to budget_point.py (repeatable)"
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--device", default=None)
    return parser.parse_args()


def point_dir(work: Path, steps: int, lr: str) -> Path:
    return work / f"steps{steps}-lr{lr}"


def run_point(args: argparse.Namespace, steps: int, lr: str, runs: list[RunId]) -> Path:
    """Train and score one budget point through budget_point.py, unless WORK already holds its scores."""
    work = point_dir(args.work, steps, lr)
    if all((work / "metrics" / f"{run.path}.json").exists() for run in runs):
        return work
    command = [
        sys.executable,
        str(HERE / "budget_point.py"),
        "--params",
        str(args.params),
        "--work",
        str(work),
        "--articles",
        "dev",
        "--base",
        args.base,
        "--runs",
        ",".join(f"{r.strategy}:{r.profile}:{r.seed}" for r in runs),
        *(item for assignment in args.set for item in ("--set", assignment)),
        "--set",
        f"train.max_steps={steps}",
        "--set",
        f"train.save_every={steps}",
        "--set",
        f"train.learning_rate={float(lr):.2e}",  # with a decimal point: YAML 1.1 reads 3e-5 as a string
        *(["--device", args.device] if args.device else []),
    ]
    subprocess.run(command, check=True)
    return work


def final_loss(work: Path, run: RunId) -> float:
    log = pd.read_csv(work / "train" / f"{run.path}.csv")
    return float(log.loss.tail(max(1, len(log) // 10)).mean())


def summarise(work: Path, runs: list[RunId], raw: dict[str, Any], profile: str) -> dict[str, Any]:
    """Loss and mAP per run, and the reduced languages' specific monolingual drops with their intervals.

    ``runs`` are of one base, whose per-query tables are under WORK/eval/{base}/.
    """
    params = parse_params(raw)
    (base,) = {run.base for run in runs}
    out: dict[str, Any] = {"runs": {}, "drops": []}
    for run in runs:
        metrics = json.loads((work / "metrics" / f"{run.path}.json").read_text(encoding="utf-8"))[SOURCE]
        out["runs"][run.name] = {
            "loss": round(final_loss(work, run), 3),
            **{str(s): round(metrics[str(s)]["map"], 4) for s in Setting},
        }
    results = load_results(work / "eval" / base, [run.name for run in runs], [SOURCE])
    languages = set(results.query_lang)
    reduced = {lang for lang in languages if params.profiles[profile].fraction(lang) < 1.0}
    fractions = {name: {lang: params.profiles[name].fraction(lang) for lang in languages} for name in params.profiles}
    headline = runs[-1].strategy  # the contrast is the last strategy − multi
    table = robustness_tables(
        results, {profile: reduced}, fractions, headline, units=("question",), scopes=(str(Setting.MONO),)
    )["question"]
    mono = results[(results.setting == str(Setting.MONO)) & (results.profile == profile)]
    for row in table.itertuples():
        langs = sorted(lang for lang in reduced if fractions[profile][lang] == row.severity)
        level = mono[mono.query_lang.isin(langs)].groupby("strategy").ap.mean()
        out["drops"].append(
            {
                "severity": row.severity,
                "languages": langs,
                "kind": row.kind,
                "strategy": row.strategy,
                "specific_drop": round(float(row.specific_drop), 4),
                "ci": [round(float(row.ci_low), 4), round(float(row.ci_high), 4)],
                "reduced_map": round(float(level.get(row.strategy, float("nan"))), 4),
            }
        )
    return out


def markdown(point: str, summary: dict[str, Any]) -> str:
    lines = [f"### {point}", "", "| run | loss | mono | cross | multi |", "|---|---|---|---|---|"]
    for name, r in summary["runs"].items():
        lines.append(f"| {name} | {r['loss']:.3f} | {r['mono']:.3f} | {r['cross']:.3f} | {r['multi']:.3f} |")
    lines += [
        "",
        "| severity (languages) | strategy | specific mono drop [95 % CI] | mono mAP there |",
        "|---|---|---|---|",
    ]
    for d in summary["drops"]:
        level = "" if d["kind"] == "contrast" else f"{d['reduced_map']:.3f}"
        lines.append(
            f"| {d['severity']:g} ({', '.join(d['languages'])}) | {d['strategy']} | "
            f"{d['specific_drop']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] | {level} |"
        )
    return "\n".join(lines)


@cli_errors
def main() -> None:
    args = parse_args()
    raw = read_yaml(args.params)
    for assignment in args.set:
        override(raw, assignment)
    model = parse_params(raw).model(args.base)  # an unknown base stops the scan before its first point
    strategies = args.strategies.split(",")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    runs = [RunId(args.base, s, p, seed) for p in ("balanced", args.profile) for s in strategies for seed in seeds]
    record: dict[str, Any] = {
        "base": args.base,
        "model": model.name,
        "settings": args.set,
        "profile": args.profile,
        "points": {},
    }
    for steps in (int(s) for s in args.steps.split(",")):
        for lr in args.lr.split(","):
            work = run_point(args, steps, lr, runs)
            summary = summarise(work, runs, raw, args.profile)
            record["points"][work.name] = summary
            print(markdown(f"{args.base}, {work.name}", summary), flush=True)
            (args.work / "budget_scan.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
