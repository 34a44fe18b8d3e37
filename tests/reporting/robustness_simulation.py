"""Synthetic studies with known variance components: does the robustness interval cover the truth as often as it claims?

Used by test_robustness_coverage.py and benchmarks/robustness_coverage.py (which puts this folder on sys.path).

A study mirrors the shipped design at a small size: four ladder languages in a Latin square over
four severities (one profile per column), three languages kept in full everywhere, a balanced
reference, two strategies, a few seeds per run, and a sample of test questions. Per-query AP is

    AP = μ + question + pair + run + (language-specific run noise) + profile shift
         − (true specific drop + question-specific deviation, on the reduced language's rows) + residual

- question: one effect per question, shared by every language and run;
- pair: one effect per (setting, query language, pool language), fixed within a study;
- run: one effect per training run, shared by all its languages (a seed that is better overall);
- language-specific run noise: one effect per run and language (a pair averages its two languages');
- profile shift: every language of an imbalanced run loses the same amount (less data overall);
- true specific drop: per strategy, severity and language, fixed within a study, drawn afresh for
  each study; a row loses it when its query or pool language is the reduced one (both: both);
- question-specific deviation: per strategy, profile, reduced language and question, shared by
  the seeds of a profile (some questions suffer more), mean zero over the population;
- residual: per run, row and question.

The truth of a severity is the mean over the cells at that severity of the true specific drop of
the headline strategy minus that of the comparator: what the estimand targets, since the
question-specific deviations average to zero over the population of questions. The values are
not clipped to [0, 1], so the truth is exactly that mean.
"""

from __future__ import annotations

import gc
import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlret.reporting.robustness import COMPARATOR, REFERENCE_PROFILE, robustness_tables

LADDER = ("ar", "hi", "vi", "zh")
FULL = ("de", "en", "es")
SEVERITIES = (0.0, 0.01, 0.05, 0.25)
HEADLINE = "hybrid"


@dataclass(frozen=True)
class Design:
    """Sizes of a synthetic study and the standard deviations of its variance components."""

    questions: int = 60
    reference_seeds: int = 2
    ladder_seeds: int = 2
    mean: float = 0.6
    question_sd: float = 0.10
    pair_sd: float = 0.05
    run_sd: float = 0.02
    language_run_sd: float = 0.015
    profile_shift: float = 0.02
    drop: dict[float, tuple[float, float]] = field(
        default_factory=lambda: {  # severity -> (headline, comparator) mean drop
            0.0: (0.10, 0.14),
            0.01: (0.06, 0.07),
            0.05: (0.03, 0.03),
            0.25: (0.01, 0.02),
        }
    )
    cell_sd: float = 0.02  # language-to-language spread of the true drop (fixed within a study)
    question_drop_sd: float = 0.05
    residual_sd: float = 0.10


def profiles() -> tuple[dict[str, set[str]], dict[str, dict[str, float]]]:
    """The Latin square: profile k keeps SEVERITIES[(i + k) % 4] of ladder language i, all of the others."""
    low: dict[str, set[str]] = {REFERENCE_PROFILE: set()} | {f"ladder_{k}": set(LADDER) for k in range(len(SEVERITIES))}
    fractions = {REFERENCE_PROFILE: dict.fromkeys(LADDER + FULL, 1.0)}
    for k in range(len(SEVERITIES)):
        fractions[f"ladder_{k}"] = {
            lang: SEVERITIES[(i + k) % len(SEVERITIES)] for i, lang in enumerate(LADDER)
        } | dict.fromkeys(FULL, 1.0)
    return low, fractions


def _pairs() -> list[tuple[str, str, str]]:
    languages = LADDER + FULL
    return (
        [("mono", x, x) for x in languages]
        + [("cross", x, y) for x, y in itertools.permutations(languages, 2)]
        + [("multi", x, "all") for x in languages]
    )


