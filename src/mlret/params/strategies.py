"""Each batch-sampling strategy's own settings: one section of params.yaml, one typed object.

A training run depends on its strategy's section only (``-S hybrid.mono_ratio=0.3``
re-trains the hybrid runs alone), and the object travels whole from
params.yaml to :class:`~mlret.training.samplers.BatchSampler`: a new setting of
a strategy is a field here and the code in the sampler that reads it. The
type of the object says which strategy it configures (``strategy``), so a run
cannot pair one strategy with another's settings.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic.dataclasses import dataclass

from mlret.params.fields import CONFIG, Fraction, Section, Strategy


class _StrategySection(Section):
    """The section of one strategy: its key in params.yaml is the strategy's name."""

    strategy: ClassVar[Strategy]

    def __init_subclass__(cls, *, strategy: Strategy, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.strategy, cls.WHERE = strategy, strategy.value


@dataclass(frozen=True, config=CONFIG)
class MonoSettings(_StrategySection, strategy=Strategy.MONO):
    """One language per batch; nothing to set."""


@dataclass(frozen=True, config=CONFIG)
class CrossSettings(_StrategySection, strategy=Strategy.CROSS):
    """One ordered pair of distinct languages per batch; nothing to set."""


@dataclass(frozen=True, config=CONFIG)
class MultiSettings(_StrategySection, strategy=Strategy.MULTI):
    """Every pair of a batch draws its own language pair; nothing to set."""


@dataclass(frozen=True, config=CONFIG)
class HybridSettings(_StrategySection, strategy=Strategy.HYBRID):
    """A mono batch with probability ``mono_ratio``, else a cross batch."""

    mono_ratio: Fraction


StrategySettings = MonoSettings | CrossSettings | MultiSettings | HybridSettings
