"""The arithmetic behind the robustness table: each run's m_L and m_F per cell, their bootstrap replicates, se and df.

The estimand, the matching rows and the variance are defined in :mod:`mlret.reporting.robustness`;
this module computes them. One dataset's per-query AP of every trained run is aligned once
(:func:`scores`), with the row's resampling unit under each unit named (questions, articles); a
block (dataset, scope, severity) then selects each cell's rows and their macro weights once
(:func:`sides`) and draws its bootstrap replicates per unit (:func:`replicates`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from mlret.errors import MlretError
from mlret.reporting.stats import CONFIDENCE
from mlret.scoring.measures import macro_weights
from mlret.vocabulary import Setting

REFERENCE_PROFILE = "balanced"
SIDES = ("reduced", "full")
#: The scope that weighs the three settings alike; the others are one setting each.
ALL_SETTINGS = "all"
_KEYS = ["setting", "query_lang", "pool_lang", "qid"]
_CHUNK_CELLS = 2_000_000  # bootstrap replicates × units drawn at once

Run = tuple[str, str, int]  # (strategy, profile, seed)


@dataclass(frozen=True)
class Cell:
    """One reduced language of one imbalanced profile."""

    profile: str
    lang: str
    severity: float
    full: frozenset[str]  # languages the profile keeps in full


def _group_ids(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One integer per distinct combination of ``columns``, for each row (factorised column by column: fast)."""
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
        setting, query_lang, pool_lang = (
            first[c].to_numpy(dtype=object) for c in ("setting", "query_lang", "pool_lang")
        )
        return cls(setting, query_lang, pool_lang, np.bincount(index)), index


@dataclass(frozen=True)
class Scores:
    """Every trained run's AP on one dataset, aligned row by row: what each block of the table reads."""

    pairs: Pairs
    pair: np.ndarray  # pair index of each row
    units: dict[str, np.ndarray]  # unit name (question, article) -> resampling-unit index of each row
    runs: dict[Run, int]  # run -> index into ap
    ap: np.ndarray  # (runs, rows), NaN where a run has no score for a row


def scores(block: pd.DataFrame, unit_of: Mapping[str, Mapping[str, object]], dataset: str) -> Scores:
    """Align one dataset's per-query rows of every trained run on (setting, query lang, pool lang, qid).

    ``unit_of[units][qid]`` is the question's resampling unit under each unit named.
    """
    row, run = _group_ids(block, _KEYS), _group_ids(block, ["strategy", "profile", "seed"])
    keys = block[_KEYS].assign(row=row).drop_duplicates("row").sort_values("row")
    names = block[["strategy", "profile", "seed"]].assign(run=run).drop_duplicates("run").sort_values("run")
    ap = np.full((int(run.max()) + 1, len(keys)), np.nan)
    ap[run, row] = block.ap.to_numpy(dtype=float)
    pairs, pair = Pairs.of(keys)
    units = {}
    for name, labels in unit_of.items():
        unit_label = keys.qid.map(labels)
        if unit_label.isna().any():
            missing = sorted(keys.qid[unit_label.isna()].unique())
            raise MlretError(
                f"{dataset}: {len(missing)} test question(s) have no resampling unit (first: {missing[0]}).",
                "Rebuild the parallel data (`dvc repro`): every test question must belong to an article.",
            )
        units[name] = pd.factorize(unit_label)[0]
    runs = {(s, p, int(seed)): i for s, p, seed, i in names.itertuples(index=False)}
    return Scores(pairs, pair, units, runs, ap)


def _side_mask(pairs: Pairs, cell: Cell, setting: Setting, side: str) -> np.ndarray:
    """Which pairs hold one side of a cell in one setting (module docstring of :mod:`mlret.reporting.robustness`)."""
    q, p, full = pairs.query_lang, pairs.pool_lang, list(cell.full)
    if side == "reduced":
        if setting == Setting.CROSS:
            mine = ((q == cell.lang) & np.isin(p, full)) | ((p == cell.lang) & np.isin(q, full))
        else:
            mine = q == cell.lang
    else:
        mine = np.isin(q, full)  # a mono pair is X→X, a multi pair X→all
        if setting == Setting.CROSS:
            mine &= np.isin(p, full) & (p != q)
    return (pairs.setting == setting) & mine