def simulate_study(rng: np.random.Generator, design: Design = Design()) -> tuple[pd.DataFrame, dict[float, float]]:
    """One study's per-query results (the report's columns) and its true contrast at each severity."""
    _, fractions = profiles()
    pairs = _pairs()
    n_q = design.questions
    qids = np.array([f"q{i}" for i in range(n_q)])
    question = rng.normal(0, design.question_sd, n_q)
    pair_effect = rng.normal(0, design.pair_sd, len(pairs))
    strategies = (HEADLINE, COMPARATOR)
    true_drop = {
        (s, sev, lang): design.drop[sev][i] + rng.normal(0, design.cell_sd)
        for i, s in enumerate(strategies)
        for sev in SEVERITIES
        for lang in LADDER
    }
    truth = {
        sev: float(np.mean([true_drop[HEADLINE, sev, lang] - true_drop[COMPARATOR, sev, lang] for lang in LADDER]))
        for sev in SEVERITIES
    }
    langs_of = [(q, p) for _, q, p in pairs]
    runs, scores = [], []
    for strategy in strategies:
        for profile, kept in fractions.items():
            imbalanced = profile != REFERENCE_PROFILE
            # per reduced language: its true drop plus each question's deviation, shared by the profile's seeds
            loss = (
                {
                    lang: true_drop[strategy, kept[lang], lang] + rng.normal(0, design.question_drop_sd, n_q)
                    for lang in LADDER
                }
                if imbalanced
                else {}
            )
            for seed in range(design.ladder_seeds if imbalanced else design.reference_seeds):
                language_noise = dict(zip(LADDER + FULL, rng.normal(0, design.language_run_sd, len(LADDER + FULL))))
                base = design.mean + rng.normal(0, design.run_sd) - (design.profile_shift if imbalanced else 0.0)
                ap = np.empty((len(pairs), n_q))
                for i, (q, p) in enumerate(langs_of):
                    noise = language_noise[q] if p in (q, "all") else (language_noise[q] + language_noise[p]) / 2
                    ap[i] = base + question + pair_effect[i] + noise
                    for lang in {q, p} & set(loss):
                        ap[i] -= loss[lang]
                scores.append(ap + rng.normal(0, design.residual_sd, ap.shape))
                runs.append((strategy, profile, seed))
    rows = len(pairs) * n_q

    def column(values: list[str], repeat: int, tile: int) -> pd.Categorical:
        categories, codes = np.unique(np.array(values, dtype=object), return_inverse=True)
        return pd.Categorical.from_codes(np.tile(np.repeat(codes, repeat), tile), categories=list(categories))

    results = pd.DataFrame(
        {
            "dataset": column(["sim"], rows * len(runs), 1),
            "strategy": column([r[0] for r in runs], rows, 1),
            "profile": column([r[1] for r in runs], rows, 1),
            "seed": np.repeat([r[2] for r in runs], rows),
            **{
                name: column([pair[i] for pair in pairs], n_q, len(runs))
                for i, name in enumerate(("setting", "query_lang", "pool_lang"))
            },
            "qid": column(list(qids), 1, len(pairs) * len(runs)),
            "ap": np.concatenate(scores).ravel(),
        }
    )
    return results, truth


@dataclass(frozen=True)
class Coverage:
    """How often the intervals of many studies covered their truth, and how wide they were."""

    coverage: float  # over every (study, severity)
    by_severity: dict[float, float]
    mean_half_width: float
    intervals: int


def coverage(
    studies: int, resamples: int = 500, seed: int = 0, scope: str = "all", design: Design = Design()
) -> Coverage:
    """Simulate ``studies`` studies; check the primary contrast's 95 % interval of each severity against its truth."""
    rng = np.random.default_rng(seed)
    low, fractions = profiles()
    hits: dict[float, list[bool]] = {sev: [] for sev in SEVERITIES}
    half_widths = []
    # statsmodels' Holm runs a full garbage collection on every call: with the objects alive now
    # frozen out of it, thousands of tables cost seconds instead of minutes.
    gc.freeze()
    try:
        for _ in range(studies):
            results, truth = simulate_study(rng, design)
            table = robustness_tables(
                results, low, fractions, HEADLINE, units=("question",), resamples=resamples, scopes=(scope,)
            )["question"]
            for row in table[table.kind == "contrast"].itertuples():
                hits[row.severity].append(bool(row.ci_low <= truth[row.severity] <= row.ci_high))
                half_widths.append((row.ci_high - row.ci_low) / 2)
    finally:
        gc.unfreeze()
    every = [h for per in hits.values() for h in per]
    return Coverage(
        float(np.mean(every)),
        {sev: float(np.mean(h)) for sev, h in hits.items()},
        float(np.mean(half_widths)),
        len(every),
    )
