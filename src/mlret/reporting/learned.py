"""What the robustness answer rests on besides the drops: how much a strategy kept of a reduced language, and
how often it saw the language.

A small drop can mean "robust" or "never learned": the *level* lines give the mAP a strategy keeps
on the reduced languages under imbalance, beside what it had under ``balanced``. A larger drop
can come from seeing the language less: the *exposure-matched* lines give the contrast once the
comparator's drop is read at the headline's realised exposure (:mod:`mlret.reporting.exposure`).
Both are worded in the base's primary scope, and both are descriptive: no Holm family.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from mlret.reporting.exposure import KIND as EXPOSURE_MATCHED
from mlret.reporting.robustness import COMPARATOR, primary_scope_of
from mlret.reporting.wording import dataset_label, interval_text, severity_label, signed


def _interval(row: pd.Series) -> str:
    return interval_text(row.ci_low, row.ci_high) if math.isfinite(row.ci_low) else f"no interval ({row.note})"


def level_lines(robustness: pd.DataFrame, headline: str, pools: Mapping[str, str] | None = None) -> list[str]:
    """Per dataset × severity: each strategy's mAP on the reduced languages under imbalance, and headline − multi."""
    scope = primary_scope_of(robustness)
    rows = robustness[robustness.kind.isin(["level", "level contrast"]) & (robustness.scope == scope)]
    if rows.empty:
        return []
    lines = [
        f"**Level.** mAP on the reduced languages' own rows ({scope} scope) under imbalance, with the same rows "
        "under `balanced` in brackets, mean over the reduced languages at the severity; a strategy that never learned "
        "a language cannot lose it:",
        "",
    ]
    for (dataset, severity), block in rows.groupby(["dataset", "severity"], sort=True):
        levels = block[block.kind == "level"].set_index("strategy")
        order = [s for s in (headline, COMPARATOR) if s in levels.index] + sorted(
            set(levels.index) - {headline, COMPARATOR}
        )
        parts = [f"{s} {levels.level[s]:.3f} ({levels.reference_level[s]:.3f})" for s in order]
        text = f"- {dataset_label(str(dataset), pools)}, {severity_label(float(severity))}: " + ", ".join(parts)
        contrast = block[block.kind == "level contrast"]
        if len(contrast):
            row = contrast.iloc[0]
            text += f"; {row.strategy} = {signed(float(row.level))} {_interval(row)}"
        lines.append(text + ".")
    return lines


def exposure_matched_lines(robustness: pd.DataFrame, pools: Mapping[str, str] | None = None) -> list[str]:
    """Per dataset × severity: the contrast with the comparator's drop read at the headline's exposure."""
    scope = primary_scope_of(robustness)
    rows = robustness[(robustness.kind == EXPOSURE_MATCHED) & (robustness.scope == scope)]
    if rows.empty:
        return []
    lines = [
        f"**Exposure-matched contrast** ({scope} scope): the headline's specific drop minus {COMPARATOR}'s drop "
        f"interpolated at the headline's realised share of the reduced languages' pair sides; near the plain "
        "contrast, exposure does not explain it:",
        "",
    ]
    for row in rows.sort_values(["dataset", "severity"]).itertuples():
        lines.append(
            f"- {dataset_label(str(row.dataset), pools)}, {severity_label(float(row.severity))}: {row.strategy} = "
            f"{signed(float(row.specific_drop))} {_interval(pd.Series(row._asdict()))} ({row.note})."
        )
    return lines
