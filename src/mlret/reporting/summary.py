"""The research answer, worded from intervals (never from a count of wins, never a hard-coded claim)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from mlret.reporting.collect import BASE
from mlret.reporting.robustness import COMPARATOR, REFERENCE_PROFILE
from mlret.reporting.wording import comparison_sentence, robustness_sentence

QUESTION = (
    "When fine-tuning a multilingual bi-encoder with contrastive learning, how should training batches mix "
    "languages, and does the hybrid strategy (some batches monolingual, some cross-lingual) stay robust when "
    "training data is language-imbalanced and low-resource?"
)
ALPHA = 0.05


def severity_label(severity: float) -> str:
    return "absent (0 %)" if severity == 0 else f"{severity * 100:g} % kept"


def _interval(row: pd.Series, estimate: str = "drop_map") -> str:
    return f"{row[estimate]:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"


#: strategy -> profile -> seeds of the runs in params.yaml (:func:`mlret.reporting.grid.grid_record`).
Grid = Mapping[str, Mapping[str, Sequence[int]]]


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _names(items: Sequence[str]) -> str:
    quoted = [f"`{i}`" for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def grid_line(grid: Grid) -> str:
    """Every run of the grid, by strategy and profile: what every other sentence of the summary rests on."""
    runs = sum(len(seeds) for profiles in grid.values() for seeds in profiles.values())
    parts = [
        f"`{strategy}` on " + ", ".join(f"`{profile}` ({_seeds(len(seeds))})" for profile, seeds in sorted(profiles.items()))
        for strategy, profiles in sorted(grid.items())
    ]
    return f"**Runs.** {runs} run{'s' if runs != 1 else ''}: " + "; ".join(parts) + "."


def imbalanced_profiles(grid: Grid, severities: Mapping[str, Sequence[float]]) -> list[str]:
    """Profiles some run trained on that keep an evaluated language below its full share."""
    used = {profile for profiles in grid.values() for profile in profiles}
    return sorted(p for p in used if p != REFERENCE_PROFILE and severities.get(p))


def robustness_strategies(grid: Grid, headline: str, severities: Mapping[str, Sequence[float]]) -> list[str]:
    """The strategies the robustness question is asked of: every one trained on an imbalanced profile, and the contrast's two."""
    imbalanced = set(imbalanced_profiles(grid, severities))
    if not imbalanced:
        return []
    named = {s for s, profiles in grid.items() if imbalanced & set(profiles)} | {headline, COMPARATOR}
    return sorted(named)


def missing_lines(grid: Grid, headline: str, severities: Mapping[str, Sequence[float]]) -> list[str]:
    """One sentence per run the robustness question needs and the grid lacks: a missing run is named, never dropped."""
    lines = []
    for strategy in robustness_strategies(grid, headline, severities):
        profiles = grid.get(strategy, {})
        if REFERENCE_PROFILE not in profiles:
            lines.append(f"- `{strategy}` on `{REFERENCE_PROFILE}` has no run: none of its drops is estimated.")
            continue
        for profile in imbalanced_profiles(grid, severities):
            if profile not in profiles:
                at = ", ".join(severity_label(x) for x in sorted(severities[profile]))
                lines.append(f"- `{strategy}` on `{profile}` has no run; its drop is not estimated at the severities "
                             f"`{profile}` holds ({at}).")
    return lines


