"""The run grid as the report reads it: which strategy ran on which profile, with which seeds.

Written by the `check_params` stage, the first stage the `report` stage depends on, so that a
params.yaml the report cannot use (a headline strategy with no run, a run on an unknown profile)
fails there, before DVC removes the report's previous outputs.
"""

from __future__ import annotations

from typing import Any

from mlret.params import Params


def grid_record(params: Params) -> dict[str, Any]:
    """``{"headline": strategy, "runs": {strategy: {profile: [seeds]}}}`` of a validated params.yaml.

    Only what the report reads, so that the record (and hence the `report` stage) changes only
    when the grid or the headline does.
    """
    runs: dict[str, dict[str, list[int]]] = {}
    for run in params.runs:
        runs.setdefault(str(run.strategy), {}).setdefault(run.profile, []).append(run.seed)
    return {
        "headline": str(params.sampling),
        "runs": {s: {p: sorted(seeds) for p, seeds in profiles.items()} for s, profiles in runs.items()},
    }
