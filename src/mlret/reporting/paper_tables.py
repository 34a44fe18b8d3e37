"""Tables for a paper: the compact main table (Markdown and LaTeX), per-language and X→Y mAP,
the remaining rank metrics, and the BEIR benchmarks.

No number is averaged here in a new way. mAP and rank distance come from
:func:`mlret.reporting.tables.results_table` (the numbers of ``results.md``); the X→Y and
per-language values from :func:`mlret.reporting.collect.pair_map`; the other rank metrics from
:func:`mlret.scoring.measures.macro_mean`, the function the `evaluate` stage summarises with, per
model and then averaged over seeds as ``results_table`` does; BEIR from the `evaluate` stage's own
metrics files. Every trained row is seed-averaged; ``seeds`` says over how many.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlret.artifacts import read_json, staged_dir, write_bytes
from mlret.errors import MlretError
from mlret.reporting.collect import pair_map
from mlret.reporting.markdown import markdown_table
from mlret.reporting.wording import dataset_label
from mlret.scoring.measures import macro_mean
from mlret.vocabulary import ALPHA, BASE, Setting, model_fields, model_label

#: The one pool the paper tables name: the zero-shot datasets' full pools go without saying.
IN_DOMAIN = "in-domain test articles"
RANK_DISTANCE = "rank dist."  # the one main-table column where lower is better
SEEDS = "seeds"  # per dataset in the main table: XQuAD-R rows may average 3 seeds where MLQA-R rows have 1
#: Rank metrics beside mAP: per-query column -> header. Same-language share exists in ``multi`` only.
EXTRA_METRICS = {
    "mrr@10": "MRR@10",
    "recall@1": "R@1",
    "recall@100": "R@100",
    "ndcg@10": "nDCG@10",
    "same_language_top10": "same-lang.@10",
}
BEIR_METRICS = {"ndcg@10": "nDCG@10", "recall@100": "R@100"}
MODEL_KEY = ["strategy", "profile"]


def _dataset_label(dataset: str, train_source: str) -> str:
    """The training source is scored on its held-out test articles: in-domain, unlike every other dataset."""
    return dataset_label(dataset, {train_source: IN_DOMAIN})


def _model_order(frame: pd.DataFrame, strategies: Sequence[str], profiles: Sequence[str]) -> pd.DataFrame:
    """Base first, then profile by profile (as params.yaml lists them), strategies in params.yaml order."""
    s_rank = {s: i for i, s in enumerate([BASE, *strategies])}
    p_rank = {p: i for i, p in enumerate(profiles)}
    keys = pd.DataFrame(
        {
            "_base": (frame.strategy != BASE).astype(int),
            "_profile": frame.profile.map(lambda p: p_rank.get(p, len(p_rank))),
            "_strategy": frame.strategy.map(lambda s: s_rank.get(s, len(s_rank))),
        },
        index=frame.index,
    )
    order = keys.sort_values(["_base", "_profile", "_strategy"], kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def _datasets(datasets: Collection[str], train_source: str) -> list[str]:
    return sorted(datasets, key=lambda d: (d != train_source, d))


def _in_table_order(frame: pd.DataFrame, strategies: Sequence[str], profiles: Sequence[str]) -> pd.DataFrame:
    """Rows by dataset, then setting (mono, cross, multi), then model (:func:`_model_order`)."""
    out = _model_order(frame, strategies, profiles)
    out["_setting"] = out.setting.map({s.value: i for i, s in enumerate(Setting)})
    return out.sort_values(["dataset", "_setting"], kind="stable").drop(columns="_setting").reset_index(drop=True)


def _blocks(frame: pd.DataFrame, train_source: str) -> Iterator[tuple[str, Setting, pd.DataFrame]]:
    """``(dataset, setting, rows)`` for each dataset (the training source first) and setting that has rows."""
    for dataset in _datasets(frame.dataset.unique(), train_source):
        for setting in Setting:
            block = frame[(frame.dataset == dataset) & (frame.setting == setting)]
            if not block.empty:
                yield dataset, setting, block


def _best(frame: pd.DataFrame, lower_is_better: Collection[object] = ()) -> pd.DataFrame:
    """Per column, the cells equal to its best value: the same cells are bold in Markdown and LaTeX."""
    best = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for column in frame.columns:
        values = frame[column].astype(float)
        if values.notna().any():
            target = values.min() if column in lower_is_better else values.max()
            best[column] = values == target
    return best


def _markdown(frame: pd.DataFrame, best: pd.DataFrame, formats: dict[object, str], header: Sequence[str]) -> str:
    rows = []
    for label, row in frame.iterrows():
        cells = [str(label)]
        for column, value in row.items():
            text = "" if pd.isna(value) else format(value, formats.get(column, ".3f"))
            cells.append(f"**{text}**" if best.at[label, column] else text)
        rows.append(cells)
    return "\n".join(markdown_table(header, rows)) + "\n"


# --- The main table ---------------------------------------------------------------------------


def main_table(
    table: pd.DataFrame, results: pd.DataFrame, train_source: str, strategies: Sequence[str], profiles: Sequence[str]
) -> pd.DataFrame:
    """One row per model (strategy/profile), columns (dataset, setting) mAP in mono-cross-multi order,
    then each dataset's multilingual-pool rank distance, both from :func:`results_table`."""
    rows = _model_order(table[MODEL_KEY].drop_duplicates(), strategies, profiles)
    out = pd.DataFrame(index=pd.Index([model_label(s, p) for s, p in zip(rows.strategy, rows.profile)], name="model"))
    labelled = table.assign(model=[model_label(s, p) for s, p in zip(table.strategy, table.profile)])
    for dataset in _datasets(table.dataset.unique(), train_source):
        block = labelled[labelled.dataset == dataset]
        label = _dataset_label(dataset, train_source)
        out[(label, SEEDS)] = block.groupby("model").seeds.max()
        for setting in [s.value for s in Setting if s in set(block.setting)]:
            out[(label, setting)] = block[block.setting == setting].set_index("model")["map"]
        multi = block[block.setting == Setting.MULTI]
        if "rank_distance" in multi and multi.rank_distance.notna().any():
            out[(label, RANK_DISTANCE)] = multi.set_index("model").rank_distance
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["dataset", ""])
    return out


