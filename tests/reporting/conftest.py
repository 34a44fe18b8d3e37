"""Shared helpers of the report tests: reference computations for its statistics (by enumeration, by hand), and the
report stage run on inputs a test wrote."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mlret.artifacts import write_json
from mlret.params import Params
from mlret.reporting.grid import grid_record
from mlret.reporting.report import build_report


def _exact_sign_flip_pvalue(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> float:
    d = (a - b) * weights
    observed = abs(d.sum())
    flips = [abs(np.dot(signs, d)) for signs in itertools.product((1.0, -1.0), repeat=len(d))]
    return float(np.mean([f >= observed * (1 - 1e-12) for f in flips]))


def _holm_by_hand(p: list[float]) -> list[float]:
    order = np.argsort(p, kind="stable")
    adjusted, running = np.empty(len(p)), 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (len(p) - i) * p[j]))
        adjusted[j] = running
    return adjusted.tolist()


@pytest.fixture(scope="session")
def exact_sign_flip_pvalue() -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
    """Two-sided p-value of the weighted sum of differences over all 2^n sign flips."""
    return _exact_sign_flip_pvalue


@pytest.fixture(scope="session")
def holm_by_hand() -> Callable[[list[float]], list[float]]:
    """Holm adjustment: sort, multiply the i-th smallest by (m - i), carry the running maximum, cap at 1."""
    return _holm_by_hand


def _report_from(params: Params, inputs: Path, out: Path) -> None:
    """The report stage on ``params``: the check_params stage's grid record in ``out``, then every report output
    there, from the evaluate/train outputs a test wrote under ``inputs`` as the stages lay them out: one folder per
    base model of ``params.bases`` under each of eval, metrics-eval, metrics-train and loss (``eval/{base}/…``), and
    the questions, which every base shares, under parallel."""
    write_json(out / "grid.json", grid_record(params))
    build_report(
        params,
        grid_path=out / "grid.json",
        eval_root=inputs / "eval",
        eval_metrics_root=inputs / "metrics-eval",
        train_metrics_root=inputs / "metrics-train",
        parallel_root=inputs / "parallel",
        loss_root=inputs / "loss",
        out_dir=out / "reports",
        metrics_path=out / "report.json",
        plots_dir=out / "plots",
    )


@pytest.fixture(scope="session")
def report_from() -> Callable[[Params, Path, Path], None]:
    return _report_from
