"""The study's answer: does a strategy lose more on a language than on the others when that language's data shrinks?

*Cells.* Every imbalanced profile P keeps a fraction (its *severity*: 0, 0.01, 0.05, 0.25 on the
shipped ladder) of some languages' training questions and all of the others'. A cell is one
(P, reduced language L); F is the set of languages P keeps in full (fraction 1.0).

*Matching rows.* In one training run (strategy, profile, seed), a cell has two values, each a
macro mean of per-query AP by the evaluate stage's rule (queries equally within a (query, pool)
pair, pairs equally within a setting):

- mono:  m_L = mAP of L→L;                    m_F = unweighted mean over X ∈ F of mAP(X→X);
- cross: m_L = macro over the pairs X→L and L→X, X ∈ F;
         m_F = macro over the pairs X→Y, X ≠ Y, both in F;
- multi: m_L = mAP of L's queries in the multilingual pool;
         m_F = unweighted mean over X ∈ F of mAP of X's queries in that pool;
- scope ``all``: the three settings weighed 1/3 each, for m_L and m_F alike (a setting enters only
  when both sides have rows in it, so that the two are always averaged over the same settings).

The multilingual pool holds every language's passages, those of the profile's other reduced
languages too: multi rows are not insulated from the other reductions, for L's queries and F's
alike. On the shipped ladder every profile reduces the same four languages, so each cell's multi
rows see the same kind of pool. Cross rows between two reduced languages enter no cell.

*Estimand.* With m(P) the mean of a value over the runs (seeds) of one strategy at profile P:

- raw drop      = m_L(balanced) − m_L(P)   (positive: the strategy loses on L under imbalance);
- full drop     = m_F(balanced) − m_F(P)   (what the whole run loses: the languages kept in full);
- specific drop = raw drop − full drop, the loss that is specific to L.

A strategy's value at a severity is the unweighted mean over the cells at that severity (on the
Latin-square ladder one per ladder language, each from a different profile). The contrast at a
severity is specific drop(headline) − specific drop(multi), written "hybrid − multi"; negative
means the headline strategy is more robust. The raw and full columns of a contrast row are the
same difference of the raw and full drops. Scope ``all`` is the primary family, unless a base's
``report.primary_scope`` names the one setting that base learns at the study's budget; the other
scopes are exploratory.

*Level.* A strategy that never learned L cannot lose it: a small drop can mean "never learned" as
well as "robust". Beside each drop, rows of kind ``level`` give m_L(P), the mean over the cells of
the strategy's value on L's own rows under imbalance (``reference_level``: the same rows under
``balanced``), and ``level contrast`` rows hybrid − multi of it; the same linear form and interval,
with m_L in place of d (a whole-run shift then does not cancel).

The target of inference is the mean over *this* design's cells: the ladder languages, each at
each severity. Language identity is a fixed factor of the design, not noise: nothing here
generalises to other languages. What is noise is which training runs happened to be drawn
(seeds) and which test questions happened to be asked.

*Interval.* Every run value above is a sum over resampling units (questions, or their articles:
both tables come from one alignment of the results, :mod:`mlret.reporting.drops`) of the unit's
rows' weighted AP, so the estimate θ = Σ_r Σ_c A[r, c]·d[r, c]
is linear in the runs' per-cell values d = m_L − m_F, with A[r, c] = +1/(C·n_ref) for every
reference run r of a strategy (C cells, n_ref reference seeds), −1/(C·n_P) for every run of the
cell's profile P (n_P seeds), and the strategy's coefficient (+1 or −1 in a contrast) applied on
top. Two sources of noise enter:

1. Questions. One bootstrap draw of the units (with replacement) is shared by every cell,
   strategy and run, since all are scored on the same questions; each replicate recomputes every
   run's m_L and m_F on the drawn units (every row of a drawn unit enters together, and each mean
   is renormalised by the weight drawn), then θ. V_boot is the variance of the replicates (a
   replicate that draws no row of some side, possible only with a handful of units, is left out).
2. Training runs. For each (strategy, profile) with n ≥ 2 seeds, each run's deviation
   e_r = d_r − mean over the group's runs (a vector over the C cells). Σ_run = Σ_r e_r e_rᵀ / ν,
   ν = Σ (n − 1) over those groups, pooled over profiles and over the strategies of the row
   (a contrast: both; a drop: its own, or every strategy at the severity when its own runs have
   a single seed each, as a note then says). The seed variance is V_seed = tr(M Σ_run) with
   M = Σ_r A_r A_rᵀ: each profile's mean over n seeds contributes its variance / n, and the
   reference runs, shared by every cell, enter with their full weight 1/C per cell. A whole-run
   shift (a seed that is better at every language) cancels in d and adds nothing.

A run's deviation also carries its own question-level noise (its per-question scores wobble
from seed to seed), which the question bootstrap of seed-averaged values counts already. That
part is removed once: Σ_ε = Σ_r Cov_boot(e*_r) / ν, the bootstrap covariance of each run's
deviation over the same replicates, and V_q = max(V_boot − tr(M Σ_ε), 0).

se = √(V_q + V_seed). The seed part has Satterthwaite's df_seed = ν·tr(MΣ_run)² / tr((MΣ_run)²)
(Σ_run is a pooled covariance with ν degrees of freedom); the question part is treated as exact,
so df = (V_q + V_seed)² / (V_seed² / df_seed). The interval is θ ± t_{df, 0.975}·se and p is the
two-sided t-test of θ = 0 with the same df. The pooling assumes the run-to-run noise of a cell's
d is the same for every profile (and, pooled, strategy); with two seeds per run each group adds
one degree of freedom. When no (strategy, profile) among the runs a row needs has two seeds, that
noise cannot be estimated from the data: ci, se, df and p are NaN with a note, never an interval
that leaves it out.

*Multiplicity.* p_holm is Holm's adjustment over the primary family: a dataset's primary-scope
contrasts, one per severity. mde80 = (t_{df, 1−0.05/(2m)} + t_{df, 0.80})·se is the contrast the
design detects with 80 % power at Holm's strictest level, m the severities of the row's family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from mlret.errors import MlretError
from mlret.reporting.drops import (
    ALL_SETTINGS,
    REFERENCE_PROFILE,
    Cell,
    Estimates,
    Scores,
    coefficients,
    estimates,
    inference,
    scores,
    sides,
    t_test,
)
from mlret.reporting.exposure import exposure_matched_rows
from mlret.reporting.stats import CLUSTER_RESAMPLES, CONFIDENCE, holm
from mlret.vocabulary import BASE, Setting

SCOPES = (ALL_SETTINGS, *(s.value for s in Setting))
#: The strategy every other's robustness is contrasted with: the standard multilingual recipe.
COMPARATOR = "multi"
#: The primary family's scope unless a base's ``report.primary_scope`` names another.
PRIMARY_SCOPE = ALL_SETTINGS
POWER = 0.80
#: The resampling units: each question, or each article with all its questions.
UNITS = ("question", "article")
COLUMNS = [
    "dataset",
    "scope",
    "severity",
    "kind",
    "strategy",
    "raw_drop",
    "full_drop",
    "specific_drop",
    "ci_low",
    "ci_high",
    "se",
    "df",
    "p",
    "p_holm",
    "family",
    "mde80",
    "cells",
    "reference_seeds",
    "reduced_seeds",
    "units",
    "note",
    "level",
    "reference_level",
]


def ladder_cells(
    low_resource: Mapping[str, set[str]], fractions: Mapping[str, Mapping[str, float]], languages: set[str]
) -> list[Cell]:
    """Every (profile, reduced language) with its severity; ``fractions[profile][lang]`` is the share kept."""
    cells = []
    for profile, low in low_resource.items():
        if profile == REFERENCE_PROFILE:
            continue
        full = frozenset(languages - set(low))
        cells += [Cell(profile, lang, float(fractions[profile][lang]), full) for lang in sorted(low)]
    return cells


def _block_rows(
    data: Scores,
    dataset: str,
    cells: list[Cell],
    scope: str,
    headline: str,
    units: Sequence[str],
    resamples: int,
    primary_scope: str = PRIMARY_SCOPE,
) -> dict[str, list[dict[str, object]]]:
    """Per resampling unit, the drops of every strategy with the runs the cells need, and the headline's contrast."""
    needed = {REFERENCE_PROFILE, *(c.profile for c in cells)}
    strategies = sorted(
        {s for s, _, _ in data.runs if s != BASE and needed <= {p for s2, p, _ in data.runs if s2 == s}}
    )
    block = sides(data, strategies, cells, scope) if strategies else None
    if block is None:
        return {unit: [] for unit in units}
    everyone = list(block.groups.values())
    shortfall = f"needs ≥ 2 seeds of some run on {dataset}"

    def row(
        unit: str, values: Estimates, kind: str, label: str, members: dict[str, float], level: bool = False
    ) -> dict[str, object]:
        a = np.zeros((len(block.names), len(cells)))
        for strategy, sign in members.items():
            a = a + sign * coefficients(block, strategy, cells, level)
        own = [g for (s, _), g in block.groups.items() if s in members]
        found, note = inference(values, a, own, level), ""
        if found is None:
            found = inference(values, a, everyone, level)
            note = shortfall if found is None else "seed variance pooled with the other strategies' runs"
        if level:
            # The balanced runs' value on the same rows: what the strategy had before the reduction.
            reference = sum(
                sign * (coefficients(block, s, cells) + coefficients(block, s, cells, True))
                for s, sign in members.items()
            )
            estimate = float(np.sum(a * values.reduced))
            measured = dict.fromkeys(("raw_drop", "full_drop", "specific_drop"), np.nan)
            measured |= {"level": estimate, "reference_level": float(np.sum(reference * values.reduced))}
        else:
            estimate = float(np.sum(a * (values.reduced - values.full)))
            measured = {
                "raw_drop": float(np.sum(a * values.reduced)),
                "full_drop": float(np.sum(a * values.full)),
                "specific_drop": estimate,
                "level": np.nan,
                "reference_level": np.nan,
            }
        return {
            "dataset": dataset,
            "scope": scope,
            "severity": cells[0].severity,
            "kind": kind,
            "strategy": label,
            **measured,
            **t_test(estimate, found),
            "p_holm": np.nan,
            "family": "",
            "mde80": np.nan,
            "cells": len(cells),
            "reference_seeds": min(len(block.groups[s, REFERENCE_PROFILE]) for s in members),
            "reduced_seeds": min(len(block.groups[s, c.profile]) for s in members for c in cells),
            "units": unit,
            "note": note,
        }

    out: dict[str, list[dict[str, object]]] = {}
    for unit in units:
        values = estimates(data, block, unit, resamples)
        rows = [row(unit, values, "drop", strategy, {strategy: 1.0}) for strategy in strategies]
        rows += [row(unit, values, "level", strategy, {strategy: 1.0}, level=True) for strategy in strategies]
        if headline in strategies and COMPARATOR in strategies and headline != COMPARATOR:
            pair = {headline: 1.0, COMPARATOR: -1.0}
            contrast = row(unit, values, "contrast", f"{headline} − {COMPARATOR}", pair)
            contrast["family"] = "primary" if scope == primary_scope else "exploratory"
            rows.append(contrast)
            rows.append(row(unit, values, "level contrast", f"{headline} − {COMPARATOR}", pair, level=True))
        out[unit] = rows
    return out


