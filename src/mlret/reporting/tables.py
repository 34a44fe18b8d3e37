"""The comparison tables: strategy × profile × dataset × setting, with honest uncertainty.

A query row is one question asked in one (query language, pool language) pair; the rows of one
question (``qid``) are translations of it against translated pools, so their scores move
together. Every interval and test here therefore resamples or flips whole questions (see
:mod:`mlret.reporting.stats`), never rows one by one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlret.reporting.markdown import markdown_table
from mlret.reporting.stats import (
    CLUSTER_RESAMPLES,
    CONFIDENCE,
    PERMUTATION_RESAMPLES,
    cluster_bootstrap_interval,
    cluster_permutation_pvalue,
    holm,
    two_level_bootstrap_contrast,
    weighted_mean,
)
from mlret.reporting.wording import at_floor, dataset_label
from mlret.scoring.measures import macro_weights
from mlret.vocabulary import BASE, Setting

#: Reported metric -> per-query column. Rank distance is reported for the multilingual setting only.
METRICS = {"map": "ap", "recall@10": "recall@10", "ndcg@10": "ndcg@10", "rank_distance": "rank_distance"}
LOWER_IS_BETTER = {"rank_distance"}
QUERY_KEY = ["query_lang", "pool_lang", "qid"]
CLUSTER = "qid"  # the resampling unit: every language row of a question moves together
_NO_TEST = {
    "p_vs_headline": np.nan,
    "delta_vs_headline": np.nan,
    "delta_vs_headline_ci_low": np.nan,
    "delta_vs_headline_ci_high": np.nan,
}


def _defined(group: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows where ``column`` is defined, re-weighted by the evaluate stage's macro rule.

    A metric can be undefined for some queries (rank distance needs two relevant answers), and a
    pair can lose all of its queries. The macro average then runs over the defined queries of each
    pair and over the pairs that keep one (:func:`mlret.scoring.measures.macro_weights`, per seed);
    where every row is defined these are the weights of ``load_results``.
    """
    rows = group[group[column].notna()]
    if rows.empty:
        return rows.assign(weight=np.array([], dtype=np.float64))
    pair = [rows.query_lang.to_numpy(), rows.pool_lang.to_numpy()]
    return rows.assign(weight=macro_weights(pair, within=[rows.seed.to_numpy()]))


def _seed_average(defined: pd.DataFrame, column: str) -> pd.DataFrame:
    """Seed-averaged value per query row of :func:`_defined` rows, with its weight (identical across seeds)."""
    return defined.groupby(QUERY_KEY).agg(value=(column, "mean"), weight=("weight", "first"))


def _per_query(group: pd.DataFrame, column: str) -> pd.DataFrame:
    return _seed_average(_defined(group, column), column)


def _by_seed(group: pd.DataFrame, column: str) -> pd.DataFrame:
    """One column per seed, one row per query row (``QUERY_KEY``) defined in every seed.

    Rows are matched by key, not by position, so seeds whose files list queries in different
    orders, or groups with different numbers of seeds, still line up query by query.
    """
    return group.set_index([*QUERY_KEY, "seed"])[column].unstack("seed").dropna(how="any")


def _interval(q: pd.DataFrame) -> tuple[float, float]:
    """Bootstrap interval of the weighted mean of seed-averaged values, drawing whole questions."""
    if q.empty:
        return np.nan, np.nan
    return cluster_bootstrap_interval(
        q.value.to_numpy(), q.weight.to_numpy(), q.index.get_level_values(CLUSTER).to_numpy()
    )


