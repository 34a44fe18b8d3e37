"""The comparison tables: strategy × profile × dataset × setting, with honest uncertainty."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlret.reporting.collect import BASE, pair_map
from mlret.reporting.stats import bootstrap_interval, holm, paired_permutation_pvalue, weighted_mean

#: Reported metric -> per-query column. Rank distance is reported for the multilingual setting only.
METRICS = {"map": "ap", "recall@10": "recall@10", "ndcg@10": "ndcg@10", "rank_distance": "rank_distance"}
LOWER_IS_BETTER = {"rank_distance"}
QUERY_KEY = ["query_lang", "pool_lang", "qid"]


def _defined(group: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows where ``column`` is defined, re-weighted by the evaluate stage's macro rule.

    A metric can be undefined for some queries (rank distance needs two relevant answers), and a
    pair can lose all of its queries. The macro average then runs over the defined queries of each
    pair and over the pairs that keep one, so a row weighs 1 / (such pairs x defined queries in its
    pair), per seed; where every row is defined these are the weights of ``load_results``.
    """
    rows = group[group[column].notna()]
    pair = rows.query_lang.astype(str) + ">" + rows.pool_lang.astype(str)
    in_pair = rows.groupby([rows.seed, pair])[column].transform("size")
    pairs = pair.groupby(rows.seed).transform("nunique")
    return rows.assign(weight=1.0 / (in_pair * pairs))


def _per_query(group: pd.DataFrame, column: str) -> pd.DataFrame:
    """Seed-averaged value per query row, with its weight (identical across seeds)."""
    return _defined(group, column).groupby(QUERY_KEY).agg(value=(column, "mean"), weight=("weight", "first"))


def results_table(results: pd.DataFrame, headline: str) -> pd.DataFrame:
    """One row per dataset × setting × strategy × profile; base model first in each block."""
    rows = []
    for (dataset, setting), block in results.groupby(["dataset", "setting"], sort=True):
        for (strategy, profile), group in block.groupby(["strategy", "profile"], sort=False):
            row: dict[str, object] = {"dataset": dataset, "setting": setting, "strategy": strategy, "profile": profile, "seeds": group.seed.nunique()}
            for name, column in METRICS.items():
                if name == "rank_distance" and setting != "multi":
                    continue
                per_seed = [weighted_mean(s[column].to_numpy(), s.weight.to_numpy()) for _, s in _defined(group, column).groupby("seed")]
                q = _per_query(group, column)
                low, high = bootstrap_interval(q.value.to_numpy(), q.weight.to_numpy())
                row[name] = float(np.mean(per_seed))
                row[f"{name}_seed_sd"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else np.nan
                row[f"{name}_ci_low"], row[f"{name}_ci_high"] = low, high
            row.update(_versus(block, strategy, profile, headline))
            rows.append(row)
    table = pd.DataFrame(rows)
    table["p_vs_headline_holm"] = np.nan
    tested = table.p_vs_headline.notna()
    table.loc[tested, "p_vs_headline_holm"] = holm(table.loc[tested, "p_vs_headline"].tolist())
    order = {BASE: 0}
    table["_base_first"] = table.strategy.map(lambda s: order.get(s, 1))
    return table.sort_values(["dataset", "setting", "_base_first", "profile", "strategy"], kind="stable").drop(columns="_base_first").reset_index(drop=True)


def _versus(block: pd.DataFrame, strategy: str, profile: str, headline: str) -> dict[str, object]:
    """Paired permutation test of the headline strategy against this row, on the same queries (mAP)."""
    if strategy in (BASE, headline):
        return {"p_vs_headline": np.nan, "delta_vs_headline": np.nan}
    other = block[(block.strategy == headline) & (block.profile == profile)]
    if other.empty:
        return {"p_vs_headline": np.nan, "delta_vs_headline": np.nan}
    mine = _per_query(block[(block.strategy == strategy) & (block.profile == profile)], "ap")
    theirs = _per_query(other, "ap")
    joined = mine.join(theirs, how="inner", suffixes=("_mine", "_headline"))
    a, b, w = joined.value_headline.to_numpy(), joined.value_mine.to_numpy(), joined.weight_mine.to_numpy()
    return {"p_vs_headline": paired_permutation_pvalue(a, b, w), "delta_vs_headline": weighted_mean(a - b, w)}


def robustness_table(results: pd.DataFrame, low_resource: dict[str, set[str]], reference: str = "balanced") -> pd.DataFrame:
    """Change in mAP from the reference profile to each imbalanced one, per strategy and dataset,
    separately for language pairs that involve a low-resource language of that profile and for the rest."""
    rows = []
    trained = results[results.strategy != BASE]
    for (dataset, strategy), group in trained.groupby(["dataset", "strategy"], sort=True):
        ref = group[group.profile == reference]
        if ref.empty:
            continue
        ref_pairs = pair_map(ref, by=["setting"])
        for profile, low in low_resource.items():
            if profile == reference:
                continue
            mine = group[group.profile == profile]
            if mine.empty:
                continue
            delta = (pair_map(mine, by=["setting"]) - ref_pairs).dropna().reset_index()
            involves = delta.query_lang.isin(low) | delta.pool_lang.isin(low)
            for label, part in (("with low-resource language", delta[involves]), ("high-resource only", delta[~involves])):
                if part.empty:
                    continue
                rows.append({"dataset": dataset, "strategy": strategy, "profile": profile, "pairs": label,
                             "delta_map": float(part.ap.mean()), "n_pairs": int(len(part))})
    return pd.DataFrame(rows, columns=["dataset", "strategy", "profile", "pairs", "delta_map", "n_pairs"])


def _cell(row: pd.Series, name: str, best: bool) -> str:
    if name not in row or pd.isna(row[name]):
        return ""
    text = f"{row[name]:.3f} [{row[f'{name}_ci_low']:.3f}, {row[f'{name}_ci_high']:.3f}]"
    if not pd.isna(row.get(f"{name}_seed_sd", np.nan)):
        text += f" ±{row[f'{name}_seed_sd']:.3f}"
    return f"**{text}**" if best else text


def results_markdown(table: pd.DataFrame, headline: str) -> str:
    """One Markdown table per dataset × setting; the best value of each column in bold."""
    parts = [
        "Each cell: mean over seeds [95% bootstrap interval over queries] ±seed standard deviation (when several seeds ran).",
        f"p: paired permutation test of `{headline}` against the row on the same queries (mAP), Holm-adjusted over the whole report.",
        "",
    ]
    for (dataset, setting), block in table.groupby(["dataset", "setting"], sort=True):
        names = [n for n in METRICS if n in block and block[n].notna().any()]
        best = {n: (block[n].min() if n in LOWER_IS_BETTER else block[n].max()) for n in names}
        parts.append(f"### {dataset} — {setting}")
        parts.append("")
        parts.append("| strategy | profile | seeds | " + " | ".join(names) + f" | Δ mAP {headline} − row | p (Holm) |")
        parts.append("|---" * (len(names) + 5) + "|")
        for _, row in block.iterrows():
            cells = [_cell(row, n, bool(np.isclose(row[n], best[n]))) for n in names]
            delta = "" if pd.isna(row.delta_vs_headline) else f"{row.delta_vs_headline:+.3f}"
            p = "" if pd.isna(row.p_vs_headline_holm) else f"{row.p_vs_headline_holm:.3g}"
            parts.append(f"| {row.strategy} | {row.profile} | {row.seeds} | " + " | ".join(cells) + f" | {delta} | {p} |")
        parts.append("")
    return "\n".join(parts)