def _families(table: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Holm over each dataset's primary contrasts (``family`` is ``primary``), and every contrast's minimum
    detectable effect."""
    alpha = 1 - confidence
    for _, family in table[table.kind == "contrast"].groupby(["dataset", "scope"], sort=False):
        m = len(family)
        df = family.df.to_numpy(dtype=float)
        strictest = scipy_stats.t.ppf(1 - alpha / (2 * m), df) + scipy_stats.t.ppf(POWER, df)
        table.loc[family.index, "mde80"] = strictest * family.se.to_numpy(dtype=float)
        if (family.family == "primary").all():
            tested = family[family.p.notna()]
            table.loc[tested.index, "p_holm"] = holm(tested.p.tolist())
    return table


def robustness_tables(
    results: pd.DataFrame,
    low_resource: Mapping[str, set[str]],
    fractions: Mapping[str, Mapping[str, float]],
    headline: str,
    articles: Mapping[str, Mapping[str, object]] | None = None,
    units: Sequence[str] = UNITS,
    resamples: int = CLUSTER_RESAMPLES,
    scopes: Sequence[str] = SCOPES,
    primary_scope: str = PRIMARY_SCOPE,
    exposure: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Per resampling unit, drops per dataset × scope × severity × strategy and the contrast headline − multi.

    ``primary_scope``: the scope whose contrasts form each dataset's primary (Holm-adjusted) family.
    ``exposure`` (the report's exposure table): adds the exposure-matched contrasts
    (:mod:`mlret.reporting.exposure`).

    ``units`` names the units resampled: ``question``, and ``article`` (``articles[dataset][qid]``).
    The results are aligned and each cell's rows weighed once for all units; only the bootstrap
    draws differ. Columns: :data:`COLUMNS`; the estimand and its interval are in the module docstring.
    """
    if resamples < 2:
        raise ValueError(f"resamples must be at least 2 (the question variance is their spread), got {resamples}")
    rows: dict[str, list[dict[str, object]]] = {unit: [] for unit in units}
    trained = results[results.strategy != BASE]
    for dataset, block in trained.groupby("dataset", sort=True):
        languages = set(block.query_lang)
        reduced = {profile: set(langs) & languages for profile, langs in low_resource.items()}
        cells = ladder_cells(reduced, fractions, languages)
        if not cells:
            continue
        data = scores(block, _unit_maps(block, str(dataset), units, articles), str(dataset))
        for severity in sorted({c.severity for c in cells}):
            at = [c for c in cells if c.severity == severity]
            for scope in scopes:
                found_rows = _block_rows(data, str(dataset), at, scope, headline, units, resamples, primary_scope)
                for unit, found in found_rows.items():
                    rows[unit] += found
        if exposure is not None and headline != COMPARATOR:
            for scope in scopes:
                for unit in units:
                    rows[unit] += exposure_matched_rows(
                        data, str(dataset), cells, scope, headline, COMPARATOR, exposure, unit, resamples
                    )
    return {unit: _families(pd.DataFrame(found, columns=COLUMNS)) for unit, found in rows.items()}


def _unit_maps(
    block: pd.DataFrame, dataset: str, units: Sequence[str], articles: Mapping[str, Mapping[str, object]] | None
) -> dict[str, Mapping[str, object]]:
    """qid -> resampling unit, for each unit named."""
    out: dict[str, Mapping[str, object]] = {}
    for unit in units:
        if unit == "question":
            out[unit] = {q: q for q in block.qid.unique()}
        elif articles is None or dataset not in articles:
            raise MlretError(
                f"{dataset}: no question → article map to resample articles by.",
                "Pass the parallel data's questions (report stage).",
            )
        else:
            out[unit] = articles[dataset]
    return out


def primary_scope_of(robustness: pd.DataFrame) -> str:
    """The scope of a robustness table's primary family (that of its ``primary`` contrasts; ``all`` without one)."""
    primary = robustness[robustness.family == "primary"] if "family" in robustness else robustness.iloc[:0]
    return str(primary.scope.iloc[0]) if len(primary) else PRIMARY_SCOPE


def scope_title(scope: str, primary: str) -> str:
    """How a table or plot names a scope: its settings, and whether its contrasts are primary or exploratory."""
    settings = "all settings" if scope == ALL_SETTINGS else f"{scope} only"
    if scope == primary:
        return settings if scope == ALL_SETTINGS else f"{settings} (primary)"
    return f"{settings} (exploratory)"


def _number(value: object) -> float | None:
    return None if pd.isna(value) else round(float(value), 4)  # type: ignore[arg-type]


def headline_contrasts(robustness: pd.DataFrame) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{dataset: {severity_S: {estimate, ci_low, ci_high, half_width, se, p, p_holm, mde80, raw}}}`` of the primary
    contrasts.

    Rounded to 4 decimals; a number that could not be estimated is None, so the JSON stays valid.
    """
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    rows = robustness[(robustness.kind == "contrast") & (robustness.family == "primary")]
    for row in rows.itertuples():
        out.setdefault(str(row.dataset), {})[f"severity_{row.severity:g}"] = {
            "estimate": _number(row.specific_drop),
            "ci_low": _number(row.ci_low),
            "ci_high": _number(row.ci_high),
            "half_width": _number((row.ci_high - row.ci_low) / 2),
            "se": _number(row.se),
            "p": _number(row.p),
            "p_holm": _number(row.p_holm),
            "mde80": _number(row.mde80),
            "raw": _number(row.raw_drop),
        }
    return out
