"""The study's answer: how much mAP a strategy loses on a language when that language's training data shrinks.

*Cells.* Every imbalanced profile keeps a fraction (its *severity*: 0, 0.01, 0.05, 0.25 on the
shipped ladder) of some languages' training questions and all of the others'. A cell is one
(profile, language L) with L below its full share. L's *own rows* are those where L's data matters
and no other reduced language's does:

- mono: L→L;
- cross: X→L and L→X, for every X the profile keeps in full;
- multi: L's questions against the whole multilingual pool.

*Drop.* In a cell, a strategy's drop is its mAP on L's own rows under the reference profile
(``balanced``, averaged over its seeds) minus its mAP on the same rows under the cell's profile:
positive means it loses under imbalance. mAP over the rows is the evaluate stage's macro rule
(queries within a (query, pool) pair, then pairs within a setting); ``scope="all"`` weighs the
three settings equally, ``scope="mono"`` (etc.) takes one. A strategy's drop at a severity is
the mean of its drops over the cells at that severity; with the ladder a Latin square, that is
one cell per ladder language, so language identity averages out.

*Contrast.* drop(a) − drop(b) at a severity (the headline: hybrid − multi); negative means a
loses less, i.e. is more robust.

*Interval.* Percentile bootstrap with three levels, drawn independently in each replicate:

1. cells: the C cells at the severity, drawn with replacement (which languages and which
   ladder runs happened to sit there; each ladder run has one seed, so this level carries its
   run-to-run noise);
2. reference seeds: each strategy's balanced seeds, drawn with replacement;
3. units: the test questions (or, as a sensitivity check, their articles), drawn with
   replacement once and shared by every cell and strategy, since all are scored on the same
   questions; every row of a drawn unit enters together, and the mean is renormalised by the
   weight drawn.

With one cell and one seed this reduces to the one-level cluster bootstrap of
:func:`mlret.reporting.stats.cluster_bootstrap_interval`. 95 % intervals are per severity and
not adjusted for the four severities.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlret.errors import MlretError
from mlret.reporting.collect import BASE
from mlret.reporting.stats import CLUSTER_RESAMPLES, CONFIDENCE, Contrast, percentile_interval

SCOPES = ("all", "mono", "cross", "multi")
REFERENCE_PROFILE = "balanced"
#: The strategy every other's robustness is contrasted with: the standard multilingual recipe.
COMPARATOR = "multi"


@dataclass(frozen=True)
class Cell:
    """One reduced language of one imbalanced profile."""

    profile: str
    lang: str
    severity: float
    full: frozenset[str]  # languages the profile keeps in full: the partners of L's cross rows


def ladder_cells(low_resource: Mapping[str, set[str]], fractions: Mapping[str, Mapping[str, float]], languages: set[str]) -> list[Cell]:
    """Every (profile, reduced language) with its severity; ``fractions[profile][lang]`` is the share kept."""
    cells = []
    for profile, low in low_resource.items():
        if profile == REFERENCE_PROFILE:
            continue
        full = frozenset(languages - set(low))
        cells += [Cell(profile, lang, float(fractions[profile][lang]), full) for lang in sorted(low)]
    return cells


def own_rows(rows: pd.DataFrame, cell: Cell, scope: str) -> pd.DataFrame:
    """L's own rows in ``scope`` (see the module docstring), each with its macro weight; the weights sum to 1."""
    lang = cell.lang
    q, p, setting = rows.query_lang, rows.pool_lang, rows.setting
    mask = {
        "mono": (setting == "mono") & (q == lang),
        "cross": (setting == "cross") & (((q == lang) & p.isin(cell.full)) | ((p == lang) & q.isin(cell.full))),
        "multi": (setting == "multi") & (q == lang),
    }
    settings = SCOPES[1:] if scope == "all" else (scope,)
    parts = []
    for name in settings:
        part = rows[mask[name]]
        if part.empty:
            continue
        pair = part.query_lang.astype(str) + ">" + part.pool_lang.astype(str)
        weight = 1.0 / (pair.map(pair.value_counts()) * pair.nunique())
        parts.append(part.assign(w=weight.to_numpy()))
    if not parts:
        return rows.iloc[:0].assign(w=pd.Series(dtype=float))
    own = pd.concat(parts, ignore_index=True)
    return own.assign(w=own.w / len(parts))


