"""Each batch-sampling strategy's own settings: one section of params.yaml, one typed object.

A training run depends on its strategy's section only (``-S hybrid.mono_ratio=0.3``
re-trains the hybrid runs alone), and the object travels whole from
params.yaml to :class:`~mlret.training.samplers.BatchSampler`: a new setting of
a strategy is a field here and the code in the sampler that reads it. The
type of the object says which strategy it configures (``strategy``), so a run
cannot pair one strategy with another's settings.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic.dataclasses import dataclass

from mlret.params.fields import CONFIG, Fraction, Strategy, reported_as


@reported_as("mono")
@dataclass(frozen=True, config=CONFIG)
class MonoSettings:
    """One language per batch; nothing to set."""

    strategy: ClassVar[Strategy] = Strategy.MONO


@reported_as("cross")
@dataclass(frozen=True, config=CONFIG)
class CrossSettings:
    """One ordered pair of distinct languages per batch; nothing to set."""

    strategy: ClassVar[Strategy] = Strategy.CROSS


@reported_as("multi")
@dataclass(frozen=True, config=CONFIG)
class MultiSettings:
    """Every pair of a batch draws its own language pair; nothing to set."""

    strategy: ClassVar[Strategy] = Strategy.MULTI


@reported_as("hybrid")
@dataclass(frozen=True, config=CONFIG)
class HybridSettings:
    """A mono batch with probability ``mono_ratio``, else a cross batch."""

    strategy: ClassVar[Strategy] = Strategy.HYBRID

    mono_ratio: Fraction


StrategySettings = MonoSettings | CrossSettings | MultiSettings | HybridSettings