def results_table(results: pd.DataFrame, headline: str) -> pd.DataFrame:
    """One row per dataset × setting × strategy × profile; base model first in each block."""
    rows = []
    for (dataset, setting), block in results.groupby(["dataset", "setting"], sort=True):
        for (strategy, profile), group in block.groupby(["strategy", "profile"], sort=False):
            row: dict[str, object] = {
                "dataset": dataset,
                "setting": setting,
                "strategy": strategy,
                "profile": profile,
                "seeds": group.seed.nunique(),
            }
            for name, column in METRICS.items():
                if name == "rank_distance" and setting != Setting.MULTI:
                    continue
                defined = _defined(group, column)
                per_seed = [
                    weighted_mean(s[column].to_numpy(), s.weight.to_numpy()) for _, s in defined.groupby("seed")
                ]
                row[name] = float(np.mean(per_seed)) if per_seed else np.nan
                row[f"{name}_seed_sd"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else np.nan
                row[f"{name}_ci_low"], row[f"{name}_ci_high"] = _interval(_seed_average(defined, column))
            row.update(_versus(block, strategy, profile, headline))
            rows.append(row)
    table = pd.DataFrame(rows)
    table["p_vs_headline_holm"] = np.nan
    tested = table.p_vs_headline.notna()
    table.loc[tested, "p_vs_headline_holm"] = holm(table.loc[tested, "p_vs_headline"].tolist())
    order = {BASE: 0}
    table["_base_first"] = table.strategy.map(lambda s: order.get(s, 1))
    return (
        table.sort_values(["dataset", "setting", "_base_first", "profile", "strategy"], kind="stable")
        .drop(columns="_base_first")
        .reset_index(drop=True)
    )


def _versus(block: pd.DataFrame, strategy: str, profile: str, headline: str) -> dict[str, float]:
    """The headline strategy against this row on the same queries (mAP), same profile.

    delta: weighted mean over common query rows of headline minus row, each seed-averaged (the
    difference of the two table cells when both define every row). p: two-sided sign-flip test
    flipping whole questions. Interval: two-level bootstrap (each strategy's seeds redrawn, then
    questions drawn once for both) on the rows defined in every seed of both, so the spread
    between training runs enters as well as the choice of questions.
    """
    if strategy in (BASE, headline):
        return dict(_NO_TEST)
    theirs_rows = block[(block.strategy == headline) & (block.profile == profile)]
    if theirs_rows.empty:
        return dict(_NO_TEST)
    mine_rows = block[(block.strategy == strategy) & (block.profile == profile)]
    joined = _per_query(mine_rows, "ap").join(
        _per_query(theirs_rows, "ap"), how="inner", suffixes=("_mine", "_headline")
    )
    if joined.empty:
        return dict(_NO_TEST)
    a, b, w = joined.value_headline.to_numpy(), joined.value_mine.to_numpy(), joined.weight_mine.to_numpy()
    out = {
        "p_vs_headline": cluster_permutation_pvalue(a, b, w, joined.index.get_level_values(CLUSTER).to_numpy()),
        "delta_vs_headline": weighted_mean(a - b, w),
        "delta_vs_headline_ci_low": np.nan,
        "delta_vs_headline_ci_high": np.nan,
    }
    theirs, mine = _by_seed(theirs_rows, "ap"), _by_seed(mine_rows, "ap")
    common = joined.index[joined.index.isin(theirs.index) & joined.index.isin(mine.index)]
    if len(common):
        contrast = two_level_bootstrap_contrast(
            [theirs.reindex(common).to_numpy().T, mine.reindex(common).to_numpy().T],
            [1.0, -1.0],
            joined.weight_mine.reindex(common).to_numpy(),
            common.get_level_values(CLUSTER).to_numpy(),
        )
        out["delta_vs_headline_ci_low"], out["delta_vs_headline_ci_high"] = contrast.low, contrast.high
    return out


def _cell(row: pd.Series, name: str, best: bool) -> str:
    if name not in row or pd.isna(row[name]):
        return ""
    text = f"{row[name]:.3f} [{row[f'{name}_ci_low']:.3f}, {row[f'{name}_ci_high']:.3f}]"
    if not pd.isna(row.get(f"{name}_seed_sd", np.nan)):
        text += f" ±{row[f'{name}_seed_sd']:.3f}"
    return f"**{text}**" if best else text


def _delta(row: pd.Series) -> str:
    if pd.isna(row.delta_vs_headline):
        return ""
    text = f"{row.delta_vs_headline:+.3f}"
    if not pd.isna(row.get("delta_vs_headline_ci_low", np.nan)):
        text += f" [{row.delta_vs_headline_ci_low:+.3f}, {row.delta_vs_headline_ci_high:+.3f}]"
    return text


def results_markdown(table: pd.DataFrame, headline: str, pools: dict[str, str] | None = None) -> str:
    """One Markdown table per dataset × setting; the best value of each column in bold."""
    level = f"{CONFIDENCE:.0%}"
    tests = int(table.p_vs_headline.notna().sum())
    tested = "test" if tests == 1 else "tests"
    parts = [
        f"Each cell: mean over seeds [{level} percentile bootstrap interval resampling whole questions: every "
        f"language row of a question (qid) is drawn together, {CLUSTER_RESAMPLES:,} resamples] ±seed standard "
        "deviation (when several seeds ran).",
        f"Δ: mAP of `{headline}` minus the row's on the same queries [{level} two-level bootstrap interval: each "
        f"strategy's seeds redrawn, then whole questions drawn once for both, {CLUSTER_RESAMPLES:,} resamples].",
        f"p: two-sided paired sign-flip test of `{headline}` against the row (mAP), flipping whole questions "
        f"({PERMUTATION_RESAMPLES:,} random flips, so never below 1/{PERMUTATION_RESAMPLES + 1:,}; every flip "
        f"enumerated when a block has few questions), Holm-adjusted over the {tests} {tested} of this table (every "
        "dataset and setting); "
        f'"≤" where the test reached that floor, so the true p may be smaller.',
        "Bold: the best value of each column, with no test behind it; Δ and p are the tests.",
        "",
    ]
    for (dataset, setting), block in table.groupby(["dataset", "setting"], sort=True):
        names = [n for n in METRICS if n in block and block[n].notna().any()]
        best = {n: (block[n].min() if n in LOWER_IS_BETTER else block[n].max()) for n in names}
        parts += [f"### {dataset_label(dataset, pools)} — {setting}", ""]
        rows = []
        for _, row in block.iterrows():
            cells = [_cell(row, n, bool(np.isclose(row[n], best[n]))) for n in names]
            p = (
                ""
                if pd.isna(row.p_vs_headline_holm)
                else f"{'≤ ' if at_floor(row.p_vs_headline) else ''}{row.p_vs_headline_holm:.3g}"
            )
            rows.append([f"{row.strategy}", f"{row.profile}", f"{row.seeds}", *cells, _delta(row), p])
        header = ["strategy", "profile", "seeds", *names, f"Δ mAP {headline} − row", "p (Holm)"]
        parts += [*markdown_table(header, rows), ""]
    return "\n".join(parts)
