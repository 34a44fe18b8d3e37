"""The `report` stage: tables, figures, the generated summary, the headline metrics and the data behind DVC plots."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlret.artifacts import read_json, read_table, require_columns, staged_dir, write_bytes, write_json
from mlret.errors import MlretError
from mlret.params import Corpora, Params
from mlret.reporting.bases import answer_sentence, interaction_lines, interaction_table
from mlret.reporting.cards import model_cards
from mlret.reporting.collect import load_results
from mlret.reporting.grid import read_grid
from mlret.reporting.paper_tables import write_paper_tables
from mlret.reporting.plots import (
    figure_name,
    loss_curves_figure,
    pair_heatmaps,
    rank_distance_bars,
    robustness_curves,
    strategy_bars,
)
from mlret.reporting.robustness import COMPARATOR, headline_contrasts, primary_scope_of, robustness_tables
from mlret.reporting.summary import grid_line, summary_markdown
from mlret.reporting.tables import results_markdown, results_table
from mlret.vocabulary import BASE, RunId, model_label, stage_of

#: What `dvc exp show` and `dvc metrics diff` compare across experiments: the headline strategy's
#: mAP per profile × dataset × setting and its rank distance in the multilingual pool. Every other
#: number stays in reports/ and in the undeclared per-run files under metrics/ (timings, memory, counts).
HEADLINE_METRICS = ("map", "rank_distance")
#: The sections of metrics/report.json, each keyed by base model: ``headline.{base}.…``, ``robustness.{base}.…``.
METRICS_SECTIONS = ("headline", "robustness")
#: Columns of a training loss log (written by the `train` stage) that the loss overlay uses.
LOSS_COLUMNS = ("step", "loss")


def low_resource_languages(params: Params, languages: Iterable[str]) -> dict[str, set[str]]:
    """Per profile some run of ``params`` trained on, the evaluated languages it keeps below their full share.

    Asked per language rather than read off the listed fractions, so a profile
    whose ``default`` is below 1 makes every unlisted language low-resource. A
    profile no run trained on has no cell: a base that runs one ladder profile is
    measured on that profile's cells, not left without any.
    """
    langs = sorted(set(languages))
    trained = {run.profile for run in params.runs}
    return {
        name: {lang for lang in langs if profile.fraction(lang) < 1.0}
        for name, profile in params.profiles.items()
        if name in trained
    }


def headline_metrics(table: pd.DataFrame, headline: str) -> dict[str, object]:
    """``{"strategy": name, profile: {dataset: {setting: {metric: value}}}}`` for the headline strategy, seed-averaged.

    One section whose keys do not name the strategy, so that `dvc metrics diff` and `dvc exp diff`
    compare two experiments with different headlines number by number (``headline.balanced.…``).
    Kept to :data:`HEADLINE_METRICS` so that an experiment table stays a screenful; a
    robustness contrast belongs beside it, under its own top-level key.
    """
    out: dict[str, object] = {"strategy": headline}
    for _, row in table[table.strategy == headline].iterrows():
        profile = out.setdefault(row.profile, {})
        assert isinstance(profile, dict)
        cell = profile.setdefault(row.dataset, {}).setdefault(row.setting, {})
        for name in HEADLINE_METRICS:
            value = row.get(name, np.nan)
            if not pd.isna(value):
                cell[name] = round(float(value), 4)
    return out


def map_bars_data(table: pd.DataFrame, strategies: Sequence[str]) -> dict[str, pd.DataFrame]:
    """One small table per dataset × setting (file stem -> rows): one bar per model, one value per bar.

    A single long table would make `dvc plots` stack every setting's value on each model's bar.
    """
    order = {s: i for i, s in enumerate([BASE, *strategies])}
    out = {}
    for (dataset, setting), block in table.groupby(["dataset", "setting"], sort=True):
        rows = block.assign(_order=block.strategy.map(order)).sort_values(["_order", "profile"], kind="stable")
        rows = rows.assign(run=[model_label(s, p) for s, p in zip(rows.strategy, rows.profile)])
        out[figure_name(dataset, setting)] = rows[["run", "strategy", "profile", "map", "map_ci_low", "map_ci_high"]]
    return out


def loss_curves(loss_root: str | Path, models: list[str], base: str) -> pd.DataFrame:
    """Every trained model's loss per step in one long table (``run`` = strategy/profile/seed), for the overlay plot."""
    frames = []
    for model in models:
        if model == BASE:
            continue
        path = Path(loss_root) / f"{model}.csv"
        stage = stage_of(model, "train", base)
        try:
            log = pd.read_csv(path)
        except FileNotFoundError:
            raise MlretError(f"{path}: file not found.", f"Run `dvc repro {stage}` first.") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise MlretError(
                f"{path}: not a readable CSV file ({err}).",
                f"Delete it and run `dvc repro {stage}`.",
            ) from None
        require_columns(log, LOSS_COLUMNS, path, stage)
        if not all(pd.api.types.is_numeric_dtype(log[c]) for c in LOSS_COLUMNS):
            raise MlretError(
                f"{path}: columns {list(LOSS_COLUMNS)} should hold numbers.",
                f"Delete it and run `dvc repro {stage}`.",
            )
        run = RunId.parse(model, base)
        frames.append(
            log[list(LOSS_COLUMNS)].assign(run=model, strategy=run.strategy, profile=run.profile, seed=run.seed)
        )
    columns = ["run", "strategy", "profile", "seed", *LOSS_COLUMNS]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def pool_labels(eval_metrics_root: str | Path, datasets: list[str], base: str) -> dict[str, str]:
    """Each dataset's candidate pool as the evaluate stage labelled it (in-domain test articles, or full, zero-shot)."""
    path = Path(eval_metrics_root) / f"{BASE}.json"
    metrics = read_json(path)
    if not isinstance(metrics, dict):
        raise MlretError(
            f"{path}: expected a JSON object keyed by dataset, found a {type(metrics).__name__}.",
            f"Re-run the evaluate stages (`dvc repro {stage_of(BASE, 'evaluate', base)}`).",
        )
    missing = [d for d in datasets if "pool" not in metrics.get(d, {})]
    if missing:
        raise MlretError(
            f"{path}: no `pool` label for {missing}.",
            f"Re-run the evaluate stages (`dvc repro {stage_of(BASE, 'evaluate', base)}`).",
        )
    return {d: metrics[d]["pool"] for d in datasets}


