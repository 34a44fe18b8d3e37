"""The research answer, worded from tests and intervals (never from a count of wins, never a hard-coded claim)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import pandas as pd

from mlret.reporting.grid import Grid
from mlret.reporting.learned import exposure_matched_lines, level_lines
from mlret.reporting.markdown import markdown_table
from mlret.reporting.robustness import COMPARATOR, REFERENCE_PROFILE, primary_scope_of, scope_title
from mlret.reporting.wording import (
    at_floor,
    comparison_sentence,
    contrast_sentence,
    dataset_label,
    interval_text,
    p_text,
    severity_label,
    signed,
)
from mlret.vocabulary import ALPHA, BASE, Setting

QUESTION = (
    "When fine-tuning a multilingual bi-encoder with contrastive learning, how should training batches mix languages, "
    "and does the hybrid strategy (some batches monolingual, some cross-lingual) stay robust when training data is "
    "language-imbalanced and low-resource?"
)


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _names(items: Sequence[str]) -> str:
    quoted = [f"`{i}`" for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def grid_line(grid: Grid) -> str:
    """Every run of the grid, by strategy and profile: what every other sentence of the summary rests on."""
    runs = sum(len(seeds) for profiles in grid.values() for seeds in profiles.values())
    parts = [
        f"`{strategy}` on "
        + ", ".join(f"`{profile}` ({_seeds(len(seeds))})" for profile, seeds in sorted(profiles.items()))
        for strategy, profiles in sorted(grid.items())
    ]
    return f"**Runs.** {runs} run{'s' if runs != 1 else ''}: " + "; ".join(parts) + "."


def imbalanced_profiles(grid: Grid, severities: Mapping[str, Sequence[float]]) -> list[str]:
    """Profiles some run trained on that keep an evaluated language below its full share."""
    used = {profile for profiles in grid.values() for profile in profiles}
    return sorted(p for p in used if p != REFERENCE_PROFILE and severities.get(p))


def robustness_strategies(grid: Grid, headline: str, severities: Mapping[str, Sequence[float]]) -> list[str]:
    """The strategies the robustness question is asked of: each one trained on an imbalanced profile, and the
    contrast's two."""
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
                lines.append(
                    f"- `{strategy}` on `{profile}` has no run; its drop is not estimated at the severities "
                    f"`{profile}` holds ({at})."
                )
    return lines


def _finite(*values: object) -> bool:
    """Whether every value is a finite number (a missing cell reads NaN or None)."""
    return all(isinstance(v, numbers.Real) and math.isfinite(v) for v in values)


def _note(row: pd.Series) -> str:
    note = row.get("note", "")
    return "" if pd.isna(note) else str(note)


def _design(row: pd.Series) -> str:
    """What the interval of a line rests on: languages, runs, and the unit resampled."""
    return (
        f"{int(row.cells)} language{'s' if int(row.cells) != 1 else ''}, "
        f"{_seeds(int(row.reference_seeds))} on `{REFERENCE_PROFILE}` and "
        f"{_seeds(int(row.reduced_seeds))} per imbalanced run, {row.units}s resampled"
    )


def contrast_line(row: pd.Series, headline: str) -> str:
    """The primary contrast of one dataset × severity, worded by its Holm decision (or why it has no interval)."""
    estimate = row.specific_drop
    if not _finite(estimate):
        return f"{headline} − {COMPARATOR} not estimated" + (f": {_note(row)}" if _note(row) else "")
    if not _finite(row.ci_low, row.ci_high):
        return f"{headline} − {COMPARATOR} = {signed(estimate)}, no interval" + (
            f": {_note(row)}" if _note(row) else ""
        )
    return contrast_sentence(
        headline,
        COMPARATOR,
        estimate,
        row.ci_low,
        row.ci_high,
        p_holm=float(row.p_holm),
        mde=float(row.mde80),
        p=float(row.p),
    )