def _unit_sums(own: pd.DataFrame, values: pd.Series, units: pd.Index, unit_of: Mapping[str, object]) -> np.ndarray:
    """Σ w·value per unit (question or article), in the order of ``units``."""
    unit = own.qid.map(unit_of)
    return (own.w * values).groupby(unit.to_numpy()).sum().reindex(units, fill_value=0.0).to_numpy()


@dataclass(frozen=True)
class DropData:
    """One strategy's per-unit sums at one severity: what a bootstrap replicate recombines."""

    reference: np.ndarray  # (seeds, cells, units): Σ w·AP under the reference profile, per seed
    reduced: np.ndarray  # (cells, units): Σ w·AP under each cell's profile, averaged over its seeds
    weight: np.ndarray  # (cells, units): Σ w


def drop_data(results: pd.DataFrame, strategy: str, cells: list[Cell], scope: str, unit_of: Mapping[str, object], units: pd.Index) -> DropData | None:
    """Per-unit sums of one strategy on one dataset, or None when a run the cells need is missing."""
    mine = results[results.strategy == strategy]
    reference = mine[mine.profile == REFERENCE_PROFILE]
    seeds = sorted(reference.seed.unique())
    if not seeds:
        return None
    ref_sums, red_sums, weights = [], [], []
    for cell in cells:
        reduced = mine[mine.profile == cell.profile]
        if reduced.empty:
            return None
        template = own_rows(reduced[reduced.seed == reduced.seed.min()], cell, scope)
        key = ["setting", "query_lang", "pool_lang", "qid"]
        template = template[key + ["w"]]
        weights.append(_unit_sums(template, pd.Series(1.0, index=template.index), units, unit_of))
        red = template.merge(reduced.groupby(key, as_index=False).ap.mean(), on=key, how="left")
        red_sums.append(_unit_sums(red, red.ap, units, unit_of))
        per_seed = []
        for seed in seeds:
            ref = template.merge(reference[reference.seed == seed][key + ["ap"]], on=key, how="left")
            if ref.ap.isna().any():
                raise MlretError(
                    f"{strategy}/{REFERENCE_PROFILE}/{seed}: no score for {int(ref.ap.isna().sum())} of {cell.lang}'s rows that {strategy}/{cell.profile} has.",
                    "Re-run its evaluate stage (`dvc repro`): both profiles are scored on the same test questions.",
                )
            per_seed.append(_unit_sums(ref, ref.ap, units, unit_of))
        ref_sums.append(per_seed)
    return DropData(np.transpose(np.array(ref_sums), (1, 0, 2)), np.array(red_sums), np.array(weights))


def _estimate(data: DropData) -> float:
    per_cell = (data.reference.mean(axis=0) - data.reduced).sum(axis=1) / data.weight.sum(axis=1)
    return float(per_cell.mean())


def bootstrap_drops(
    data: Mapping[str, DropData], coefficients: Mapping[str, float],
    resamples: int = CLUSTER_RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE,
) -> Contrast:
    """Σ_s c_s · drop_s with its three-level percentile interval (module docstring).

    Every strategy's data must hold the same cells and units in the same order.
    """
    names = list(coefficients)
    cells, units = data[names[0]].weight.shape
    rng = np.random.default_rng(seed)
    cell_counts = rng.multinomial(cells, np.full(cells, 1 / cells), size=resamples) if cells > 1 else np.ones((resamples, 1))
    unit_counts = rng.multinomial(units, np.full(units, 1 / units), size=resamples).astype(float)
    total = np.zeros(resamples)
    for name in names:
        d = data[name]
        n_seeds = d.reference.shape[0]
        seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=resamples) if n_seeds > 1 else np.ones((resamples, 1))
        # (R, seeds, cells): reference sums over the drawn units, per seed
        ref_drawn = np.einsum("ru,scu->rsc", unit_counts, d.reference)
        ref = np.einsum("rs,rsc->rc", seed_counts / n_seeds, ref_drawn)
        red = unit_counts @ d.reduced.T
        weight = unit_counts @ d.weight.T
        per_cell = (ref - red) / weight
        total += coefficients[name] * (cell_counts * per_cell).sum(axis=1) / cells
    estimate = sum(coefficients[n] * _estimate(data[n]) for n in names)
    low, high = percentile_interval(total, confidence)
    return Contrast(float(estimate), low, high)


