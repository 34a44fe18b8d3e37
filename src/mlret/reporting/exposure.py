"""Exposure as a factor of the robustness contrast: does hybrid differ from multi beyond how often it shows a language?

A profile fixes how much data a reduced language keeps; a strategy's batches then decide how often
the language is *seen*. Hybrid's monolingual batches draw a language pair's questions from one
language, so it shows a reduced language fewer pair sides than multi does at the same severity (the
`train` stage records each run's realised share). Where imbalance binds, that alone could make the
contrast hybrid − multi positive.

*Exposure-matched contrast.* multi's specific drops at the ladder's severities, together with 0 at
``balanced``, trace its drop as a function of its realised share e of the reduced languages' pair
sides (a severity's share: the mean over its cells, each a mean over seeds). Read at hybrid's share
at a severity, by linear interpolation between the two multi points around it, that curve gives
the drop multi would have at hybrid's exposure. The exposure-matched contrast is hybrid's specific
drop at the severity minus that interpolated multi drop: what remains of the contrast once exposure
is matched. It is linear in the runs' per-cell values like every estimate of
:mod:`mlret.reporting.robustness`, so it gets the same interval (questions resampled, plus the
training-run noise). At severity 0 both strategies see the language never, so it is the plain
contrast. A share outside multi's range (below its smallest ladder share other than 0, for
example) is interpolated, never extrapolated: such a severity gets no row.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlret.reporting.drops import REFERENCE_PROFILE, Cell, Scores, coefficients, estimates, inference, sides, t_test

#: The kind of the rows this module adds to the robustness table.
KIND = "exposure-matched contrast"


def severity_shares(exposure: pd.DataFrame, strategy: str, cells: Sequence[Cell]) -> dict[float, float]:
    """Per severity (``1.0`` for ``balanced``), the strategy's mean realised share of the cells' languages.

    ``exposure``: the report's exposure table (strategy, profile, seed, lang, share). A severity
    whose cells have no recorded share is left out.
    """
    runs = exposure[exposure.strategy == strategy]
    share = runs.groupby(["profile", "lang"]).share.mean()
    out: dict[float, float] = {}
    for severity in sorted({c.severity for c in cells}):
        found = [share.get((c.profile, c.lang)) for c in cells if c.severity == severity]
        if found and all(v is not None for v in found):
            out[severity] = float(np.mean(found))
    reference = [share.get((REFERENCE_PROFILE, lang)) for lang in sorted({c.lang for c in cells})]
    if reference and all(v is not None for v in reference):
        out[1.0] = float(np.mean(reference))
    return out


def _bracket(points: list[tuple[float, float]], share: float) -> list[tuple[float, float]] | None:
    """The (severity, weight) pair(s) interpolating ``share`` on ``points`` = [(share, severity)], sorted by share."""
    for (e_lo, s_lo), (e_hi, s_hi) in itertools.pairwise(points):
        if e_lo <= share <= e_hi:
            if e_hi == e_lo:
                return [(s_lo, 1.0)]
            w = (share - e_lo) / (e_hi - e_lo)
            return [(s_lo, 1.0 - w), (s_hi, w)]
    return None


def exposure_matched_rows(
    data: Scores,
    dataset: str,
    cells: list[Cell],
    scope: str,
    headline: str,
    comparator: str,
    exposure: pd.DataFrame,
    unit: str,
    resamples: int,
) -> list[dict[str, object]]:
    """One row per severity: headline's specific drop minus the comparator's, interpolated at headline's share."""
    block = sides(data, [headline, comparator], cells, scope)
    if block is None or not all((s, REFERENCE_PROFILE) in block.groups for s in (headline, comparator)):
        return []
    mine, theirs = severity_shares(exposure, headline, cells), severity_shares(exposure, comparator, cells)
    points = sorted((share, severity) for severity, share in theirs.items())
    values = estimates(data, block, unit, resamples)
    own = [g for (s, _), g in block.groups.items() if s in (headline, comparator)]

    def mean_drop(strategy: str, severity: float) -> np.ndarray:
        """A over every cell of the block such that Σ A·d is the strategy's specific drop at ``severity``."""
        if severity == 1.0:  # balanced: no drop by definition
            return np.zeros((len(block.names), len(cells)))
        at = np.array([c.severity == severity for c in cells])
        if not all((strategy, c.profile) in block.groups for c in np.array(cells)[at]):
            raise KeyError(severity)
        return coefficients(block, strategy, cells) * at * (len(cells) / at.sum())

    rows = []
    for severity in sorted({c.severity for c in cells}):
        if severity not in mine:
            continue
        bracket = _bracket(points, mine[severity])
        if bracket is None:
            continue
        try:
            a = mean_drop(headline, severity) - sum(w * mean_drop(comparator, s) for s, w in bracket)
        except KeyError:
            continue
        estimate = float(np.sum(a * (values.reduced - values.full)))
        found = inference(values, a, own)
        matched = " and ".join(f"{'balanced' if s == 1.0 else f'{s:g}'} (weight {w:.2f})" for s, w in bracket)
        rows.append(
            {
                "dataset": dataset,
                "scope": scope,
                "severity": severity,
                "kind": KIND,
                "strategy": f"{headline} − {comparator}",
                "raw_drop": np.nan,
                "full_drop": np.nan,
                "specific_drop": estimate,
                **t_test(estimate, found),
                "p_holm": np.nan,
                "family": "",
                "mde80": np.nan,
                "cells": int(sum(c.severity == severity for c in cells)),
                "reference_seeds": min(len(block.groups[s, REFERENCE_PROFILE]) for s in (headline, comparator)),
                "reduced_seeds": min(len(g) for (s, p), g in block.groups.items() if p != REFERENCE_PROFILE),
                "units": unit,
                "note": (
                    f"{comparator} at {headline}'s share {mine[severity]:.4f}: its drops at severities {matched}"
                    + ("" if found is not None else "; needs ≥ 2 seeds of some run")
                ),
                "level": np.nan,
                "reference_level": np.nan,
            }
        )
    return rows