def answer_lines(
    robustness: pd.DataFrame,
    by_article: pd.DataFrame,
    headline: str,
    imbalanced: bool = True,
    pools: Mapping[str, str] | None = None,
) -> list[str]:
    """One line per dataset × severity from the primary family (contrasts over all settings).

    Each line: the contrast of specific drops with its interval and Holm verdict, the power to
    detect one, the raw contrast, what the interval rests on, and the interval when articles are
    resampled instead of questions. ``imbalanced``: whether any run of the grid trained on an
    imbalanced profile.
    """
    primary = primary_scope_of(robustness)
    contrasts = robustness[(robustness.kind == "contrast") & (robustness.scope == primary)]
    if not imbalanced:
        return ["No contrast: no run trained on an imbalanced profile."]
    if headline == COMPARATOR:
        return [
            f"No contrast: the headline strategy is `{COMPARATOR}`, the comparator itself. Set `sampling` to another "
            "strategy to contrast it with it; each strategy's drops are below."
        ]
    if contrasts.empty:
        return [
            f"No contrast: it needs `{headline}` and `{COMPARATOR}` trained on `{REFERENCE_PROFILE}` and on the same "
            "imbalanced profiles (see `runs` in params.yaml and the runs missing below)."
        ]
    articles = by_article[(by_article.kind == "contrast") & (by_article.scope == primary)].set_index(
        ["dataset", "severity"]
    )
    lines = []
    for _, row in contrasts.sort_values(["dataset", "severity"], kind="stable").iterrows():
        text = f"- {dataset_label(row.dataset, pools)}, {severity_label(row.severity)}: {contrast_line(row, headline)}."
        if _finite(row.raw_drop):
            text += f" Raw contrast (drops on the reduced languages' own rows): {signed(row.raw_drop)}."
        text += f" {_design(row)}"
        if (row.dataset, row.severity) in articles.index:
            art = articles.loc[(row.dataset, row.severity)]
            if _finite(art.ci_low, art.ci_high):
                text += f"; resampling articles instead: {interval_text(art.ci_low, art.ci_high)}"
        lines.append(text + ".")
    return lines


def _percent(share: float) -> str:
    return f"{share * 100:.3g} %"


def exposure_lines(exposure: pd.DataFrame, headline: str) -> list[str]:
    """Per severity, the realised share of pair sides a reduced language got under each strategy.

    The ladder fixes how much data a language keeps; how often a strategy's batches then show it
    is what the drops respond to, so the Answer states it beside them. Mean over the reduced
    languages, profiles and seeds at that severity.
    """
    reduced = exposure[exposure.fraction_kept < 1]
    if reduced.empty:
        return []
    first = [s for s in (headline, COMPARATOR) if s in set(reduced.strategy)]
    order = first + sorted(set(reduced.strategy) - set(first))
    reference = exposure[(exposure.profile == REFERENCE_PROFILE) & exposure.lang.isin(set(reduced.lang))]
    intro = (
        "**Exposure.** Share of training pair sides a reduced language got (mean over the reduced languages, profiles "
        "and seeds)"
    )
    if not reference.empty:
        intro += f"; the same languages got {_percent(float(reference.share.mean()))} on `{REFERENCE_PROFILE}`"
    lines = [intro + ":", ""]
    for kept, block in reduced.groupby("fraction_kept", sort=True):
        share = block.groupby("strategy").share.mean()
        parts = [f"{_percent(float(share[s]))} under {s}" for s in order if s in share.index]
        lines.append(f"- {severity_label(float(kept))}: " + " vs ".join(parts) + ".")
    return lines


def _drop_cell(row: pd.Series, test: str = "") -> str:
    """Specific drop [interval] (raw, full-data), and the test of a contrast row."""
    if not _finite(row.specific_drop):
        return "not estimated"
    interval = interval_text(row.ci_low, row.ci_high) if _finite(row.ci_low, row.ci_high) else "no interval"
    parts = [
        f"raw {signed(row.raw_drop)}" if _finite(row.raw_drop) else "raw –",
        f"full {signed(row.full_drop)}" if _finite(row.full_drop) else "full –",
    ]
    return f"{signed(row.specific_drop)} {interval} ({', '.join(parts)}){test}"


def _test_text(row: pd.Series) -> str:
    """The Holm p of a primary contrast (all settings); the unadjusted p of an exploratory one."""
    if row.get("family") == "primary" and _finite(row.get("p_holm", math.nan)):
        return "; " + p_text(float(row.p_holm), label="Holm p")
    if _finite(row.get("p", math.nan)):
        return "; " + p_text(float(row.p), label="unadjusted p")
    return ""


