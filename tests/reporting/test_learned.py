"""What the robustness answer rests on besides the drops, on hand-made results: the level each strategy keeps on a
reduced language, the contrast with exposure matched, the primary scope of a base, and the base × strategy
interaction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_robustness import FRACTIONS, LOW, ZH, random_results, run  # same folder: the hand-made design

from mlret.reporting.bases import interaction_table
from mlret.reporting.drops import Cell
from mlret.reporting.exposure import KIND as EXPOSURE_MATCHED
from mlret.reporting.exposure import _bracket, severity_shares
from mlret.reporting.robustness import headline_contrasts, primary_scope_of, robustness_tables, scope_title
from mlret.reporting.summary import robustness_markdown

RU = Cell("p", "ru", 0.25, frozenset({"de", "en"}))
#: zh's AP per setting in a run that learned it: settings weigh equally in a level, whatever their row counts.
ZH_BY_SETTING = {"mono": 0.6, "cross": 0.3, "multi": 0.3}


def zh_run(strategy: str, profile: str, seed: int, shift: float, ru: float = 0.6, full: float = 0.6) -> pd.DataFrame:
    """A run whose zh rows score :data:`ZH_BY_SETTING` minus ``shift``, ru's ``ru`` and every other row ``full``."""

    def value(setting: str, q: str, p: str, qid: str) -> float:
        if "zh" in (q, p):
            return ZH_BY_SETTING[setting] - shift
        return ru if "ru" in (q, p) else full

    return run(strategy, profile, seed, value)


def level_runs() -> pd.DataFrame:
    """zh's mAP (settings weighted equally, (0.6 + 0.3 + 0.3) / 3 = 0.4 at no shift) per run:
    hybrid balanced 0.4, 0.4 and p 0.4, 0.3; multi balanced 0.45, 0.35 and p 0.2, 0.1. The languages kept in full
    score 0.6 except in hybrid's second p run, 0.3."""
    return pd.concat(
        [
            zh_run("hybrid", "balanced", 0, 0.0),
            zh_run("hybrid", "balanced", 1, 0.0),
            zh_run("hybrid", "p", 0, 0.0),
            zh_run("hybrid", "p", 1, 0.1, full=0.3),  # its full-data languages lose too: d's seed spread is not m_L's
            zh_run("multi", "balanced", 0, -0.05),
            zh_run("multi", "balanced", 1, 0.05),
            zh_run("multi", "p", 0, 0.2, ru=0.1),
            zh_run("multi", "p", 1, 0.3, ru=0.2),
        ],
        ignore_index=True,
    )


def table_of(results: pd.DataFrame, **options) -> pd.DataFrame:
    return robustness_tables(results, LOW, FRACTIONS, "hybrid", units=("question",), resamples=200, **options)[
        "question"
    ]


def row(table: pd.DataFrame, severity: float, kind: str, strategy: str, scope: str = "all") -> pd.Series:
    found = table[
        (table.severity == severity) & (table.kind == kind) & (table.strategy == strategy) & (table.scope == scope)
    ]
    assert len(found) == 1, found
    return found.iloc[0]


def test_level_is_the_reduced_languages_map_under_imbalance_seeds_averaged() -> None:
    table = table_of(level_runs())
    hybrid, multi = row(table, 0.0, "level", "hybrid"), row(table, 0.0, "level", "multi")
    assert (hybrid.level, hybrid.reference_level) == pytest.approx(((0.4 + 0.3) / 2, 0.4))
    assert (multi.level, multi.reference_level) == pytest.approx(((0.2 + 0.1) / 2, (0.45 + 0.35) / 2))
    # one setting: zh→zh's AP only
    mono = row(table, 0.0, "level", "hybrid", "mono")
    assert (mono.level, mono.reference_level) == pytest.approx(((0.6 + 0.5) / 2, 0.6))
    contrast = row(table, 0.0, "level contrast", "hybrid − multi")
    assert contrast.level == pytest.approx(hybrid.level - multi.level)
    assert contrast.reference_level == pytest.approx(hybrid.reference_level - multi.reference_level)
    assert (
        table[table.kind.isin(["level", "level contrast"])][["raw_drop", "full_drop", "specific_drop"]]
        .isna()
        .all(axis=None)
    )
    # In mono, every question scores alike within a run: only the seeds vary. hybrid's p runs deviate by ±0.05 from
    # their mean, its balanced ones not at all: ν = 2, Σ = 2 · 0.05² / 2, and the level weighs each p run 1/2:
    # se = √(2 · (1/2)² · 0.0025) with df = ν. (In all settings zh's settings score apart, so resampling questions
    # adds variance too.)
    se = math.sqrt(2 * 0.25 * 0.0025)
    assert (mono.se, mono.df) == pytest.approx((se, 2.0))
    assert (mono.ci_low, mono.ci_high) == pytest.approx(mono.level + np.array([-1, 1]) * stats.t.ppf(0.975, 2) * se)
    assert hybrid.se > 0 and hybrid.ci_low < hybrid.level < hybrid.ci_high


