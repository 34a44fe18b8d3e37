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

from mlret.params.fields import CONFIG, Fraction, Section, Strategy


@dataclass(frozen=True, config=CONFIG)
class MonoSettings(Section):
    """One language per batch; nothing to set."""

    WHERE: ClassVar[str] = "mono"

    strategy: ClassVar[Strategy] = Strategy.MONO


@dataclass(frozen=True, config=CONFIG)
class CrossSettings(Section):
    """One ordered pair of distinct languages per batch; nothing to set."""

    WHERE: ClassVar[str] = "cross"

    strategy: ClassVar[Strategy] = Strategy.CROSS


@dataclass(frozen=True, config=CONFIG)
class MultiSettings(Section):
    """Every pair of a batch draws its own language pair; nothing to set."""

    WHERE: ClassVar[str] = "multi"

    strategy: ClassVar[Strategy] = Strategy.MULTI


@dataclass(frozen=True, config=CONFIG)
class HybridSettings(Section):
    """A mono batch with probability ``mono_ratio``, else a cross batch."""

    WHERE: ClassVar[str] = "hybrid"

    strategy: ClassVar[Strategy] = Strategy.HYBRID

    mono_ratio: Fraction


StrategySettings = MonoSettings | CrossSettings | MultiSettings | HybridSettings