def robustness_markdown(robustness: pd.DataFrame, strategies: Sequence[str] = ()) -> list[str]:
    """The robustness curve as tables, one per dataset × scope: each strategy's drops per severity, then the contrast.

    Every strategy of ``strategies`` gets a row, "not estimated" where its runs are missing. The
    primary scope's contrasts form the primary family; the other scopes' are exploratory and
    labelled so. Below each table, why a cell has no interval.
    """
    parts = []
    drops = robustness[robustness.kind == "drop"]
    primary = primary_scope_of(robustness)
    for (dataset, scope), block in drops.groupby(["dataset", "scope"], sort=True):
        severities = sorted(block.severity.unique())
        title = f"### {dataset}, {scope_title(str(scope), primary)}"
        parts += [title, ""]
        notes: dict[str, list[str]] = {}
        lines = []
        for strategy in sorted(set(block.strategy) | set(strategies)):
            by = block[block.strategy == strategy].set_index("severity")
            cells = [_drop_cell(by.loc[s]) if s in by.index else "not estimated" for s in severities]
            lines.append([f"{strategy}", *cells])
        contrast = robustness[
            (robustness.kind == "contrast") & (robustness.dataset == dataset) & (robustness.scope == scope)
        ]
        for strategy, rows in contrast.groupby("strategy", sort=True):
            by = rows.set_index("severity")
            label = f"**{strategy}**" + ("" if scope == primary else " (exploratory)")
            cells = [_drop_cell(by.loc[s], _test_text(by.loc[s])) if s in by.index else "" for s in severities]
            lines.append([label, *cells])
        parts += markdown_table(["strategy", *(severity_label(s) for s in severities)], lines)
        for _, row in pd.concat([block, contrast]).iterrows():
            if _note(row) and not _finite(row.ci_low, row.ci_high):
                notes.setdefault(_note(row), []).append(f"{row.strategy} at {severity_label(row.severity)}")
        parts.append("")
        if notes:
            parts += [f"No interval for {', '.join(where)}: {note}." for note, where in notes.items()] + [""]
    return parts


def claims_lines(table: pd.DataFrame, headline: str, grid: Grid | None = None) -> list[str]:
    """The paper's comparisons on the balanced profile: the headline strategy against each other one, per setting.

    The verdict is the Holm-adjusted sign-flip test's; the interval beside it also draws training
    runs, so the two can disagree, and the sentence then says so.
    """
    if grid is not None:
        on_reference = sorted(s for s, profiles in grid.items() if REFERENCE_PROFILE in profiles)
        if headline not in on_reference:
            return [f"`{headline}` has no run on `{REFERENCE_PROFILE}`, so it is compared with no strategy there."]
        if on_reference == [headline]:
            return [f"No other strategy ran on `{REFERENCE_PROFILE}`."]
    rows = table[(table.profile == REFERENCE_PROFILE) & (table.strategy != BASE) & (table.strategy != headline)]
    lines = []
    for _, row in rows.iterrows():
        low, high = row.get("delta_vs_headline_ci_low", math.nan), row.get("delta_vs_headline_ci_high", math.nan)
        p_holm = row.get("p_vs_headline_holm", math.nan)
        if not _finite(row.delta_vs_headline, low, high, p_holm):
            continue
        bound = at_floor(float(row.get("p_vs_headline", math.nan)))
        sentence = comparison_sentence(
            headline, row.strategy, row.delta_vs_headline, low, high, p_holm, "better", "worse", bound
        )
        lines.append(f"- {row.dataset}, {row.setting} mAP: {sentence}.")
    return lines


def rank_distance_lines(table: pd.DataFrame) -> list[str]:
    rows = table[(table.setting == Setting.MULTI) & table.get("rank_distance", pd.Series(dtype=float)).notna()]
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
    table = reduced.pivot_table(
        index=["profile", "lang", "fraction_kept"], columns=["strategy", "seed"], values="share"
    )
    header = ["profile", "language", "kept", *(f"{s}/{seed}" for s, seed in table.columns)]
    rows = [
        [f"{profile}", f"{lang}", f"{kept:g}", *("" if pd.isna(v) else f"{v:.4f}" for v in values)]
        for (profile, lang, kept), values in table.iterrows()
    ]
    return markdown_table(header, rows)


