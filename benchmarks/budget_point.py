"""Train and score a few runs at another training budget, outside the DVC grid, in one process.

The default grid is sized for a 2-core CPU (150 steps, frozen word embeddings), where a language's
training data barely matters. This script measures one point where imbalance may bind, e.g. 1,000
steps with every weight trained, on a GPU:

    python benchmarks/budget_point.py --set train.max_steps=1000 --set train.freeze_word_embeddings=false \\
        --runs multi:balanced:0,hybrid:balanced:0,multi:ladder_a:0,hybrid:ladder_a:0 --work budget

It reads params.yaml, applies each ``--set key=value`` (YAML values, validated as params.yaml is) and
trains and encodes every listed ``strategy:profile:seed`` with the package's own functions, in the
order given (as the `train` and `encode` stages do), then indexes and scores the runs side by side
on the CPU (as `index` and `evaluate` do, on ``--corpora``). Inputs
are the pipeline's own artifacts, made by `dvc repro split` (data/parallel, data/splits); the base
model is materialised into the work folder unless ``--base-model`` names one. ``--deadline`` (seconds
from the start) stops it from starting another run once passed, so a time-limited machine ends with
complete runs. ``--articles dev`` scores the training source's dev articles instead of its test
articles, so that a budget can be chosen without looking at the test set (non-training sources are
scored on their full pool either way, with ``--corpora all``); the metrics files then still label the
pool "in-domain test articles", and WORK/budget_point.json records which articles were scored.
Per-query tables land in WORK/eval/{strategy}/{profile}/{seed}/, in the evaluate stage's layout, for
:func:`mlret.reporting.robustness.robustness_tables`; WORK/budget_point.json records the settings, the
host and each run's wall time.
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
from mlret.params import Strategy, parse_params, read_yaml


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="comma-separated strategy:profile:seed")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="params override, dotted key (repeatable)"
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--parallel-root", type=Path, default=Path("data/parallel"))
    parser.add_argument("--splits", type=Path, default=Path("data/splits"))
    parser.add_argument(
        "--base-model", type=Path, default=None, help="an existing base checkpoint (default: materialise model.name)"
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


def score(raw: dict[str, Any], parallel_root: Path, articles: Path, corpora_kind: str, work: Path, name: str) -> None:
    """Index and evaluate one trained run, as the `index` and `evaluate` stages do."""
    from mlret.scoring.evaluate import evaluate_model
    from mlret.scoring.index import index_model

    params = parse_params(raw)
    corpora = EvalCorpora.from_params(params, parallel_root, articles, corpora_kind)
    index_model(corpora, work / "embeddings" / name, work / "index" / name, params.index)
    evaluate_model(
        corpora, work / "embeddings" / name, work / "eval" / name, work / "metrics" / f"{name}.json", name, []
    )


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
    runs = [tuple(item.split(":")) for item in args.runs.split(",") if item]
    for run in runs:
        if len(run) != 3 or run[1] not in params.profiles:
            raise SystemExit(
                f"--runs: {':'.join(run)!r} is not strategy:profile:seed "
                f"with a profile of params.yaml ({sorted(params.profiles)})"
            )
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "settings": args.set,
        "corpora": args.corpora,
        "articles": args.articles,
        "host": host(),
        "runs": {},
    }
    articles = scored_articles(args.splits, args.articles, work)
    base = args.base_model
    if base is None:
        base = work / "models" / "base"
        t0 = time.monotonic()
        materialise_base_model(params.model, base)
        record["base_model_seconds"] = round(time.monotonic() - t0, 1)
    corpora = EvalCorpora.from_params(params, args.parallel_root, articles, args.corpora)
    source = params.data.train_source
    trained = []
    for strategy, profile, seed in runs:
        name = f"{strategy}/{profile}/{seed}"
        if args.deadline is not None and time.monotonic() - start > args.deadline:
            record["runs"][name] = "not started: deadline passed"
            continue
        t0 = time.monotonic()
        spec = RunSpec(
            settings=params.strategy_settings[Strategy(strategy)],
            profile=profile,
            seed=int(seed),
            train_table=args.splits / profile / "train.parquet",
            candidates_table=args.parallel_root / source / "candidates.parquet",
            base_model=base,
            out_dir=work / "models" / name,
            resume_dir=work / "checkpoints" / name,
            log_path=work / "train" / f"{name}.csv",
            metrics_path=work / "train" / f"{name}.json",
        )
        train_run(spec, params.model, params.train, device=args.device)
        t1 = time.monotonic()
        encoder = Encoder(spec.out_dir, params.model, batch_size=params.eval.batch_size, device=args.device)
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