def question_articles(parallel_root: str | Path, datasets: list[str]) -> dict[str, dict[str, int]]:
    """qid -> article per dataset: the coarser resampling unit of the robustness sensitivity check."""
    out = {}
    for dataset in datasets:
        questions = read_table(Path(parallel_root) / dataset / "questions.parquet", ["qid", "article"], "parallelise")
        out[dataset] = dict(zip(questions.qid, questions.article.astype(int)))
    return out


def exposure_table(train_metrics_root: str | Path, models: list[str], params: Params, base: str) -> pd.DataFrame:
    """Realised exposure of every trained run: each language's share of pair sides, and its profile's fraction.

    Read from the `train` stage's metrics, so that a reader sees what a run actually trained on
    (with ``train.schedule: quota`` the shares are fixed by the profile, not by the seed). A run
    records the languages it showed; a language some other run of the base showed and this one
    never did (absent from its profile, or too rare for its batches) gets a row with share 0.
    """
    shares: dict[str, dict[str, float]] = {}
    kinds: dict[str, str] = {}
    for model in models:
        path = Path(train_metrics_root) / f"{model}.json"
        metrics = read_json(path)
        if "language_share" not in metrics:
            raise MlretError(f"{path}: no `language_share`.", f"Re-run `dvc repro {stage_of(model, 'train', base)}`.")
        shares[model] = dict(metrics["language_share"])
        kinds[model] = str(metrics.get("batch_kinds", {}))
    languages = sorted({lang for shown in shares.values() for lang in shown})
    rows = []
    for model, shown in shares.items():
        run = RunId.parse(model, base)
        for lang in languages:
            rows.append(
                {
                    "strategy": run.strategy,
                    "profile": run.profile,
                    "seed": run.seed,
                    "lang": lang,
                    "share": float(shown.get(lang, 0.0)),
                    "fraction_kept": params.profiles[run.profile].fraction(lang),
                    "batch_kinds": kinds[model],
                }
            )
    return pd.DataFrame(rows, columns=["strategy", "profile", "seed", "lang", "share", "fraction_kept", "batch_kinds"])


def finite_or_null(value: object) -> object:
    """``value`` with every NaN or infinity replaced by None, keys untouched.

    A contrast without an interval has NaN bounds; JSON has no NaN, and a metrics file holding
    one is rejected by strict readers, while null keeps the key for `dvc metrics diff`.
    """
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _csv(frame: pd.DataFrame) -> bytes:
    """Six significant digits: enough for every reported number, stable under float noise in diffs."""
    return frame.to_csv(index=False, float_format="%.6g").encode("utf-8")