def row_weights(pairs: Pairs, pair: np.ndarray, cell: Cell, scope: str) -> dict[str, np.ndarray]:
    """Each row's macro weight on each side of a cell, ``pair`` the row's index into ``pairs``.

    Pairs within a setting (:func:`mlret.scoring.measures.macro_weights`, one weight per pair),
    the settings used alike, then queries within a pair: a setting is used when both sides have a
    pair in it. Each side's weights sum to 1, or are all zero when the scope has nothing to compare.
    """
    settings = list(Setting) if scope == ALL_SETTINGS else [Setting(scope)]
    masks = {(s, x): _side_mask(pairs, cell, s, x) for s in settings for x in SIDES}
    used = [s for s in settings if all(masks[s, x].any() for x in SIDES)]
    weights = {}
    for side in SIDES:
        chosen = np.flatnonzero(np.any([masks[s, side] for s in used], axis=0)) if used else np.array([], dtype=int)
        pair_weight = np.zeros(len(pairs.size))
        if chosen.size:
            pair_weight[chosen] = macro_weights([chosen], within=[pairs.setting[chosen]], parts=len(used))
        weights[side] = pair_weight[pair] / pairs.size[pair]
    return weights


@dataclass(frozen=True)
class Sides:
    """Both sides of every cell of one block, over the runs it needs: what every resampling unit reads."""

    names: list[Run]  # the runs, in the order of every array's run axis
    groups: dict[tuple[str, str], list[int]]  # (strategy, profile) -> run positions
    rows: dict[tuple[int, str], np.ndarray]  # (cell, side) -> the rows compared
    ap: dict[tuple[int, str], np.ndarray]  # (cell, side) -> (runs, rows) AP
    weight: dict[tuple[int, str], np.ndarray]  # (cell, side) -> (rows,) macro weight


def _checked_ap(
    data: Scores, run_ids: list[int], names: list[Run], cell: Cell, side: str, rows: np.ndarray
) -> np.ndarray:
    ap = data.ap[np.ix_(np.asarray(run_ids, dtype=np.intp), rows)]
    missing = np.isnan(ap).sum(axis=1)
    if missing.any():
        strategy, profile, seed = names[int(np.argmax(missing > 0))]
        who = f"{cell.lang}'s" if side == "reduced" else "the full-data languages'"
        raise MlretError(
            f"{strategy}/{profile}/{seed}: no score for {int(missing.max())} of {who} rows that the cell "
            f"({cell.profile}, {cell.lang}) compares.",
            "Re-run its evaluate stage (`dvc repro`): every run is scored on the same test questions.",
        )
    return ap


def sides(data: Scores, strategies: Sequence[str], cells: list[Cell], scope: str) -> Sides | None:
    """Every cell's rows, their macro weights and every run's AP on both sides; None when a side has no row."""
    profiles = {REFERENCE_PROFILE, *(c.profile for c in cells)}
    names = [name for name in sorted(data.runs) if name[0] in strategies and name[1] in profiles]
    run_ids = [data.runs[n] for n in names]
    rows, ap, weight = {}, {}, {}
    for c, cell in enumerate(cells):
        weights = row_weights(data.pairs, data.pair, cell, scope)
        for side in SIDES:
            rows[c, side] = np.flatnonzero(weights[side])
            weight[c, side] = weights[side][rows[c, side]]
            if rows[c, side].size:
                ap[c, side] = _checked_ap(data, run_ids, names, cell, side, rows[c, side])
    if len(ap) < len(rows):
        return None
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (strategy, profile, _) in enumerate(names):
        groups.setdefault((strategy, profile), []).append(i)
    return Sides(names, groups, rows, ap, weight)