def _lower_is_better(columns: pd.Index) -> list[object]:
    return [c for c in columns if c[1] == RANK_DISTANCE]


def holm_bold(main: pd.DataFrame, table: pd.DataFrame, headline: str | None, train_source: str) -> pd.DataFrame:
    """The cells to bold: a column's best mAP, only where the Holm-adjusted test separates it (p < :data:`ALPHA`).

    The results table tests the headline strategy against each other strategy on the same profile.
    So a best row of the headline is bold when every strategy it is compared with there is worse
    with Holm p < ALPHA; a best row of another strategy when it beats the headline there with Holm
    p < ALPHA. The base model and the rank distance have no test, and are never bold.
    """
    bold = pd.DataFrame(False, index=main.index, columns=main.columns)
    if headline is None:
        return bold
    rows = table[table.strategy != BASE].assign(
        label=[_dataset_label(d, train_source) for d in table[table.strategy != BASE].dataset]
    )
    models = {model_label(s, p): (s, p) for s, p in zip(rows.strategy, rows.profile)}
    for column in main.columns:
        label, setting = column
        values = main[column].astype(float)
        if setting not in set(Setting) or values.isna().all() or values.idxmax() == BASE:
            continue
        best = str(values.idxmax())
        strategy, profile = models[best]
        tested = rows[(rows.label == label) & (rows.setting == setting) & (rows.profile == profile)]
        if strategy == headline:
            others = tested[tested.strategy != headline]
            separated = len(others) > 0 and bool(
                ((others.p_vs_headline_holm < ALPHA) & (others.delta_vs_headline > 0)).all()
            )
        else:
            mine = tested[tested.strategy == strategy]
            separated = len(mine) == 1 and bool(
                mine.p_vs_headline_holm.iloc[0] < ALPHA and mine.delta_vs_headline.iloc[0] < 0
            )
        bold.at[best, column] = separated
    return bold


def _formats(main: pd.DataFrame) -> dict[object, str]:
    return {**{c: ".1f" for c in _lower_is_better(main.columns)}, **{c: ".0f" for c in main.columns if c[1] == SEEDS}}