def shares(by_run: dict[tuple[str, str, int], dict[str, float]]) -> pd.DataFrame:
    """An exposure table (as the report's) from each run's shares of the reduced languages."""
    return pd.DataFrame(
        [
            {"strategy": s, "profile": p, "seed": seed, "lang": lang, "share": share}
            for (s, p, seed), found in by_run.items()
            for lang, share in found.items()
        ]
    )


#: multi's shares trace (0, severity 0), (0.1, severity 0.25), (0.25, balanced); hybrid shows ru less often, 0.06
#: (mean of its seeds), which lies between multi's first two points at weight 0.6 on severity 0.25.
EXPOSURE = shares(
    {
        ("multi", "balanced", 0): {"ru": 0.25, "zh": 0.25},
        ("multi", "balanced", 1): {"ru": 0.25, "zh": 0.25},
        ("multi", "p", 0): {"ru": 0.1, "zh": 0.0},
        ("multi", "p", 1): {"ru": 0.1, "zh": 0.0},
        ("hybrid", "balanced", 0): {"ru": 0.25, "zh": 0.25},
        ("hybrid", "balanced", 1): {"ru": 0.25, "zh": 0.25},
        ("hybrid", "p", 0): {"ru": 0.05, "zh": 0.0},
        ("hybrid", "p", 1): {"ru": 0.07, "zh": 0.0},
    }
)


def test_severity_shares_average_seeds_and_add_balanced() -> None:
    assert severity_shares(EXPOSURE, "hybrid", [RU, ZH]) == pytest.approx({0.0: 0.0, 0.25: 0.06, 1.0: 0.25})
    assert severity_shares(EXPOSURE, "multi", [RU, ZH]) == pytest.approx({0.0: 0.0, 0.25: 0.1, 1.0: 0.25})
    unrecorded = EXPOSURE[~((EXPOSURE.strategy == "hybrid") & (EXPOSURE.lang == "ru"))]
    assert severity_shares(unrecorded, "hybrid", [RU, ZH]) == {0.0: 0.0}  # ru's severity and balanced left out


def test_bracket_interpolates_between_the_points_around_a_share_and_never_beyond() -> None:
    points = [(0.0, 0.0), (0.1, 0.25), (0.25, 1.0)]
    [(low, w_low), (high, w_high)] = _bracket(points, 0.06)
    assert (low, high) == (0.0, 0.25) and (w_low, w_high) == pytest.approx((0.4, 0.6))
    [(low, w_low), (high, w_high)] = _bracket(points, 0.175)
    assert (low, high) == (0.25, 1.0) and (w_low, w_high) == pytest.approx((0.5, 0.5))
    assert _bracket(points, 0.3) is None and _bracket(points, -0.01) is None
    assert _bracket([(0.0, 0.0), (0.0, 0.01)], 0.0) == [(0.0, 1.0)]  # a flat stretch: the first point


def test_exposure_matched_contrast_reads_multi_at_hybrids_share() -> None:
    table = table_of(level_runs(), exposure=EXPOSURE)
    drop = {
        (strategy, severity): row(table, severity, "drop", strategy).specific_drop
        for strategy in ("hybrid", "multi")
        for severity in (0.0, 0.25)
    }
    assert drop["multi", 0.25] != pytest.approx(drop["multi", 0.0])  # so the interpolation weights matter
    # absent: neither strategy sees zh, so the plain contrast
    absent = row(table, 0.0, EXPOSURE_MATCHED, "hybrid − multi")
    assert absent.specific_drop == pytest.approx(row(table, 0.0, "contrast", "hybrid − multi").specific_drop)
    # 25 % kept: multi's drop at hybrid's share 0.06, 0.6 of the way from multi's share at severity 0 to its share at
    # severity 0.25
    kept = row(table, 0.25, EXPOSURE_MATCHED, "hybrid − multi")
    assert kept.specific_drop == pytest.approx(
        drop["hybrid", 0.25] - (0.4 * drop["multi", 0.0] + 0.6 * drop["multi", 0.25])
    )
    assert "share 0.0600" in kept.note and "0 (weight 0.40) and 0.25 (weight 0.60)" in kept.note
    assert kept.ci_low < kept.specific_drop < kept.ci_high
    # hybrid's ru share beyond multi's balanced one: no multi point around it, no row at 25 % kept
    hybrid_ru = (EXPOSURE.strategy == "hybrid") & (EXPOSURE.lang == "ru") & (EXPOSURE.profile == "p")
    beyond = EXPOSURE.assign(share=EXPOSURE.share.where(~hybrid_ru, 0.3))
    matched = table_of(level_runs(), exposure=beyond)
    assert matched[matched.kind == EXPOSURE_MATCHED].severity.unique().tolist() == [0.0]
    assert EXPOSURE_MATCHED not in set(table_of(level_runs()).kind)  # no exposure table, no such rows