def answer_lines(robustness: pd.DataFrame, by_article: pd.DataFrame, headline: str, imbalanced: bool = True) -> list[str]:
    """One sentence per dataset × severity from the headline contrast (all settings), with its half-width.

    ``imbalanced``: whether any run of the grid trained on an imbalanced profile.
    """
    contrasts = robustness[(robustness.kind == "contrast") & (robustness.scope == "all")]
    if not imbalanced:
        return ["No contrast: no run trained on an imbalanced profile."]
    if headline == COMPARATOR:
        return [f"No contrast: the headline strategy is `{COMPARATOR}`, the comparator itself. "
                "Set `sampling` to another strategy to contrast it with it; each strategy's drops are below."]
    if contrasts.empty:
        return [
            f"No contrast: it needs `{headline}` and `{COMPARATOR}` trained on `{REFERENCE_PROFILE}` and on the same imbalanced "
            "profiles (see `runs` in params.yaml and the runs missing below)."
        ]
    articles = by_article[(by_article.kind == "contrast") & (by_article.scope == "all")].set_index(["dataset", "severity"])
    lines = []
    for row in contrasts.itertuples():
        sentence = robustness_sentence(headline, COMPARATOR, row.drop_map, row.ci_low, row.ci_high)
        text = (
            f"- {row.dataset}, {severity_label(row.severity)}: {sentence}. "
            f"Interval half-width {(row.ci_high - row.ci_low) / 2:.3f} ({row.cells} languages, "
            f"{row.reference_seeds} balanced seeds, questions resampled)"
        )
        if (row.dataset, row.severity) in articles.index:
            art = articles.loc[(row.dataset, row.severity)]
            text += f"; resampling articles instead: [{art.ci_low:+.3f}, {art.ci_high:+.3f}]"
        lines.append(text + ".")
    return lines


def robustness_markdown(robustness: pd.DataFrame, strategies: Sequence[str] = ()) -> list[str]:
    """The robustness curve as a table: drop per strategy and severity, one table per dataset × scope.

    Every strategy of ``strategies`` gets a row, "not estimated" where its runs are missing.
    """
    parts = []
    drops = robustness[robustness.kind == "drop"]
    for (dataset, scope), block in drops.groupby(["dataset", "scope"], sort=True):
        severities = sorted(block.severity.unique())
        parts += [f"### {dataset}, {scope} settings" if scope == "all" else f"### {dataset}, {scope} only", ""]
        parts.append("| strategy | " + " | ".join(severity_label(s) for s in severities) + " |")
        parts.append("|---" * (len(severities) + 1) + "|")
        for strategy in sorted(set(block.strategy) | set(strategies)):
            by = block[block.strategy == strategy].set_index("severity")
            parts.append(f"| {strategy} | " + " | ".join(_interval(by.loc[s]) if s in by.index else "not estimated" for s in severities) + " |")
        contrast = robustness[(robustness.kind == "contrast") & (robustness.dataset == dataset) & (robustness.scope == scope)]
        for strategy, rows in contrast.groupby("strategy", sort=True):
            by = rows.set_index("severity")
            parts.append(f"| **{strategy}** | " + " | ".join(_interval(by.loc[s]) if s in by.index else "" for s in severities) + " |")
        parts.append("")
    return parts


def claims_lines(table: pd.DataFrame, headline: str, grid: Grid | None = None) -> list[str]:
    """The paper's comparisons on the balanced profile: the headline strategy against each other one, per setting."""
    if grid is not None:
        on_reference = sorted(s for s, profiles in grid.items() if REFERENCE_PROFILE in profiles)
        if headline not in on_reference:
            return [f"`{headline}` has no run on `{REFERENCE_PROFILE}`, so it is compared with no strategy there."]
        if on_reference == [headline]:
            return [f"No other strategy ran on `{REFERENCE_PROFILE}`."]
    rows = table[(table.profile == REFERENCE_PROFILE) & (table.strategy != BASE) & (table.strategy != headline)]
    lines = []
    for row in rows.itertuples():
        low, high = getattr(row, "delta_vs_headline_ci_low", float("nan")), getattr(row, "delta_vs_headline_ci_high", float("nan"))
        if pd.isna(row.delta_vs_headline) or pd.isna(low) or pd.isna(high):
            continue
        sentence = comparison_sentence(headline, row.strategy, row.delta_vs_headline, low, high, "better", "worse")
        p = row.p_vs_headline_holm
        lines.append(f"- {row.dataset}, {row.setting} mAP: {sentence}; Holm p = {p:.3g}.")
    return lines


def rank_distance_lines(table: pd.DataFrame) -> list[str]:
    rows = table[(table.setting == "multi") & table.get("rank_distance", pd.Series(dtype=float)).notna()]
    lines = []
    for dataset, block in rows.groupby("dataset", sort=True):
        cells = ", ".join(
            f"{r.strategy}{'' if r.profile in (REFERENCE_PROFILE, '-') else '/' + r.profile} {r.rank_distance:.1f} "
            f"[{r.rank_distance_ci_low:.1f}, {r.rank_distance_ci_high:.1f}]"
            for r in block[block.profile.isin([REFERENCE_PROFILE, "-"])].itertuples()
        )
        lines.append(f"- {dataset}: {cells}.")
    return lines