def robustness_table(
    results: pd.DataFrame,
    low_resource: Mapping[str, set[str]],
    fractions: Mapping[str, Mapping[str, float]],
    headline: str,
    units: str = "question",
    articles: Mapping[str, Mapping[str, object]] | None = None,
    resamples: int = CLUSTER_RESAMPLES,
) -> pd.DataFrame:
    """Drops per dataset × scope × severity × strategy, and the contrast headline − multi, with intervals.

    ``units="article"`` resamples articles instead of questions (``articles[dataset][qid]``).
    Rows: ``kind`` is ``drop`` (one strategy) or ``contrast`` (``strategy`` = "hybrid − multi").
    """
    rows = []
    trained = results[results.strategy != BASE]
    for dataset, block in trained.groupby("dataset", sort=True):
        languages = set(block.query_lang)
        cells = ladder_cells({p: set(l) & languages for p, l in low_resource.items()}, fractions, languages)
        if units == "article":
            unit_of: Mapping[str, object] = (articles or {})[dataset]
        else:
            unit_of = {q: q for q in block.qid.unique()}
        unit_index = pd.Index(sorted(set(unit_of[q] for q in block.qid.unique())))
        for severity in sorted({c.severity for c in cells}):
            at = [c for c in cells if c.severity == severity]
            for scope in SCOPES:
                data = {}
                for strategy in sorted(block.strategy.unique()):
                    found = drop_data(block, strategy, at, scope, unit_of, unit_index)
                    if found is not None:
                        data[strategy] = found
                for strategy, found in data.items():
                    c = bootstrap_drops({strategy: found}, {strategy: 1.0}, resamples)
                    rows.append(_row(dataset, scope, severity, "drop", strategy, c, len(at), found.reference.shape[0], units))
                if headline in data and COMPARATOR in data and headline != COMPARATOR:
                    pair = {headline: data[headline], COMPARATOR: data[COMPARATOR]}
                    c = bootstrap_drops(pair, {headline: 1.0, COMPARATOR: -1.0}, resamples)
                    seeds = min(d.reference.shape[0] for d in pair.values())
                    rows.append(_row(dataset, scope, severity, "contrast", f"{headline} − {COMPARATOR}", c, len(at), seeds, units))
    columns = ["dataset", "scope", "severity", "kind", "strategy", "drop_map", "ci_low", "ci_high", "cells", "reference_seeds", "units"]
    return pd.DataFrame(rows, columns=columns)


def _row(dataset: str, scope: str, severity: float, kind: str, strategy: str, c: Contrast, cells: int, seeds: int, units: str) -> dict[str, object]:
    return {"dataset": dataset, "scope": scope, "severity": severity, "kind": kind, "strategy": strategy,
            "drop_map": c.estimate, "ci_low": c.low, "ci_high": c.high, "cells": cells, "reference_seeds": seeds, "units": units}


def headline_contrasts(robustness: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """``{dataset: {severity_S: {estimate, ci_low, ci_high, half_width}}}`` of the headline contrast (scope all)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    rows = robustness[(robustness.kind == "contrast") & (robustness.scope == "all")]
    for row in rows.itertuples():
        out.setdefault(row.dataset, {})[f"severity_{row.severity:g}"] = {
            "estimate": round(float(row.drop_map), 4),
            "ci_low": round(float(row.ci_low), 4),
            "ci_high": round(float(row.ci_high), 4),
            "half_width": round(float(row.ci_high - row.ci_low) / 2, 4),
        }
    return out