def main_markdown(main: pd.DataFrame, bold: pd.DataFrame | None = None) -> str:
    """The main table; ``bold`` (:func:`holm_bold`) marks cells, none by default."""
    header = ["model", *(f"{d} {s}" for d, s in main.columns)]
    return _markdown(
        main,
        pd.DataFrame(False, index=main.index, columns=main.columns) if bold is None else bold,
        _formats(main),
        header,
    )


def main_caption(train_source: str) -> str:
    return (
        f"mAP over each dataset's candidate pool: for {train_source}, the training source, its in-domain test articles "
        "(the other articles are trained on); for every other dataset the full LAReQA pool, zero-shot. Macro over "
        "(query, pool) language pairs, mean over the seeds counted in `seeds`; rank dist.: LAReQA rank distance in "
        "the multilingual pool (lower is better). Bold: a column's best mAP where the Holm-adjusted sign-flip test (p "
        f"< {ALPHA:g}) separates it from the strategies it is compared with on its profile; no other cell is bold."
    )


def main_latex(main: pd.DataFrame, bold: pd.DataFrame | None = None, caption: str = "") -> str:
    """booktabs LaTeX from pandas' own writer, the cells of ``bold`` in bold (the cells bold in Markdown)."""
    lower = _lower_is_better(main.columns)
    seeds = [c for c in main.columns if c[1] == SEEDS]
    marks = np.zeros(main.shape, dtype=bool) if bold is None else bold.to_numpy()
    # Unnamed axes: pandas would give each name a header row of its own.
    styler = (
        main.rename_axis(index=None, columns=[None, None])
        .style.format(precision=3, na_rep="--")
        .format(precision=1, na_rep="--", subset=lower)
    )
    styler = styler.format(precision=0, na_rep="--", subset=seeds)
    styler = styler.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    styler = styler.apply(lambda _: np.where(marks, "textbf:--rwrap;", ""), axis=None)
    return styler.to_latex(
        hrules=True,
        multicol_align="c",
        column_format="l" + "r" * main.shape[1],
        caption=caption or None,
        label="tab:main",
    )


# --- Per language and X→Y --------------------------------------------------------------------


def per_language_table(results: pd.DataFrame, strategies: Sequence[str], profiles: Sequence[str]) -> pd.DataFrame:
    """mAP per query language: the mean of :func:`pair_map` over that language's pairs (seeds included)."""
    pairs = pair_map(results, by=["dataset", "setting", *MODEL_KEY]).rename("map").reset_index()
    keys = ["dataset", "setting", *MODEL_KEY, "query_lang"]
    out = pairs.groupby(keys, sort=False).agg(map=("map", "mean"), pairs=("pool_lang", "size")).reset_index()
    return _in_table_order(out, strategies, profiles)


def per_language_markdown(per_language: pd.DataFrame, train_source: str) -> str:
    intro = (
        "Mean over the query language's (query, pool) pairs; seeds averaged. Bold: the largest value of each column, "
        "with no test behind it (the tested comparisons are in results.md and main.md)."
    )
    return _page("mAP per query language", intro, per_language, train_source, _per_language_block)


def _per_language_block(block: pd.DataFrame) -> str:
    wide = block.assign(model=[model_label(s, p) for s, p in zip(block.strategy, block.profile)])
    wide = wide.pivot(index="model", columns="query_lang", values="map").reindex(index=list(dict.fromkeys(wide.model)))
    return _markdown(wide, _best(wide), {}, ["model", *wide.columns])


def _page(title: str, intro: str, frame: pd.DataFrame, train_source: str, render: Callable[[pd.DataFrame], str]) -> str:
    """A Markdown page: title, intro, then one section per dataset × setting holding ``render(rows)``."""
    parts = [f"# {title}", "", intro, ""]
    for dataset, setting, block in _blocks(frame, train_source):
        parts += [f"## {_dataset_label(dataset, train_source)} — {setting}", "", render(block)]
    return "\n".join(parts)