def exposure_markdown(exposure: pd.DataFrame) -> list[str]:
    """Realised share of pair sides of each reduced language, per run: what the runs actually trained on."""
    reduced = exposure[exposure.fraction_kept < 1]
    if reduced.empty:
        if (exposure.profile != REFERENCE_PROFILE).any():
            profiles = sorted(set(exposure.profile) - {REFERENCE_PROFILE})
            return [f"The runs on {_names(profiles)} keep every language they trained on in full."]
        return ["No run trained on an imbalanced profile."]
    table = reduced.pivot_table(index=["profile", "lang", "fraction_kept"], columns=["strategy", "seed"], values="share")
    parts = ["| profile | language | kept | " + " | ".join(f"{s}/{seed}" for s, seed in table.columns) + " |",
             "|---" * (len(table.columns) + 3) + "|"]
    for (profile, lang, kept), values in table.iterrows():
        parts.append(f"| {profile} | {lang} | {kept:g} | " + " | ".join("" if pd.isna(v) else f"{v:.4f}" for v in values) + " |")
    return parts


def summary_markdown(
    table: pd.DataFrame, robustness: pd.DataFrame, by_article: pd.DataFrame, exposure: pd.DataFrame,
    headline: str, pools: dict[str, str], grid: Grid, severities: Mapping[str, Sequence[float]],
) -> str:
    """The summary; every sentence about the grid is decided from ``grid`` (the runs in params.yaml).

    ``severities``: per profile, the fractions kept of its reduced evaluated languages.
    """
    parts = ["# Summary", "", f"**Question.** {QUESTION}", ""]
    parts += [grid_line(grid), ""]
    parts += ["**Pools.** " + "; ".join(f"{d}: {label}" for d, label in sorted(pools.items())) + ".", ""]
    contrast = (f"the contrast is drop({headline}) − drop({COMPARATOR})" if headline != COMPARATOR
                else f"a strategy's drop is contrasted with drop({COMPARATOR}) when another strategy is the headline")
    parts += ["## Answer", "",
              f"Drop = mAP on `{REFERENCE_PROFILE}` minus mAP on the imbalanced profile, on the reduced language's own pairs "
              f"(mono L→L, cross X→L and L→X with X kept in full, multilingual pool for L's questions; settings weighted equally); "
              f"{contrast}, 95 % bootstrap interval over languages at the severity, balanced seeds and questions.", ""]
    imbalanced = bool(imbalanced_profiles(grid, severities))
    parts += answer_lines(robustness, by_article, headline, imbalanced)
    parts += ["", "## Robustness curve (drop in mAP; above 0: loses under imbalance)", ""]
    if not imbalanced:
        parts += ["No run trained on an imbalanced profile, so robustness cannot be assessed.", ""]
    else:
        missing = missing_lines(grid, headline, severities)
        parts += robustness_markdown(robustness, robustness_strategies(grid, headline, severities)) or [
            "No strategy has runs on both `balanced` and an imbalanced profile, so no drop is estimated.", ""]
        parts += [*missing, ""] if missing else []
    parts += ["## The paper's comparisons on the balanced profile", "",
              f"`{headline}` against each other strategy: mean difference over seeds [two-level bootstrap interval: seeds, then questions]; "
              "p: sign-flip test flipping whole questions, Holm-adjusted over the results table.", ""]
    parts += claims_lines(table, headline, grid) or [f"No comparison with `{headline}` on `{REFERENCE_PROFILE}` has an interval."]
    parts += ["", "Rank distance in the multilingual pool (lower: less language bias), balanced profile [95 % question bootstrap]:", ""]
    parts += rank_distance_lines(table)
    parts += ["", "## Realised exposure of the reduced languages (share of pair sides)", ""]
    parts += exposure_markdown(exposure)
    return "\n".join(parts) + "\n"
