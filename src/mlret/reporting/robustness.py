"""The study's answer: does a strategy lose more on a language than on the others when that language's training data shrinks?

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
same difference of the raw and full drops. Scope ``all`` is the primary family; mono, cross and
multi are exploratory.

The target of inference is the mean over *this* design's cells: the ladder languages, each at
each severity. Language identity is a fixed factor of the design, not noise: nothing here
generalises to other languages. What is noise is which training runs happened to be drawn
(seeds) and which test questions happened to be asked.

*Interval.* Every run value above is a sum over resampling units (questions, or their articles
with ``units="article"``) of the unit's rows' weighted AP, so the estimate θ = Σ_r Σ_c A[r, c]·d[r, c]
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

*Multiplicity.* p_holm is Holm's adjustment over the primary family: a dataset's scope-``all``
contrasts, one per severity. mde80 = (t_{df, 1−0.05/(2m)} + t_{df, 0.80})·se is the contrast the
design detects with 80 % power at Holm's strictest level, m the severities of the row's family.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from mlret.errors import MlretError
from mlret.reporting.collect import BASE
from mlret.reporting.stats import CLUSTER_RESAMPLES, CONFIDENCE, holm

SCOPES = ("all", "mono", "cross", "multi")
SETTINGS = ("mono", "cross", "multi")
REFERENCE_PROFILE = "balanced"
#: The strategy every other's robustness is contrasted with: the standard multilingual recipe.
COMPARATOR = "multi"
SIDES = ("reduced", "full")
PRIMARY_SCOPE = "all"
POWER = 0.80
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
]
_KEYS = ["setting", "query_lang", "pool_lang", "qid"]
_CHUNK_CELLS = 2_000_000  # bootstrap replicates × units drawn at once


@dataclass(frozen=True)
class Cell:
    """One reduced language of one imbalanced profile."""

    profile: str
    lang: str
    severity: float
    full: frozenset[str]  # languages the profile keeps in full


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


def _group_ids(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One integer per distinct combination of ``columns``, for each row (factorised column by column: fast on strings)."""
    codes = [pd.factorize(frame[c])[0] for c in columns]
    combined = np.ravel_multi_index(codes, [int(c.max()) + 1 for c in codes])
    return pd.factorize(combined)[0]


@dataclass(frozen=True)
class Pairs:
    """The (setting, query language, pool language) pairs of a dataset, each with its number of rows."""

    setting: np.ndarray
    query_lang: np.ndarray
    pool_lang: np.ndarray
    size: np.ndarray

    @classmethod
    def of(cls, rows: pd.DataFrame) -> tuple[Pairs, np.ndarray]:
        """The pairs of ``rows`` and each row's pair index."""
        index = _group_ids(rows, ["setting", "query_lang", "pool_lang"])
        first = rows.assign(pair=index).drop_duplicates("pair").sort_values("pair")
        columns = (first[c].to_numpy(dtype=object) for c in ("setting", "query_lang", "pool_lang"))
        return cls(*columns, np.bincount(index)), index


def _side_mask(pairs: Pairs, cell: Cell, setting: str, side: str) -> np.ndarray:
    """Which pairs hold one side of a cell in one setting (module docstring)."""
    q, p, full = pairs.query_lang, pairs.pool_lang, list(cell.full)
    if side == "reduced":
        if setting == "cross":
            mine = ((q == cell.lang) & np.isin(p, full)) | ((p == cell.lang) & np.isin(q, full))
        else:
            mine = q == cell.lang
    else:
        mine = np.isin(q, full)  # a mono pair is X→X, a multi pair X→all
        if setting == "cross":
            mine &= np.isin(p, full) & (p != q)
    return (pairs.setting == setting) & mine


