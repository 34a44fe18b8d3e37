"""The words every stage and report shares: runs, retrieval settings, the significance level.

A leaf module (of the package it imports only the error type), so that params, training, scoring and
reporting all name a run or a setting the same way without importing each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from mlret.errors import MlretError

#: The untuned base model: the zero-shot reference row of every comparison, and its folder name.
BASE = "base"

#: The significance level of every test and interval the report states (Holm-adjusted where
#: several contrasts share a family; 95 % intervals).
ALPHA = 0.05


class Setting(str, Enum):
    """LAReQA's three retrieval settings, in the order every table lists them.

    ``mono`` X→X (pool: candidates in X), ``cross`` X→Y (pool: candidates in Y ≠ X),
    ``multi`` X→all (pool: every candidate of every language).
    """

    MONO = "mono"
    CROSS = "cross"
    MULTI = "multi"

    def __str__(self) -> str:
        return self.value


_RUN_NAME = re.compile(r"^(?P<strategy>[^/]+)/(?P<profile>[^/]+)/(?P<seed>\d+)$")


@dataclass(frozen=True, order=True)
class RunId:
    """Which fine-tuning run: a base model's strategy trained on a profile with a seed.

    One run has five spellings, each for its own reader: :attr:`name` within its base's
    folders (``models/{base}/{name}``, ``metrics/eval/{base}/{name}.json``), :attr:`path`
    for those folders, :attr:`key` for params.yaml's ``runs:`` and DVC stage names
    (``train@{key}``), :attr:`label` for tables and plots, where seeds are pooled;
    :meth:`parse` reads a name back.
    """

    base: str
    strategy: str
    profile: str
    seed: int

    @property
    def name(self) -> str:
        """``{strategy}/{profile}/{seed}``: the run's folder under its base's models/, data/eval/, metrics/."""
        return f"{self.strategy}/{self.profile}/{self.seed}"

    @property
    def path(self) -> str:
        """``{base}/{strategy}/{profile}/{seed}``: the run's folder under models/, data/eval/, metrics/."""
        return f"{self.base}/{self.name}"

    @property
    def key(self) -> str:
        """``{base}-{strategy}-{profile}-{seed}``: its key under ``runs:`` and its DVC stage suffix."""
        return f"{self.base}-{self.strategy}-{self.profile}-{self.seed}"

    @property
    def label(self) -> str:
        """``{strategy}/{profile}``: the model a table row or a plot's bar shows, seeds pooled."""
        return model_label(self.strategy, self.profile)

    def stage(self, stage: str) -> str:
        """The DVC stage that makes this run's ``stage`` artifact, e.g. ``train@hybrid-balanced-0``."""
        return f"{stage}@{self.key}"

    @classmethod
    def parse(cls, name: str, base: str) -> RunId:
        """The run of ``base`` a ``{strategy}/{profile}/{seed}`` name stands for; :class:`MlretError` otherwise."""
        match = _RUN_NAME.match(name)
        if match is None:
            raise MlretError(
                f"{name!r} is not a run name.",
                "Name a run `{strategy}/{profile}/{seed}`, e.g. `hybrid/balanced/0`, as params.yaml's `runs` lists it.",
            )
        return cls(base, match["strategy"], match["profile"], int(match["seed"]))


def model_fields(model: str) -> tuple[str, str, int]:
    """``(strategy, profile, seed)`` of a model named within its base: ``(base, "-", -1)`` for the untuned one."""
    if model == BASE:
        return BASE, "-", -1
    run = RunId.parse(model, BASE)
    return run.strategy, run.profile, run.seed


def model_label(strategy: str, profile: str) -> str:
    """The label of a row that pools seeds: ``base`` for the untuned model, else ``{strategy}/{profile}``."""
    return BASE if strategy == BASE else f"{strategy}/{profile}"


def stage_of(model: str, stage: str, base: str) -> str:
    """The DVC stage that makes ``model``'s ``stage`` artifact: ``{stage}_base@{base}`` or ``{stage}@{key}``."""
    return f"{stage}_base@{base}" if model == BASE else RunId.parse(model, base).stage(stage)
