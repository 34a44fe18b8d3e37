"""The run grid as the report reads it: per base model, which strategy ran on which profile, with which seeds.

Written by the `check_params` stage, the first stage the `report` stage depends on, so that a
params.yaml the report cannot use (a headline strategy with no run, a run on an unknown profile)
fails there, before DVC removes the report's previous outputs. The report reads it back
(:func:`read_grid`) rather than deriving it from params.yaml a second time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlret.artifacts import read_json
from mlret.errors import MlretError
from mlret.params import Params

#: strategy -> profile -> seeds of the runs in params.yaml.
Grid = Mapping[str, Mapping[str, Sequence[int]]]


def grid_record(params: Params) -> dict[str, Any]:
    """``{"headline": strategy, "runs": {base: {strategy: {profile: [seeds]}}}}`` of a validated params.yaml.

    Only what the report reads, so that the record (and hence the `report` stage) changes only
    when the grid or the headline does. Every base of ``bases`` has an entry.
    """
    runs: dict[str, dict[str, dict[str, list[int]]]] = {base: {} for base in params.bases}
    for run in params.runs:
        runs[run.base].setdefault(str(run.strategy), {}).setdefault(run.profile, []).append(run.seed)
    return {
        "headline": str(params.sampling),
        "runs": {
            base: {s: {p: sorted(seeds) for p, seeds in profiles.items()} for s, profiles in strategies.items()}
            for base, strategies in runs.items()
        },
    }


def read_grid(path: str | Path, base: str) -> Grid:
    """The runs of ``base`` in the grid record at ``path`` (:func:`grid_record`, written by `check_params`)."""
    record = read_json(path)
    runs = record.get("runs") if isinstance(record, dict) else None
    grid = runs.get(base) if isinstance(runs, dict) else None
    if not isinstance(grid, dict) or not all(
        isinstance(profiles, dict) and all(isinstance(seeds, list) for seeds in profiles.values())
        for profiles in grid.values()
    ):
        raise MlretError(
            f"{path}: no run grid for base {base!r} (`runs`: base -> strategy -> profile -> seeds).",
            "Delete it and run `dvc repro check_params`.",
        )
    return grid