def _pair_weights(pairs: Pairs, cell: Cell, scope: str) -> dict[str, np.ndarray]:
    """Macro weight of each pair for each side of a cell; each sums to 1, or is all zero when the scope has nothing to compare."""
    settings = SETTINGS if scope == "all" else (scope,)
    masks = {(s, x): _side_mask(pairs, cell, s, x) for s in settings for x in SIDES}
    used = [s for s in settings if all(masks[s, x].any() for x in SIDES)]
    weights = {side: np.zeros(len(pairs.size)) for side in SIDES}
    for setting, side in itertools.product(used, SIDES):
        mask = masks[setting, side]
        weights[side][mask] = 1.0 / (len(used) * mask.sum())
    return weights


def matching_rows(rows: pd.DataFrame, cell: Cell, scope: str, side: str) -> pd.DataFrame:
    """The rows of one run that enter m_L (``side="reduced"``) or m_F (``"full"``), each with its macro weight ``w``."""
    pairs, pair = Pairs.of(rows)
    weight = _pair_weights(pairs, cell, scope)[side][pair] / pairs.size[pair]
    return rows[weight > 0].assign(w=weight[weight > 0])


@dataclass(frozen=True)
class Scores:
    """Every trained run's AP on one dataset, aligned row by row: what each block of the table reads."""

    pairs: Pairs
    pair: np.ndarray  # pair index of each row
    unit: np.ndarray  # resampling-unit index of each row
    n_units: int
    runs: dict[tuple[str, str, int], int]  # (strategy, profile, seed) -> index into ap
    ap: np.ndarray  # (runs, rows), NaN where a run has no score for a row


def scores(block: pd.DataFrame, unit_of: Mapping[str, object], dataset: str) -> Scores:
    """Align one dataset's per-query rows of every trained run on (setting, query lang, pool lang, qid)."""
    row, run = _group_ids(block, _KEYS), _group_ids(block, ["strategy", "profile", "seed"])
    keys = block[_KEYS].assign(row=row).drop_duplicates("row").sort_values("row")
    names = block[["strategy", "profile", "seed"]].assign(run=run).drop_duplicates("run").sort_values("run")
    ap = np.full((int(run.max()) + 1, len(keys)), np.nan)
    ap[run, row] = block.ap.to_numpy(dtype=float)
    pairs, pair = Pairs.of(keys)
    unit_label = keys.qid.map(unit_of)
    if unit_label.isna().any():
        missing = sorted(keys.qid[unit_label.isna()].unique())
        raise MlretError(
            f"{dataset}: {len(missing)} test question(s) have no resampling unit (first: {missing[0]}).",
            "Rebuild the parallel data (`dvc repro`): every test question must belong to an article.",
        )
    unit = pd.factorize(unit_label)[0]
    return Scores(
        pairs,
        pair,
        unit,
        int(unit.max()) + 1,
        {(s, p, int(seed)): i for s, p, seed, i in names.itertuples(index=False)},
        ap,
    )


@dataclass(frozen=True)
class _Side:
    """One side of one cell: per-unit weighted sums of every run, and the weight of each unit."""

    sums: np.ndarray  # (runs, units)
    weight: np.ndarray  # (units,)


def _side(
    data: Scores, run_ids: list[int], names: list[tuple[str, str, int]], cell: Cell, side: str, pair_weight: np.ndarray
) -> _Side | None:
    row_weight = pair_weight[data.pair] / data.pairs.size[data.pair]
    selected = np.flatnonzero(row_weight)
    if selected.size == 0:
        return None
    ap = data.ap[np.ix_(run_ids, selected)]
    missing = np.isnan(ap).sum(axis=1)
    if missing.any():
        strategy, profile, seed = names[int(np.argmax(missing > 0))]
        who = f"{cell.lang}'s" if side == "reduced" else "the full-data languages'"
        raise MlretError(
            f"{strategy}/{profile}/{seed}: no score for {int(missing.max())} of {who} rows that the cell ({cell.profile}, {cell.lang}) compares.",
            "Re-run its evaluate stage (`dvc repro`): every run is scored on the same test questions.",
        )
    unit, weight, n_runs = data.unit[selected], row_weight[selected], len(run_ids)
    per_run_unit = (unit + data.n_units * np.arange(n_runs)[:, None]).ravel()
    sums = np.bincount(per_run_unit, (ap * weight).ravel(), minlength=n_runs * data.n_units).reshape(
        n_runs, data.n_units
    )
    return _Side(sums, np.bincount(unit, weight, minlength=data.n_units))