def evaluated_datasets(params: Params) -> dict[str, list[str]]:
    """Each model of the grid (base first) and the datasets its `evaluate` stage scored."""
    scored = {BASE: list(params.data.eval_sources)}
    for run in params.runs:
        scored[run.name] = list(params.data.eval_sources) if run.corpora is Corpora.ALL else [params.data.train_source]
    return scored


@dataclass(frozen=True)
class BaseReport:
    """One base model's share of the report: its tables (combined across bases by the caller) and summary."""

    tables: dict[str, pd.DataFrame]
    summary: str
    pools: dict[str, str]
    losses: pd.DataFrame
    map_bars: dict[str, pd.DataFrame]
    metrics: dict[str, object]


def base_report(
    params: Params,
    base: str,
    *,
    grid_path: str | Path,
    eval_root: Path,
    eval_metrics_root: Path,
    train_metrics_root: Path,
    parallel_root: str | Path,
    loss_root: Path,
    out_dir: Path,
    figures_dir: Path,
) -> BaseReport:
    """``base``'s tables and cards under ``out_dir``, its figures under ``figures_dir``, from its folders
    under each root.

    ``params`` holds this base's runs only, so that every table and test below compares
    strategies fine-tuned from the same encoder.
    """
    scored = evaluated_datasets(params)
    models = list(scored)
    results = load_results(eval_root, models, scored)
    losses = loss_curves(loss_root, models, base)
    table = results_table(results, headline=params.sampling)
    low = low_resource_languages(params, results.query_lang)
    fractions = {
        name: {lang: profile.fraction(lang) for lang in set(results.query_lang)}
        for name, profile in params.profiles.items()
    }
    articles = question_articles(parallel_root, params.data.eval_sources)
    exposure = exposure_table(train_metrics_root, [m for m in models if m != BASE], params, base)
    robustness_by_unit = robustness_tables(
        results,
        low,
        fractions,
        params.sampling,
        articles,
        primary_scope=params.report.scope_of(base),
        exposure=exposure,
    )
    robustness, by_article = robustness_by_unit["question"], robustness_by_unit["article"]
    pools = pool_labels(eval_metrics_root, sorted(set(results.dataset)), base)
    severities = {name: sorted({fractions[name][lang] for lang in langs}) for name, langs in low.items()}
    grid = read_grid(grid_path, base)
    # The grid first: a strategy or profile missing from a table is absent from the grid, never dropped.
    write_bytes(
        out_dir / "results.md",
        (f"# Results\n\n{grid_line(grid)}\n\n" + results_markdown(table, params.sampling, pools)).encode("utf-8"),
    )
    summary = summary_markdown(table, robustness, by_article, exposure, params.sampling, pools, grid, severities)
    write_paper_tables(
        results,
        table,
        out_dir,
        train_source=params.data.train_source,
        strategies=params.strategies,
        profiles=list(params.profiles),
        models=models,
        metrics_root=eval_metrics_root,
        beir=list(params.eval.beir),
        headline=params.sampling,
    )
    with staged_dir(out_dir / "cards") as cards:
        for model, card in model_cards(
            eval_metrics_root, models, params.model(base).name, sorted(set(results.query_lang))
        ).items():
            write_bytes(cards / f"{model}.md", card.encode("utf-8"))
    figures_dir.mkdir(parents=True, exist_ok=True)
    pair_heatmaps(results, figures_dir, params.strategies)
    strategy_bars(table, figures_dir, params.strategies)
    rank_distance_bars(table, figures_dir, params.strategies)
    robustness_curves(robustness, figures_dir, params.strategies)
    loss_curves_figure(losses, figures_dir)
    return BaseReport(
        tables={
            "results": table,
            "robustness": robustness,
            "robustness_by_article": by_article,
            "exposure": exposure,
        },
        summary=summary,
        pools=pools,
        losses=losses,
        map_bars=map_bars_data(table, params.strategies),
        metrics={
            "headline": headline_metrics(table, params.sampling),
            "robustness": finite_or_null(headline_contrasts(robustness)),
        },
    )