def test_the_primary_scope_holds_the_holm_family(holm_by_hand) -> None:
    results, low, fractions = random_results(1)
    table = robustness_tables(
        results, low, fractions, "hybrid", units=("question",), resamples=300, primary_scope="mono"
    )["question"]
    contrasts = table[table.kind == "contrast"]
    primary = contrasts[contrasts.family == "primary"]
    assert set(primary.scope) == {"mono"} and len(primary) == 2  # one per severity
    assert primary.p_holm.tolist() == pytest.approx(holm_by_hand(primary.p.tolist()))
    assert (primary.p_holm > primary.p).any()
    others = contrasts[contrasts.scope != "mono"]
    assert set(others.family) == {"exploratory"} and others.p_holm.isna().all()
    assert primary_scope_of(table) == "mono"
    assert headline_contrasts(table)["ds"]["severity_0"]["estimate"] == round(
        primary[primary.severity == 0.0].specific_drop.iloc[0], 4
    )
    assert (
        scope_title("mono", "mono") == "mono only (primary)"
        and scope_title("all", "mono") == "all settings (exploratory)"
    )
    assert scope_title("all", "all") == "all settings" and scope_title("cross", "all") == "cross only (exploratory)"
    markdown = "\n".join(robustness_markdown(table))
    assert "### ds, mono only (primary)\n" in markdown and "### ds, all settings (exploratory)\n" in markdown
    mono = markdown.split("### ds, mono only (primary)\n")[1].split("###")[0]
    assert "| **hybrid − multi** |" in mono and "; Holm p = " in mono and "unadjusted p" not in mono
    assert primary_scope_of(table_of(level_runs())) == "all"  # by default, all settings


def contrasts(rows: list[tuple[str, str, float, float, float, float]]) -> pd.DataFrame:
    """A robustness table's contrast rows (dataset, scope, severity, estimate, se, df), and a drop row that the
    interaction must not read."""
    frame = pd.DataFrame(rows, columns=["dataset", "scope", "severity", "specific_drop", "se", "df"])
    drop = frame.iloc[:1].assign(specific_drop=9.0, se=1.0)
    return pd.concat([frame.assign(kind="contrast"), drop.assign(kind="drop")], ignore_index=True)


def test_interaction_is_each_bases_contrast_minus_the_first_bases() -> None:
    by_base = {
        "a": contrasts([("ds", "all", 0.0, 0.1, 0.03, 5.0), ("ds", "all", 0.25, 0.2, 0.03, 5.0)]),
        "b": contrasts([("ds", "all", 0.0, 0.25, 0.04, 8.0), ("ds", "mono", 0.0, 0.3, 0.04, 8.0)]),
        "c": contrasts([("ds", "all", 0.25, -0.1, 0.0, 3.0)]),
    }
    table = interaction_table(by_base)
    # only the keys a base shares with the first: b at (all, 0), c at (all, 0.25)
    assert table[["base", "reference_base", "scope", "severity"]].values.tolist() == [
        ["b", "a", "all", 0.0],
        ["c", "a", "all", 0.25],
    ]
    b = table.iloc[0]
    se = math.sqrt(0.03**2 + 0.04**2)  # 0.05
    df = se**4 / (0.03**4 / 5 + 0.04**4 / 8)  # Welch–Satterthwaite
    assert (b.contrast, b.reference_contrast, b.interaction) == pytest.approx((0.25, 0.1, 0.15))
    assert (b.se, b.df) == pytest.approx((se, df))
    assert (b.ci_low, b.ci_high) == pytest.approx(0.15 + np.array([-1, 1]) * stats.t.ppf(0.975, df) * se)
    assert b.p == pytest.approx(2 * stats.t.sf(0.15 / se, df))
    c = table.iloc[1]
    assert c.interaction == pytest.approx(-0.1 - 0.2) and c.se == pytest.approx(0.03)
    assert interaction_table({"a": by_base["a"]}).empty  # one base: nothing to compare
