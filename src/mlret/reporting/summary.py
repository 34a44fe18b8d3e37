"""The research answer, written from the numbers (never a hard-coded claim)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlret.reporting.collect import BASE

QUESTION = (
    "When fine-tuning a multilingual bi-encoder with contrastive learning, how should training batches mix "
    "languages, and does the hybrid strategy (some batches monolingual, some cross-lingual) stay robust when "
    "training data is language-imbalanced and low-resource?"
)
ALPHA = 0.05


def _winner_sentence(block: pd.DataFrame, headline: str) -> str:
    trained = block[block.strategy != BASE].sort_values("map", ascending=False)
    if trained.empty:
        return "no trained model."
    first = trained.iloc[0]
    base = block[block.strategy == BASE]
    text = f"**{first.strategy}** leads with mAP {first['map']:.3f}"
    if len(trained) > 1:
        second = trained.iloc[1]
        text += f", {first['map'] - second['map']:+.3f} ahead of {second.strategy} ({second['map']:.3f})"
    if not base.empty:
        text += f"; the untuned base model scores {base.iloc[0]['map']:.3f}"
    head = trained[trained.strategy == headline]
    if not head.empty and first.strategy != headline:
        row = trained[trained.strategy == first.strategy].iloc[0]
        significant = not pd.isna(row.p_vs_headline_holm) and row.p_vs_headline_holm < ALPHA
        text += (
            f". {headline} trails by {-row.delta_vs_headline:.3f}"
            + (f" (significant, Holm p = {row.p_vs_headline_holm:.3g})" if significant else f" (not significant, Holm p = {row.p_vs_headline_holm:.3g})")
        )
    elif first.strategy == headline:
        others = trained[trained.strategy != headline]
        beaten = others[others.p_vs_headline_holm < ALPHA]
        text += f". Its lead is significant against {len(beaten)} of {len(others)} other strategies (Holm p < {ALPHA})"
    seeds = int(first.seeds)
    if seeds > 1 and not pd.isna(first.map_seed_sd) and len(trained) > 1 and (first['map'] - trained.iloc[1]['map']) < first.map_seed_sd:
        text += f"; the lead is smaller than the seed spread ({first.map_seed_sd:.3f}), so it is not a finding"
    elif seeds == 1:
        text += "; one seed only, so seed variance is not accounted for"
    return text + "."


def summary_markdown(table: pd.DataFrame, robustness: pd.DataFrame, headline: str) -> str:
    parts = ["# Summary", "", f"**Question.** {QUESTION}", "", "## Which strategy wins each setting (mAP)", ""]
    for (dataset, setting, profile), block in table[table.strategy != BASE].groupby(["dataset", "setting", "profile"], sort=True):
        base = table[(table.dataset == dataset) & (table.setting == setting) & (table.strategy == BASE)]
        parts.append(f"- {dataset}, {setting}, profile `{profile}`: " + _winner_sentence(pd.concat([base, block]), headline))
    parts += ["", "## Robustness to language imbalance", ""]
    if robustness.empty:
        parts.append("Only one profile ran, so robustness cannot be assessed.")
    else:
        for (dataset, profile, pairs), block in robustness.groupby(["dataset", "profile", "pairs"], sort=True):
            ordered = block.sort_values("delta_map", ascending=False)
            listing = ", ".join(f"{r.strategy} {r.delta_map:+.3f}" for r in ordered.itertuples())
            parts.append(f"- {dataset}, `{profile}` vs balanced, {pairs} pairs: {listing} (change in mAP; higher means more robust).")
        head = robustness[robustness.strategy == headline]
        if not head.empty:
            low = robustness[robustness.pairs == "with low-resource language"]
            ranks = low.groupby(["dataset", "profile"]).apply(
                lambda b: int((b.delta_map > b[b.strategy == headline].delta_map.mean()).sum()) + 1, include_groups=False
            )
            parts += ["", f"On language pairs that involve a low-resource language, `{headline}` ranks "
                      + ", ".join(f"{r} of {len(robustness.strategy.unique())} ({d}, {p})" for (d, p), r in ranks.items())
                      + " by change in mAP (1 = degrades least)."]
    parts += ["", "## Answer", "", _answer(table, robustness, headline), ""]
    return "\n".join(parts)


def _answer(table: pd.DataFrame, robustness: pd.DataFrame, headline: str) -> str:
    trained = table[table.strategy != BASE]
    if trained.empty:
        return "No trained model was evaluated."
    wins = trained.loc[trained.groupby(["dataset", "setting", "profile"])["map"].idxmax()]
    count = int((wins.strategy == headline).sum())
    significant_losses = trained[(trained.strategy != headline) & (trained.delta_vs_headline < 0) & (trained.p_vs_headline_holm < ALPHA)]
    significant_wins = trained[(trained.strategy != headline) & (trained.delta_vs_headline > 0) & (trained.p_vs_headline_holm < ALPHA)]
    by_strategy = wins.strategy.value_counts()
    others = ", ".join(f"{s} in {n}" for s, n in by_strategy.items() if s != headline)
    text = (
        f"Across {len(wins)} dataset × setting × profile cells, `{headline}` has the best mAP in {count}"
        + (f"; {others}" if others else "")
        + f". It is significantly better than another strategy in {len(significant_wins)} comparisons and significantly worse in {len(significant_losses)} (Holm p < {ALPHA})."
    )
    if not robustness.empty:
        low = robustness[robustness.pairs == "with low-resource language"].groupby("strategy").delta_map.mean()
        if headline in low:
            text += (
                f" Under imbalance, on pairs with a low-resource language, `{headline}` changes by {low[headline]:+.3f} mAP on average, "
                f"against {np.mean([v for s, v in low.items() if s != headline]):+.3f} for the other strategies."
            )
    return text