@dataclass(frozen=True)
class _Block:
    """Everything one (dataset, scope, severity) needs: per-run per-cell values and their bootstrap replicates."""

    names: list[tuple[str, str, int]]  # the runs, in the order of every array's run axis
    groups: dict[tuple[str, str], list[int]]  # (strategy, profile) -> run positions
    reduced: np.ndarray  # (runs, cells): m_L
    full: np.ndarray  # (runs, cells): m_F
    replicates: np.ndarray  # (resamples, runs, cells): d = m_L − m_F on drawn units


def _block(
    data: Scores, strategies: list[str], cells: list[Cell], scope: str, resamples: int, seed: int = 0
) -> _Block | None:
    names = [
        name
        for name in sorted(data.runs)
        if name[0] in strategies and name[1] in {REFERENCE_PROFILE, *(c.profile for c in cells)}
    ]
    run_ids = [data.runs[n] for n in names]
    weights = {c: _pair_weights(data.pairs, c, scope) for c in cells}
    sides = {(c, side): _side(data, run_ids, names, c, side, weights[c][side]) for c in cells for side in SIDES}
    if any(s is None for s in sides.values()):
        return None
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (strategy, profile, _) in enumerate(names):
        groups.setdefault((strategy, profile), []).append(i)
    # (side, cells, runs, units) and (side, cells, units)
    sums = np.stack([[sides[c, side].sums for c in cells] for side in SIDES])  # type: ignore[union-attr]
    weight = np.stack([[sides[c, side].weight for c in cells] for side in SIDES])  # type: ignore[union-attr]
    n_sides, n_cells, n_runs, n_units = sums.shape
    means = sums.sum(axis=3) / weight.sum(axis=2)[:, :, None]
    rng = np.random.default_rng(seed)
    flat_sums, flat_weight = sums.reshape(-1, n_units).T, weight.reshape(-1, n_units).T
    replicates = np.empty((resamples, n_runs, n_cells))
    size = max(1, _CHUNK_CELLS // n_units)
    for start in range(0, resamples, size):
        k = min(size, resamples - start)
        drawn = rng.integers(0, n_units, size=(k, n_units))
        counts = (
            np.bincount((drawn + n_units * np.arange(k)[:, None]).ravel(), minlength=k * n_units)
            .reshape(k, n_units)
            .astype(float)
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            drawn_means = (counts @ flat_sums).reshape(k, n_sides, n_cells, n_runs) / (counts @ flat_weight).reshape(
                k, n_sides, n_cells, 1
            )
        replicates[start : start + k] = (drawn_means[:, 0] - drawn_means[:, 1]).transpose(0, 2, 1)
    # a draw without a single row of some side (possible only with very few units) has no mean there: left out
    replicates = replicates[np.isfinite(replicates).all(axis=(1, 2))]
    return _Block(names, groups, means[0].T, means[1].T, replicates)


def _coefficients(block: _Block, strategy: str, cells: list[Cell]) -> np.ndarray:
    """A[r, c] such that Σ A·value is the strategy's drop (reference minus profile, mean over cells)."""
    a = np.zeros((len(block.names), len(cells)))
    reference = block.groups[strategy, REFERENCE_PROFILE]
    a[reference, :] += 1.0 / (len(cells) * len(reference))
    for c, cell in enumerate(cells):
        reduced = block.groups[strategy, cell.profile]
        a[reduced, c] -= 1.0 / (len(cells) * len(reduced))
    return a


@dataclass(frozen=True)
class Inference:
    """The estimate's standard error and degrees of freedom, with the pieces they come from."""

    se: float
    df: float
    v_questions: float
    v_seeds: float
    seed_df: float  # ν: replicated runs' degrees of freedom behind the seed variance


def _inference(block: _Block, a: np.ndarray, pooled: list[list[int]]) -> Inference | None:
    """se and df of Σ A·d (module docstring), the seed variance pooled over the given groups; None when it has no df."""
    replicated = [g for g in pooled if len(g) >= 2]
    nu = sum(len(g) - 1 for g in replicated)
    if nu == 0 or len(block.replicates) < 2:
        return None
    d = block.reduced - block.full
    n_cells = d.shape[1]
    sigma_run, sigma_eps = np.zeros((n_cells, n_cells)), np.zeros((n_cells, n_cells))
    for group in replicated:
        deviation = d[group] - d[group].mean(axis=0)
        sigma_run += deviation.T @ deviation
        drawn = block.replicates[:, group] - block.replicates[:, group].mean(axis=1, keepdims=True)
        drawn = drawn - drawn.mean(axis=0)
        sigma_eps += np.einsum("krc,kre->ce", drawn, drawn) / (len(drawn) - 1)
    sigma_run, sigma_eps = sigma_run / nu, sigma_eps / nu
    m = a.T @ a
    v_seeds = float(np.trace(m @ sigma_run))
    v_boot = float(np.var(np.einsum("krc,rc->k", block.replicates, a), ddof=1))
    v_questions = max(v_boot - float(np.trace(m @ sigma_eps)), 0.0)
    ms = m @ sigma_run
    spread = float(np.trace(ms @ ms))
    seed_df = nu * v_seeds**2 / spread if spread > 0 else np.inf
    total = v_questions + v_seeds
    df = total**2 / (v_seeds**2 / seed_df) if v_seeds > 0 else np.inf
    return Inference(float(np.sqrt(total)), float(df), v_questions, v_seeds, float(nu))


def _test(estimate: float, inference: Inference | None, confidence: float = CONFIDENCE) -> dict[str, float]:
    if inference is None:
        return {"ci_low": np.nan, "ci_high": np.nan, "se": np.nan, "df": np.nan, "p": np.nan}
    se, df = inference.se, inference.df
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    if se > 0:
        p = float(2 * scipy_stats.t.sf(abs(estimate) / se, df))
    else:
        p = 1.0 if estimate == 0 else 0.0
    return {"ci_low": estimate - half, "ci_high": estimate + half, "se": se, "df": df, "p": p}


def _block_rows(
    data: Scores,
    dataset: str,
    cells: list[Cell],
    scope: str,
    headline: str,
    units: str,
    resamples: int,
) -> list[dict[str, object]]:
    """The drop rows of every strategy with the runs the cells need, and the headline's contrast."""
    needed = {REFERENCE_PROFILE, *(c.profile for c in cells)}
    strategies = sorted(
        {s for s, _, _ in data.runs if s != BASE and needed <= {p for s2, p, _ in data.runs if s2 == s}}
    )
    block = _block(data, strategies, cells, scope, resamples) if strategies else None
    if block is None:
        return []
    everyone = list(block.groups.values())
    shortfall = f"needs ≥ 2 seeds of some run on {dataset}"
    rows = []

    def row(kind: str, label: str, members: dict[str, float]) -> dict[str, object]:
        a = sum(sign * _coefficients(block, s, cells) for s, sign in members.items())
        own = [g for (s, _), g in block.groups.items() if s in members]
        inference, note = _inference(block, a, own), ""
        if inference is None:
            inference = _inference(block, a, everyone)
            note = shortfall if inference is None else "seed variance pooled with the other strategies' runs"
        reference = min(len(block.groups[s, REFERENCE_PROFILE]) for s in members)
        reduced = min(len(block.groups[s, c.profile]) for s in members for c in cells)
        estimate = float(np.sum(a * (block.reduced - block.full)))
        return {
            "dataset": dataset,
            "scope": scope,
            "severity": cells[0].severity,
            "kind": kind,
            "strategy": label,
            "raw_drop": float(np.sum(a * block.reduced)),
            "full_drop": float(np.sum(a * block.full)),
            "specific_drop": estimate,
            **_test(estimate, inference),
            "p_holm": np.nan,
            "family": "",
            "mde80": np.nan,
            "cells": len(cells),
            "reference_seeds": reference,
            "reduced_seeds": reduced,
            "units": units,
            "note": note,
        }

    for strategy in strategies:
        rows.append(row("drop", strategy, {strategy: 1.0}))
    if headline in strategies and COMPARATOR in strategies and headline != COMPARATOR:
        contrast = row("contrast", f"{headline} − {COMPARATOR}", {headline: 1.0, COMPARATOR: -1.0})
        contrast["family"] = "primary" if scope == PRIMARY_SCOPE else "exploratory"
        rows.append(contrast)
    return rows


def _families(table: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Holm over each dataset's primary contrasts, and every contrast's minimum detectable effect."""
    alpha = 1 - confidence
    for (dataset, scope), family in table[table.kind == "contrast"].groupby(["dataset", "scope"], sort=False):
        m = len(family)
        df = family.df.to_numpy(dtype=float)
        strictest = scipy_stats.t.ppf(1 - alpha / (2 * m), df) + scipy_stats.t.ppf(POWER, df)
        table.loc[family.index, "mde80"] = strictest * family.se.to_numpy(dtype=float)
        if scope == PRIMARY_SCOPE:
            tested = family[family.p.notna()]
            table.loc[tested.index, "p_holm"] = holm(tested.p.tolist())
    return table


def robustness_table(
    results: pd.DataFrame,
    low_resource: Mapping[str, set[str]],
    fractions: Mapping[str, Mapping[str, float]],
    headline: str,
    units: str = "question",
    articles: Mapping[str, Mapping[str, object]] | None = None,
    resamples: int = CLUSTER_RESAMPLES,
    scopes: Sequence[str] = SCOPES,
) -> pd.DataFrame:
    """Drops per dataset × scope × severity × strategy, and the contrast headline − multi, with intervals.

    ``units="article"`` resamples articles instead of questions (``articles[dataset][qid]``).
    Columns: :data:`COLUMNS`; the estimand and its interval are in the module docstring.
    """
    if resamples < 2:
        raise ValueError(f"resamples must be at least 2 (the question variance is their spread), got {resamples}")
    rows = []
    trained = results[results.strategy != BASE]
    for dataset, block in trained.groupby("dataset", sort=True):
        languages = set(block.query_lang)
        cells = ladder_cells({p: set(l) & languages for p, l in low_resource.items()}, fractions, languages)
        if not cells:
            continue
        if units == "article":
            if articles is None or dataset not in articles:
                raise MlretError(
                    f"{dataset}: no question → article map to resample articles by.",
                    "Pass the parallel data's questions (report stage).",
                )
            unit_of: Mapping[str, object] = articles[dataset]
        else:
            unit_of = {q: q for q in block.qid.unique()}
        data = scores(block, unit_of, str(dataset))
        for severity in sorted({c.severity for c in cells}):
            at = [c for c in cells if c.severity == severity]
            for scope in scopes:
                rows += _block_rows(data, str(dataset), at, scope, headline, units, resamples)
    return _families(pd.DataFrame(rows, columns=COLUMNS))


def _number(value: object) -> float | None:
    return None if pd.isna(value) else round(float(value), 4)  # type: ignore[arg-type]


def headline_contrasts(robustness: pd.DataFrame) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{dataset: {severity_S: {estimate, ci_low, ci_high, half_width, se, p, p_holm, mde80, raw}}}`` of the primary contrasts.

    Rounded to 4 decimals; a number that could not be estimated is None, so the JSON stays valid.
    """
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    rows = robustness[(robustness.kind == "contrast") & (robustness.scope == PRIMARY_SCOPE)]
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
