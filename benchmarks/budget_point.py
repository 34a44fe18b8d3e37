"""Train and score a few runs of one base model at another training budget, outside the DVC grid, in one process.

The default grid is sized for a 2-core CPU (150 steps), where a language's training data barely
matters. This script measures one point where imbalance may bind, e.g. 1,000 steps on a GPU, for
the base model keyed ``--base`` under params.yaml's ``bases`` (``minilm``, the English base, by
default; its word embeddings are trained, as ``bases.minilm.freeze_word_embeddings`` says):

    python benchmarks/budget_point.py --set train.max_steps=1000 --set train.save_every=1000 \\
        --runs multi:balanced:0,hybrid:balanced:0,multi:ladder_a:0,hybrid:ladder_a:0 --work budget

It reads params.yaml, applies each ``--set key=value`` (YAML values, validated as params.yaml is;
the base's own settings are ``bases.{base}.{key}``, e.g. ``--set bases.e5.freeze_word_embeddings=false``)
and trains and encodes every listed ``strategy:profile:seed`` of the base with the package's own
functions, in the order given (as the `train` and `encode` stages do), then indexes and scores the
runs side by side on the CPU (as `index` and `evaluate` do, on ``--corpora``). Inputs
are the pipeline's own artifacts, made by `dvc repro split` (data/parallel, data/splits); the base
model is materialised into WORK/models/{base}/base unless ``--base-model`` names a checkpoint. ``--deadline`` (seconds
from the start) stops it from starting another run once passed, so a time-limited machine ends with
complete runs. ``--articles dev`` scores the training source's dev articles instead of its test
articles, so that a budget can be chosen without looking at the test set (non-training sources are
scored on their full pool either way, with ``--corpora all``); the metrics files then still label the
pool "in-domain test articles", and WORK/budget_point.json records which articles were scored.
Every artifact lands in the pipeline's per-base layout under WORK: models/{base}/{strategy}/{profile}/{seed},
train/{base}/..., embeddings/{base}/..., metrics/{base}/{strategy}/{profile}/{seed}.json, and the per-query
tables in eval/{base}/{strategy}/{profile}/{seed}/, in the evaluate stage's layout, for
:func:`mlret.reporting.robustness.robustness_tables`; WORK/budget_point.json records the base, the settings,
the host and each run's wall time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from mlret.data.corpora import EvalCorpora
from mlret.errors import cli_errors
from mlret.params import Corpora, Strategy, parse_params, read_yaml
from mlret.vocabulary import BASE, RunId

# The English base, where imbalance may bind: the budget scan's subject.
DEFAULT_BASE = "minilm"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="comma-separated strategy:profile:seed")
    parser.add_argument(
        "--base", default=DEFAULT_BASE, help="the base model's key under `bases` in params.yaml (default: %(default)s)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="params override, dotted key (repeatable)"
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--parallel-root", type=Path, default=Path("data/parallel"))
    parser.add_argument("--splits", type=Path, default=Path("data/splits"))
    parser.add_argument(
        "--base-model",
        type=Path,
        default=None,
        help="an existing checkpoint of --base (default: materialise bases.{base}.name)",
    )
    parser.add_argument("--corpora", default="in_domain", choices=["in_domain", "all"])
    parser.add_argument(
        "--articles",
        default="test",
        choices=["test", "dev"],
        help="the training source's articles to score: its test articles (as the study) or its dev articles",
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--device", default=None)
    parser.add_argument("--deadline", type=float, default=None, help="seconds after which no new run starts training")
    parser.add_argument("--eval-workers", type=int, default=4, help="runs scored side by side once all are trained")
    return parser.parse_args()


def override(raw: dict[str, Any], assignment: str) -> None:
    key, sep, value = assignment.partition("=")
    if not sep:
        raise SystemExit(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.max_steps=1000")
    *parents, leaf = key.split(".")
    if parents == ["model"] or key == "train.freeze_word_embeddings":
        raise SystemExit(
            f"--set {assignment!r}: a base model's settings (freeze_word_embeddings among them) are under "
            f"`bases.{{base}}`, e.g. bases.minilm.{leaf}={value}"
        )
    node = raw
    for name in parents:
        if not isinstance(node.get(name), dict):
            raise SystemExit(f"--set {assignment!r}: params has no section {name!r}")
        node = node[name]
    node[leaf] = yaml.safe_load(value)


def host() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - the pipeline needs it anyway
        pass
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    info["cpu_flags"] = sorted({f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")})
    return info


def scored_articles(splits: Path, which: str, work: Path) -> Path:
    """The articles file the evaluation reads: the split's own, or for ``dev`` a copy whose ``test`` part (the
    part evaluation scores) lists the dev articles."""
    if not (splits / "articles.json").is_file():
        raise SystemExit(f"{splits / 'articles.json'}: not found; run `dvc repro split` first (or pass --splits)")
    if which == "test":
        return splits / "articles.json"
    split = json.loads((splits / "articles.json").read_text(encoding="utf-8"))
    if not split.get("dev"):
        raise SystemExit(
            f"{splits / 'articles.json'}: no dev articles; set data.split.dev above 0 and re-run the split"
        )
    path = work / "articles-dev.json"
    path.write_text(json.dumps({"test": split["dev"]}) + "\n", encoding="utf-8")
    return path


def score(raw: dict[str, Any], parallel_root: Path, articles: Path, corpora_kind: str, work: Path, path: str) -> None:
    """Index and evaluate one trained run (``path``: ``{base}/{strategy}/{profile}/{seed}``), as the `index` and
    `evaluate` stages do."""
    from mlret.scoring.evaluate import evaluate_model
    from mlret.scoring.index import index_model

    params = parse_params(raw)
    corpora = EvalCorpora.from_params(params, parallel_root, articles, Corpora(corpora_kind))
    index_model(corpora, work / "embeddings" / path, work / "index" / path, params.index)
    evaluate_model(
        corpora, work / "embeddings" / path, work / "eval" / path, work / "metrics" / f"{path}.json", path, []
    )


def parse_runs(text: str, base: str, profiles: list[str]) -> list[RunId]:
    """The runs of ``base`` that ``--runs`` lists as ``strategy:profile:seed``, in its order."""
    runs = []
    for item in (item for item in text.split(",") if item):
        fields = item.split(":")
        if len(fields) != 3 or fields[1] not in profiles or not fields[2].isdigit():
            raise SystemExit(
                f"--runs: {item!r} is not strategy:profile:seed with a profile of params.yaml ({sorted(profiles)})"
            )
        runs.append(RunId(base, fields[0], fields[1], int(fields[2])))
    return runs


@cli_errors
def main() -> None:
    args = parse_args()
    from mlret.encoding.corpora import encode_corpora
    from mlret.models.base import materialise_base_model
    from mlret.models.encoder import Encoder
    from mlret.training.loop import train_run
    from mlret.training.spec import RunSpec

    start = time.monotonic()
    raw = read_yaml(args.params)
    for assignment in args.set:
        override(raw, assignment)
    params = parse_params(raw)
    model = params.model(args.base)
    runs = parse_runs(args.runs, args.base, list(params.profiles))
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "base": args.base,
        "model": model.name,
        "settings": args.set,
        "corpora": args.corpora,
        "articles": args.articles,
        "host": host(),
        "runs": {},
    }
    articles = scored_articles(args.splits, args.articles, work)
    base_model = args.base_model
    if base_model is None:
        base_model = work / "models" / args.base / BASE
        t0 = time.monotonic()
        materialise_base_model(model, base_model)
        record["base_model_seconds"] = round(time.monotonic() - t0, 1)
    corpora = EvalCorpora.from_params(params, args.parallel_root, articles, args.corpora)
    source = params.data.train_source
    trained = []
    for run in runs:
        name = run.path
        if args.deadline is not None and time.monotonic() - start > args.deadline:
            record["runs"][name] = "not started: deadline passed"
            continue
        t0 = time.monotonic()
        spec = RunSpec(
            settings=params.strategy_settings[Strategy(run.strategy)],
            profile=run.profile,
            seed=run.seed,
            train_table=args.splits / run.profile / "train.parquet",
            candidates_table=args.parallel_root / source / "candidates.parquet",
            base_model=base_model,
            out_dir=work / "models" / name,
            resume_dir=work / "checkpoints" / name,
            log_path=work / "train" / f"{name}.csv",
            metrics_path=work / "train" / f"{name}.json",
        )
        train_run(spec, model, params.train, device=args.device)
        t1 = time.monotonic()
        encoder = Encoder(spec.out_dir, model, batch_size=params.eval.batch_size, device=args.device)
        encode_corpora(encoder, corpora, work / "embeddings" / name)
        del encoder
        record["runs"][name] = {"train": round(t1 - t0, 1), "encode": round(time.monotonic() - t1, 1)}
        trained.append(name)
        (work / "budget_point.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"{name}: train {t1 - t0:.0f} s, encode {time.monotonic() - t1:.0f} s", flush=True)
    # Scoring runs on the CPU; the runs are independent, so they are scored side by side.
    t0 = time.monotonic()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, min(args.eval_workers, len(trained))), mp_context=context) as pool:
        jobs = {
            name: pool.submit(score, raw, args.parallel_root, articles, args.corpora, work, name) for name in trained
        }
        for job in jobs.values():
            job.result()
    record["score_seconds"] = round(time.monotonic() - t0, 1)
    record["seconds"] = round(time.monotonic() - start, 1)
    (work / "budget_point.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
