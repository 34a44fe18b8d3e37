"""Which training run this is and where its files are: what the loop trains from and a checkpoint belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlret.params import Strategy, StrategySettings


@dataclass(frozen=True)
class RunSpec:
    """Which run this is and where its files are, as the stage's arguments (from dvc.yaml) give them.

    The strategy is the type of ``settings``, so a run cannot pair one strategy
    with another's settings.
    """

    settings: StrategySettings
    profile: str
    seed: int
    train_table: Path
    candidates_table: Path
    base_model: Path
    out_dir: Path
    resume_dir: Path
    log_path: Path
    metrics_path: Path

    @property
    def strategy(self) -> Strategy:
        return self.settings.strategy