@dataclass(frozen=True)
class Estimates:
    """Every run's per-cell values on one resampling unit's sums, and their bootstrap replicates."""

    reduced: np.ndarray  # (runs, cells): m_L
    full: np.ndarray  # (runs, cells): m_F
    replicates: np.ndarray  # (resamples, runs, cells): d = m_L − m_F on drawn units
    reduced_replicates: np.ndarray  # (resamples, runs, cells): m_L on the same drawn units

    def values(self, level: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Each run's per-cell value and its replicates: m_L when ``level``, else the specific d = m_L − m_F."""
        if level:
            return self.reduced, self.reduced_replicates
        return self.reduced - self.full, self.replicates


def estimates(data: Scores, block: Sides, unit: str, resamples: int, seed: int = 0) -> Estimates:
    """m_L and m_F of every run from its per-unit sums, and d on ``unit``s drawn with replacement, shared by all.

    A draw without a single row of some side (possible only with very few units) has no mean there:
    it is left out.
    """
    unit_of = data.units[unit]
    n_units, n_runs, n_cells = int(unit_of.max()) + 1, len(block.names), len(block.rows) // len(SIDES)
    offset = n_units * np.arange(n_runs)[:, None]
    # (side, cells, runs, units) and (side, cells, units)
    sums = np.stack(
        [
            [
                np.bincount(
                    (unit_of[block.rows[c, side]] + offset).ravel(),
                    (block.ap[c, side] * block.weight[c, side]).ravel(),
                    minlength=n_runs * n_units,
                ).reshape(n_runs, n_units)
                for c in range(n_cells)
            ]
            for side in SIDES
        ]
    )
    weight = np.stack(
        [
            [
                np.bincount(unit_of[block.rows[c, side]], block.weight[c, side], minlength=n_units)
                for c in range(n_cells)
            ]
            for side in SIDES
        ]
    )
    means = sums.sum(axis=3) / weight.sum(axis=2)[:, :, None]
    rng = np.random.default_rng(seed)
    flat_sums, flat_weight = sums.reshape(-1, n_units).T, weight.reshape(-1, n_units).T
    replicates = np.empty((resamples, n_runs, n_cells))
    reduced_replicates = np.empty((resamples, n_runs, n_cells))
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
            drawn_means = (counts @ flat_sums).reshape(k, len(SIDES), n_cells, n_runs) / (counts @ flat_weight).reshape(
                k, len(SIDES), n_cells, 1
            )
        replicates[start : start + k] = (drawn_means[:, 0] - drawn_means[:, 1]).transpose(0, 2, 1)
        reduced_replicates[start : start + k] = drawn_means[:, 0].transpose(0, 2, 1)
    kept = np.isfinite(replicates).all(axis=(1, 2))
    return Estimates(means[0].T, means[1].T, replicates[kept], reduced_replicates[kept])


def coefficients(block: Sides, strategy: str, cells: list[Cell], level: bool = False) -> np.ndarray:
    """A[r, c] such that Σ A·value is the strategy's drop (reference minus profile, mean over cells), or with
    ``level`` its value under imbalance (the profile's runs only, with the opposite sign: mean over cells)."""
    a = np.zeros((len(block.names), len(cells)))
    if level:
        return -_profile_part(block, strategy, cells)
    reference = block.groups[strategy, REFERENCE_PROFILE]
    a[reference, :] += 1.0 / (len(cells) * len(reference))
    return a + _profile_part(block, strategy, cells)


def _profile_part(block: Sides, strategy: str, cells: list[Cell]) -> np.ndarray:
    """−1/(C·n_P) for every run of each cell's profile P: the imbalanced side of a drop."""
    a = np.zeros((len(block.names), len(cells)))
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


def inference(values: Estimates, a: np.ndarray, pooled: list[list[int]], level: bool = False) -> Inference | None:
    """se and df of Σ A·d (Σ A·m_L with ``level``), the seed variance pooled over the given groups of runs;
    None when it has no df."""
    d, drawn = values.values(level)
    replicated = [g for g in pooled if len(g) >= 2]
    nu = sum(len(g) - 1 for g in replicated)
    if nu == 0 or len(drawn) < 2:
        return None
    n_cells = d.shape[1]
    sigma_run, sigma_eps = np.zeros((n_cells, n_cells)), np.zeros((n_cells, n_cells))
    for group in replicated:
        deviation = d[group] - d[group].mean(axis=0)
        sigma_run += deviation.T @ deviation
        spread = drawn[:, group] - drawn[:, group].mean(axis=1, keepdims=True)
        spread = spread - spread.mean(axis=0)
        sigma_eps += np.einsum("krc,kre->ce", spread, spread) / (len(spread) - 1)
    sigma_run, sigma_eps = sigma_run / nu, sigma_eps / nu
    m = a.T @ a
    v_seeds = float(np.trace(m @ sigma_run))
    v_boot = float(np.var(np.einsum("krc,rc->k", drawn, a), ddof=1))
    v_questions = max(v_boot - float(np.trace(m @ sigma_eps)), 0.0)
    ms = m @ sigma_run
    square = float(np.trace(ms @ ms))
    seed_df = nu * v_seeds**2 / square if square > 0 else np.inf
    total = v_questions + v_seeds
    df = total**2 / (v_seeds**2 / seed_df) if v_seeds > 0 else np.inf
    return Inference(float(np.sqrt(total)), float(df), v_questions, v_seeds, float(nu))


def t_test(estimate: float, found: Inference | None, confidence: float = CONFIDENCE) -> dict[str, float]:
    """The t interval and two-sided p of ``estimate`` (NaN without an inference)."""
    if found is None:
        return {"ci_low": np.nan, "ci_high": np.nan, "se": np.nan, "df": np.nan, "p": np.nan}
    se, df = found.se, found.df
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    # no spread at all: p is 1 for an estimate of exactly 0, else 0
    p = float(2 * scipy_stats.t.sf(abs(estimate) / se, df)) if se > 0 else (1.0 if estimate == 0 else 0.0)
    return {"ci_low": estimate - half, "ci_high": estimate + half, "se": se, "df": df, "p": p}