def pair_tables(results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """File stem ``{dataset}-{strategy}-{profile}`` (``{dataset}-base``) -> X→Y mAP matrix: query
    languages as rows, pool languages as columns, mono on the diagonal, seeds averaged."""
    out = {}
    pairs = results[results.setting.isin([Setting.MONO.value, Setting.CROSS.value])]
    for (dataset, strategy, profile), group in pairs.groupby(["dataset", *MODEL_KEY], sort=True):
        stem = "-".join([dataset, BASE] if strategy == BASE else [dataset, strategy, profile])
        out[stem] = pair_map(group).unstack("pool_lang")
    return out


# --- Rank metrics beside mAP -------------------------------------------------------------------


def setting_means(results: pd.DataFrame, column: str) -> pd.Series:
    """Per dataset × setting × model: each seed's setting average as `evaluate` summarises it
    (:func:`macro_mean` over query/pool pairs, queries where the metric is undefined left out, as
    for rank distance), then the mean over seeds. NaN where no query of the setting has a value."""
    out = {}
    for key, group in results.groupby(["dataset", "setting", *MODEL_KEY], sort=True):
        defined = group[group[column].notna()]
        per_seed = [
            macro_mean(s[column].to_numpy(), [s.query_lang.to_numpy(), s.pool_lang.to_numpy()])
            for _, s in defined.groupby("seed")
        ]
        out[key] = float(np.mean(per_seed)) if per_seed else np.nan
    return pd.Series(out, name=column, dtype=float).rename_axis(["dataset", "setting", *MODEL_KEY])


def metrics_table(results: pd.DataFrame, strategies: Sequence[str], profiles: Sequence[str]) -> pd.DataFrame:
    """:data:`EXTRA_METRICS` per dataset × setting × model (:func:`setting_means`), with the number of seeds."""
    seeds = results.groupby(["dataset", "setting", *MODEL_KEY], sort=True).seed.nunique().rename("seeds")
    out = pd.concat([seeds, *(setting_means(results, column) for column in EXTRA_METRICS)], axis=1).reset_index()
    return _in_table_order(out, strategies, profiles)


def metrics_markdown(metrics: pd.DataFrame, train_source: str) -> str:
    intro = (
        "Macro over (query, pool) language pairs as `metrics/eval` reports them, mean over seeds. same-lang.@10: "
        "share of the top 10 in the query's language (multilingual pool only). Bold: the largest value of each "
        "column, with no test behind it (the tested comparisons are in results.md and main.md)."
    )
    return _page("Rank metrics beside mAP", intro, metrics, train_source, _metrics_block)


def _metrics_block(block: pd.DataFrame) -> str:
    names = [c for c in EXTRA_METRICS if block[c].notna().any()]
    wide = block.set_index(pd.Index([model_label(s, p) for s, p in zip(block.strategy, block.profile)]))[names]
    # A higher same-language share is more language bias, not better retrieval: never bold.
    best = _best(wide).assign(**({"same_language_top10": False} if "same_language_top10" in names else {}))
    return _markdown(wide, best, {}, ["model", *(EXTRA_METRICS[n] for n in names)])


# --- BEIR --------------------------------------------------------------------------------------


def beir_table(
    metrics_root: str | Path,
    models: Sequence[str],
    benchmarks: Collection[str],
    strategies: Sequence[str],
    profiles: Sequence[str],
) -> pd.DataFrame:
    """nDCG@10 and Recall@100 per benchmark × language × model, read from ``metrics_root/{model}.json``
    (the `evaluate` stage's ``beir-{name}`` entries), seeds averaged."""
    rows = []
    for model in models:
        path = Path(metrics_root) / f"{model}.json"
        metrics = read_json(path)
        strategy, profile, _ = model_fields(model)
        for name in benchmarks:
            entry = metrics.get(f"beir-{name}") if isinstance(metrics, dict) else None
            if not isinstance(entry, dict) or not entry:
                raise MlretError(
                    f"{path}: no scores for BEIR benchmark {name!r} (key 'beir-{name}').",
                    f"It was scored before eval.beir named it: run `dvc repro` to re-evaluate {model}.",
                )
            for lang, values in entry.items():
                missing = [m for m in BEIR_METRICS if not isinstance(values, dict) or m not in values]
                if missing:
                    raise MlretError(
                        f"{path}: beir-{name}/{lang} lacks {missing}.",
                        f"The file is from an older version: run `dvc repro` to re-evaluate {model}.",
                    )
                rows.append(
                    {
                        "benchmark": name,
                        "language": lang,
                        "strategy": strategy,
                        "profile": profile,
                        **{m: float(values[m]) for m in BEIR_METRICS},
                    }
                )
    columns = ["benchmark", "language", "strategy", "profile", "seeds", *BEIR_METRICS]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    out = (
        frame.groupby(["benchmark", "language", *MODEL_KEY], sort=False)
        .agg(seeds=("ndcg@10", "size"), **{m: (m, "mean") for m in BEIR_METRICS})
        .reset_index()
    )
    out = _model_order(out, strategies, profiles)
    return out.sort_values(["benchmark", "language"], kind="stable").reset_index(drop=True)[columns]


def beir_markdown(beir: pd.DataFrame) -> str:
    parts = [
        "# BEIR benchmarks",
        "",
        "Monolingual retrieval per language, scored as BEIR does; seeds averaged. Bold: the largest value of each "
        "column, with no test behind it (the tested comparisons are in results.md and main.md).",
        "",
    ]
    for benchmark, block in beir.groupby("benchmark", sort=True):
        for metric, header in BEIR_METRICS.items():
            wide = block.assign(model=[model_label(s, p) for s, p in zip(block.strategy, block.profile)])
            wide = wide.pivot(index="model", columns="language", values=metric).reindex(
                index=list(dict.fromkeys(wide.model))
            )
            parts += [f"## {benchmark} — {header}", "", _markdown(wide, _best(wide), {}, ["model", *wide.columns])]
    return "\n".join(parts)


# --- Writing -----------------------------------------------------------------------------------


def _csv(frame: pd.DataFrame, index: bool = False) -> bytes:
    return frame.to_csv(index=index, float_format="%.6g").encode("utf-8")


def write_paper_tables(
    results: pd.DataFrame,
    table: pd.DataFrame,
    out_dir: str | Path,
    *,
    train_source: str,
    strategies: Sequence[str],
    profiles: Sequence[str],
    models: Sequence[str] = (),
    metrics_root: str | Path | None = None,
    beir: Collection[str] = (),
    headline: str | None = None,
) -> None:
    """``main.md``/``main.tex``, ``per_language.*``, ``pairs/``, ``metrics.*`` and, for the benchmarks
    named in ``beir`` (eval.beir), ``beir.*`` read from ``metrics_root`` (metrics/eval)."""
    out_dir = Path(out_dir)
    main = main_table(table, results, train_source, strategies, profiles)
    bold = holm_bold(main, table, headline, train_source)
    caption = main_caption(train_source)
    write_bytes(out_dir / "main.md", (f"{caption}\n\n" + main_markdown(main, bold)).encode("utf-8"))
    write_bytes(out_dir / "main.tex", main_latex(main, bold, caption).encode("utf-8"))
    per_language = per_language_table(results, strategies, profiles)
    write_bytes(out_dir / "per_language.csv", _csv(per_language))
    write_bytes(out_dir / "per_language.md", per_language_markdown(per_language, train_source).encode("utf-8"))
    with staged_dir(out_dir / "pairs") as pairs:
        for stem, matrix in pair_tables(results).items():
            write_bytes(pairs / f"{stem}.csv", _csv(matrix, index=True))
    metrics = metrics_table(results, strategies, profiles)
    write_bytes(out_dir / "metrics.csv", _csv(metrics))
    write_bytes(out_dir / "metrics.md", metrics_markdown(metrics, train_source).encode("utf-8"))
    if beir:
        if metrics_root is None:
            raise MlretError(
                f"BEIR benchmarks {sorted(beir)} are configured (eval.beir) but the report was not given the "
                "evaluation metrics folder.",
                "Pass metrics/eval to the report stage (its command and deps in dvc.yaml).",
            )
        scores = beir_table(metrics_root, models, beir, strategies, profiles)
        write_bytes(out_dir / "beir.csv", _csv(scores))
        write_bytes(out_dir / "beir.md", beir_markdown(scores).encode("utf-8"))
