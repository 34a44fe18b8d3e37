"""Across base models: each base's answer in one sentence, and whether the answer depends on the base.

Each base's robustness table (:mod:`mlret.reporting.robustness`) compares strategies fine-tuned
from that base only. Here the bases meet.

*Base × strategy.* At each dataset × scope × severity that two bases share, the interaction is
the contrast hybrid − multi on a base minus the same contrast on the reference base (the first
of ``bases``): positive, hybrid's disadvantage (or its smaller advantage) grows on that base. Its
standard error is √(se₁² + se₂²), with Welch–Satterthwaite degrees of freedom: the two contrasts
are treated as independent. Both are scored on the same test questions, so question noise that
is common to them would cancel in the difference; leaving that covariance out makes the interval
wider than it needs to be, never narrower.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from mlret.reporting.robustness import COMPARATOR, primary_scope_of
from mlret.reporting.stats import CONFIDENCE
from mlret.reporting.wording import (
    contrast_sentence,
    dataset_label,
    interval_text,
    p_text,
    severity_label,
    signed,
)

INTERACTION_COLUMNS = [
    "dataset",
    "scope",
    "severity",
    "base",
    "reference_base",
    "contrast",
    "reference_contrast",
    "interaction",
    "ci_low",
    "ci_high",
    "se",
    "df",
    "p",
]


def _welch(se: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """The standard error of a difference of independent estimates, and its Welch–Satterthwaite df."""
    variance = float(np.sum(se**2))
    terms = se**4 / df
    return math.sqrt(variance), (variance**2 / float(np.sum(terms)) if np.all(terms > 0) else math.inf)


def interaction_table(robustness: Mapping[str, pd.DataFrame], confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Contrast on each base minus the contrast on the first base, per dataset × scope × severity they share."""
    contrasts = {
        base: table[table.kind == "contrast"].set_index(["dataset", "scope", "severity"])
        for base, table in robustness.items()
    }
    bases = list(contrasts)
    rows = []
    if bases:
        reference = contrasts[bases[0]]
        for base in bases[1:]:
            other = contrasts[base]
            for key in other.index.intersection(reference.index):
                mine, theirs = other.loc[key], reference.loc[key]
                estimate = float(mine.specific_drop - theirs.specific_drop)
                se, df = _welch(
                    np.array([mine.se, theirs.se], dtype=float), np.array([mine.df, theirs.df], dtype=float)
                )
                if math.isfinite(se) and se > 0:
                    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
                    low, high, p = estimate - half, estimate + half, float(2 * scipy_stats.t.sf(abs(estimate) / se, df))
                else:
                    low = high = p = math.nan
                rows.append(
                    [*key, base, bases[0], mine.specific_drop, theirs.specific_drop, estimate, low, high, se, df, p]
                )
    return pd.DataFrame(rows, columns=INTERACTION_COLUMNS)


def _level(table: pd.DataFrame, dataset: str, scope: str, severity: float, strategy: str) -> float:
    rows = table[
        (table.kind == "level")
        & (table.dataset == dataset)
        & (table.scope == scope)
        & (table.severity == severity)
        & (table.strategy == strategy)
    ]
    return float(rows.level.iloc[0]) if len(rows) else math.nan


def answer_sentence(
    base: str, robustness: pd.DataFrame, headline: str, train_source: str, pools: Mapping[str, str] | None = None
) -> str:
    """The base's answer in one sentence: its primary contrast with a language absent from training (the
    harshest severity) on the training source, with interval, Holm verdict and detectable effect, and the level
    each strategy keeps on that language."""
    scope = primary_scope_of(robustness)
    rows = robustness[
        (robustness.kind == "contrast") & (robustness.scope == scope) & (robustness.dataset == train_source)
    ].sort_values("severity")
    if rows.empty:
        return f"- `{base}`: no contrast of `{headline}` with `{COMPARATOR}` under imbalance (see its section)."
    row = rows.iloc[0]
    where = f"{dataset_label(train_source, pools)}, {scope_words(scope)}, {severity_label(float(row.severity))}"
    if not math.isfinite(row.specific_drop):
        return f"- `{base}` ({where}): the contrast is not estimated ({row.note})."
    if not (math.isfinite(row.ci_low) and math.isfinite(row.ci_high)):
        sentence = f"{headline} − {COMPARATOR} = {signed(float(row.specific_drop))}, no interval ({row.note})"
    else:
        sentence = contrast_sentence(
            headline,
            COMPARATOR,
            float(row.specific_drop),
            float(row.ci_low),
            float(row.ci_high),
            p_holm=float(row.p_holm),
            mde=float(row.mde80),
            p=float(row.p),
            power_when_separated=True,
        )
    levels = [
        (strategy, _level(robustness, train_source, scope, float(row.severity), strategy))
        for strategy in (headline, COMPARATOR)
    ]
    kept = ", ".join(f"{strategy} {value:.3f}" for strategy, value in levels if math.isfinite(value))
    return f"- `{base}` ({where}): {sentence}" + (f"; mAP kept on that language: {kept}." if kept else ".")


def scope_words(scope: str) -> str:
    return "all settings" if scope == "all" else f"{scope} retrieval"


def interaction_lines(interaction: pd.DataFrame, scopes: Mapping[str, str]) -> list[str]:
    """Per base against the reference base, one line per dataset × severity in the base's primary scope."""
    lines = []
    for base, block in interaction.groupby("base", sort=False):
        scope = scopes.get(str(base), "all")
        rows = block[block.scope == scope].sort_values(["dataset", "severity"])
        for row in rows.itertuples():
            interval = interval_text(row.ci_low, row.ci_high) if math.isfinite(row.ci_low) else "no interval"
            test = f"; {p_text(float(row.p))}" if math.isfinite(row.p) else ""
            lines.append(
                f"- {row.dataset}, {scope_words(scope)}, {severity_label(float(row.severity))}: "
                f"({base}) − ({row.reference_base}) = {signed(float(row.interaction))} {interval}{test} "
                f"(contrasts {signed(float(row.contrast))} and {signed(float(row.reference_contrast))})."
            )
    return lines