def combined_summary(params: Params, reports: Mapping[str, BaseReport], interaction: pd.DataFrame) -> str:
    """One page for every base: each base's answer in one sentence, whether it depends on the base, then each
    base's summary under a heading naming it, its headings one level down."""
    parts = ["# Summary", ""]
    parts += [
        "One section per base model; each compares strategies fine-tuned from that base only. "
        + "; ".join(f"`{base}`: `{params.bases[base].name}`" for base in reports)
        + ".",
        "",
        "## Answer per base",
        "",
        f"The primary contrast with a language absent from training, on {params.data.train_source} (each base's "
        "primary scope; its section defines the estimand):",
        "",
    ]
    parts += [
        answer_sentence(base, r.tables["robustness"], params.sampling, params.data.train_source, pools=r.pools)
        for base, r in reports.items()
    ]
    scopes = {base: primary_scope_of(r.tables["robustness"]) for base, r in reports.items()}
    found = interaction_lines(interaction, scopes)
    if found:
        parts += [
            "",
            "**Base × strategy.** The contrast on a base minus the same contrast on the first base "
            f"(`{next(iter(reports))}`), in the former's primary scope; above 0, {params.sampling}'s drop relative "
            f"to {COMPARATOR}'s is larger on that base (interval: the two bases' intervals combined as if "
            "independent, which can only widen it):",
            "",
            *found,
        ]
    parts.append("")
    for base, summary in ((b, r.summary) for b, r in reports.items()):
        body = summary.split("\n", 1)[1] if summary.startswith("# ") else summary
        lines = [f"#{line}" if line.startswith("#") else line for line in body.splitlines()]
        parts += [f"## Base `{base}` (`{params.bases[base].name}`)", *lines, ""]
    return "\n".join(parts).rstrip("\n") + "\n"


def _with_base(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The tables of every base stacked, a ``base`` column first."""
    return pd.concat(
        [frame.assign(base=base)[["base", *frame.columns]] for base, frame in frames.items()], ignore_index=True
    )


def build_report(
    params: Params,
    *,
    grid_path: str | Path,
    eval_root: str | Path,
    eval_metrics_root: str | Path,
    train_metrics_root: str | Path,
    parallel_root: str | Path,
    loss_root: str | Path,
    out_dir: str | Path,
    metrics_path: str | Path,
    plots_dir: str | Path,
) -> None:
    """Every output of the `report` stage, at the paths dvc.yaml gives its script.

    Each base model's folders (``{root}/{base}``) make its own tables and cards
    (``reports/bases/{base}``) and figures (``reports/figures/{base}``); the tables a reader
    compares across bases (results, robustness, exposure) and the summary hold every base, the CSV
    files with a ``base`` column.
    """
    out_dir = Path(out_dir)
    reports: dict[str, BaseReport] = {}
    with staged_dir(out_dir / "bases") as bases_dir, staged_dir(out_dir / "figures") as figures_dir:
        for base in params.bases:
            reports[base] = base_report(
                dataclasses.replace(params, runs=params.runs_of(base)),
                base,
                grid_path=grid_path,
                eval_root=Path(eval_root) / base,
                eval_metrics_root=Path(eval_metrics_root) / base,
                train_metrics_root=Path(train_metrics_root) / base,
                parallel_root=parallel_root,
                loss_root=Path(loss_root) / base,
                out_dir=bases_dir / base,
                figures_dir=figures_dir / base,
            )
    for name in ("results", "robustness", "robustness_by_article", "exposure"):
        write_bytes(out_dir / f"{name}.csv", _csv(_with_base({b: r.tables[name] for b, r in reports.items()})))
    interaction = interaction_table({b: r.tables["robustness"] for b, r in reports.items()})
    write_bytes(out_dir / "interaction.csv", _csv(interaction))
    summary = combined_summary(params, reports, interaction)
    write_bytes(out_dir / "summary.md", summary.encode("utf-8"))
    # Data behind `dvc plots show/diff` (definitions in dvc.yaml's top-level `plots:`).
    with staged_dir(plots_dir) as plots:
        for base, report in reports.items():
            for stem, rows in report.map_bars.items():
                write_bytes(plots / "map" / f"{base}-{stem}.csv", _csv(rows))
        losses = pd.concat(
            [r.losses.assign(run=base + "/" + r.losses.run) for base, r in reports.items()], ignore_index=True
        )
        write_bytes(plots / "train-loss.csv", _csv(losses))
    write_json(
        metrics_path,
        {section: {base: report.metrics[section] for base, report in reports.items()} for section in METRICS_SECTIONS},
    )