def definition_lines(headline: str) -> list[str]:
    """What the Answer's numbers are: the estimand, the interval, the family and its adjustment."""
    contrast = (
        f"Contrast = specific drop({headline}) − specific drop({COMPARATOR}); below 0, `{headline}` loses less under "
        "imbalance (is more robust)."
        if headline != COMPARATOR
        else f"A contrast is taken against `{COMPARATOR}` when another strategy is the headline."
    )
    return [
        f"Drop = mAP under `{REFERENCE_PROFILE}` (mean of its seeds) minus mAP under the imbalanced profile (mean of "
        "its seeds); above 0: the run lost mAP. The *raw drop* is a reduced language L's drop on its own rows. The "
        "*specific drop*, the estimate, is L's drop minus the mean drop of the languages kept in full (F) on "
        "matching rows of the same runs (mono: L→L against F→F; cross: X↔L against X↔Y with X, Y in F; multi: L's "
        "questions against F's questions in the same multilingual pool), so that what every language loses in a run "
        "with less data in all is netted out; a severity's value is the mean over its reduced languages, settings "
        f"weighted equally. {contrast} 95 % t interval: questions (or articles) resampled, plus the training-run "
        "noise of every run.",
        "",
        "Primary family: per dataset, the contrasts over all settings at its severities, Holm-adjusted over them; a "
        f"verdict needs Holm p < {ALPHA:g}. The single-setting contrasts in the tables below are exploratory and "
        "unadjusted. "
        '"Not distinguishable" is not "equal": a contrast smaller than the one detectable with 80 % power (at the '
        "strictest Holm level) could go unseen.",
        "",
    ]


def summary_markdown(
    table: pd.DataFrame,
    robustness: pd.DataFrame,
    by_article: pd.DataFrame,
    exposure: pd.DataFrame,
    headline: str,
    pools: dict[str, str],
    grid: Grid,
    severities: Mapping[str, Sequence[float]],
) -> str:
    """The summary; every sentence about the grid is decided from ``grid`` (the runs in params.yaml).

    ``severities``: per profile, the fractions kept of its reduced evaluated languages.
    """
    parts = ["# Summary", "", f"**Question.** {QUESTION}", ""]
    parts += [grid_line(grid), ""]
    parts += ["**Pools.** " + "; ".join(f"{d}: {label}" for d, label in sorted(pools.items())) + ".", ""]
    parts += ["## Answer", "", *definition_lines(headline)]
    imbalanced = bool(imbalanced_profiles(grid, severities))
    parts += answer_lines(robustness, by_article, headline, imbalanced, pools)
    exposure_summary = exposure_lines(exposure, headline) if imbalanced else []
    parts += ["", *exposure_summary] if exposure_summary else []
    for extra in (level_lines(robustness, headline, pools), exposure_matched_lines(robustness, pools)):
        parts += ["", *extra] if extra else []
    parts += [
        "",
        "## Robustness curve (specific drop in mAP; above 0: the reduced language loses more than those kept in full)",
        "",
    ]
    if not imbalanced:
        parts += ["No run trained on an imbalanced profile, so robustness cannot be assessed.", ""]
    else:
        missing = missing_lines(grid, headline, severities)
        tables = robustness_markdown(robustness, robustness_strategies(grid, headline, severities))
        legend = [
            "Each cell: specific drop [95 % interval] (raw: drop on the reduced language's own rows; full: mean drop "
            "of the languages kept in full on matching rows). Bold rows: the contrast, with its Holm p over all "
            "settings, its unadjusted p in a single setting (exploratory).",
            "",
        ]
        parts += (
            [*legend, *tables]
            if tables
            else ["No strategy has runs on both `balanced` and an imbalanced profile, so no drop is estimated.", ""]
        )
        parts += [*missing, ""] if missing else []
    parts += [
        "## The paper's comparisons on the balanced profile",
        "",
        f"`{headline}` − each other strategy: mean difference over seeds [two-level bootstrap interval: seeds, then "
        "questions]; verdict: sign-flip test flipping whole questions, Holm-adjusted over the results table (Holm p "
        f"< {ALPHA:g} separates them).",
        "",
    ]
    parts += claims_lines(table, headline, grid) or [
        f"No comparison with `{headline}` on `{REFERENCE_PROFILE}` has an interval."
    ]
    parts += [
        "",
        "Rank distance in the multilingual pool (lower: less language bias), balanced profile [95 % question "
        "bootstrap]:",
        "",
    ]
    parts += rank_distance_lines(table)
    parts += ["", "## Realised exposure of the reduced languages (share of pair sides)", ""]
    parts += exposure_markdown(exposure)
    return "\n".join(parts) + "\n"
