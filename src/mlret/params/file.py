"""params.yaml as a whole: the sections, plus the checks that only hold across them.

Checks that relate sections (the training source among the sources, profile
languages among theirs, the headline strategy among those trained) belong to
the file, not to :class:`Params`: code may assemble a partial configuration,
as the report tests do, that a params.yaml may not be.

The file lives at the repository root because DVC keeps it there; it is the
one path the package knows.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

from mlret.errors import MlretError
from mlret.params.fields import CONFIG, Fraction, Seed, Strategy, reported_as
from mlret.params.report import as_mlret_error, did_you_mean, invalid
from mlret.params.sections import DataParams, EvalParams, IndexParams, ModelParams, Profile, TrainParams
from mlret.params.strategies import CrossSettings, HybridSettings, MonoSettings, MultiSettings, StrategySettings

PARAMS_FILE = Path("params.yaml")


@reported_as("")
@dataclass(frozen=True, config=CONFIG)
class Params:
    sampling: Strategy  # headline strategy: its metrics are the top-level ones
    data: DataParams
    profiles: dict[str, Profile]
    model: ModelParams
    strategies: list[Strategy]
    seeds: list[Seed]
    strategy_settings: dict[Strategy, StrategySettings]  # each strategy's own section of params.yaml
    train: TrainParams
    eval: EvalParams
    index: IndexParams

    @field_validator("strategy_settings")
    @classmethod
    def _settings_of_their_strategy(cls, settings: dict[Strategy, StrategySettings]) -> dict[Strategy, StrategySettings]:
        for strategy, own in settings.items():
            if own.strategy is not strategy:
                raise invalid(f"holds the settings of {own.strategy}", "Key each strategy to its own settings object.", key=str(strategy))
        return settings


def _unique(values: list[Any]) -> list[Any]:
    plain = [v.value if isinstance(v, Enum) else v for v in values]
    repeated = sorted({v for v in plain if plain.count(v) > 1})
    if repeated:
        raise invalid(f"repeats {repeated}", "List each value once: a repeat would train the same run twice.", value=plain)
    return values


class _ParamsFile(BaseModel):
    """params.yaml as written: profiles as flat mappings, one section per strategy."""

    model_config = CONFIG

    sampling: Strategy
    data: DataParams
    profiles: Annotated[dict[str, dict[str, Fraction]], Field(min_length=1)]
    model: ModelParams
    strategies: Annotated[list[Strategy], Field(min_length=1), AfterValidator(_unique)]
    seeds: Annotated[list[Seed], Field(min_length=1), AfterValidator(_unique)]
    mono: MonoSettings
    cross: CrossSettings
    multi: MultiSettings
    hybrid: HybridSettings
    train: TrainParams
    eval: EvalParams
    index: IndexParams

    @model_validator(mode="after")
    def _consistent(self) -> _ParamsFile:
        sources = self.data.sources
        if self.data.train_source not in sources:
            raise invalid(
                f"is not one of data.sources {sorted(sources)}",
                "Pick a dataset listed under data.sources.",
                key="data.train_source",
                value=self.data.train_source,
            )
        # Checked against every source, not only the training one, so that switching
        # data.train_source keeps profiles valid; fractions of absent languages do not apply.
        known = sorted({lang for source in sources.values() for lang in source.languages})
        for name, fractions in self.profiles.items():
            for lang, value in fractions.items():
                if lang != "default" and lang not in known:
                    raise invalid(
                        "is not a language of any data source",
                        f"{did_you_mean(lang, ['default', *known], f'profiles.{name}')}Profiles take `default` and the languages {known}.",
                        key=f"profiles.{name}.{lang}",
                        value=value,
                    )
        if self.sampling not in self.strategies:
            raise invalid(
                f"is not among the trained strategies {[str(s) for s in self.strategies]}",
                f"Add {self.sampling} to `strategies`, or pick one of those as the headline.",
                key="sampling",
                value=str(self.sampling),
            )
        return self

    def to_params(self) -> Params:
        profiles = {
            name: Profile(name, fractions.get("default", 1.0), {lang: f for lang, f in fractions.items() if lang != "default"})
            for name, fractions in self.profiles.items()
        }
        settings = (self.mono, self.cross, self.multi, self.hybrid)
        return Params(
            sampling=self.sampling,
            data=self.data,
            profiles=profiles,
            model=self.model,
            strategies=list(self.strategies),
            seeds=list(self.seeds),
            strategy_settings={s.strategy: s for s in settings},
            train=self.train,
            eval=self.eval,
            index=self.index,
        )


def parse_params(raw: Any) -> Params:
    """Validate a params mapping; raise one :class:`MlretError` naming the first bad key."""
    try:
        return _ParamsFile.model_validate(raw).to_params()
    except ValidationError as err:
        raise as_mlret_error(err, _ParamsFile, ()) from None


_INDEX = TypeAdapter(IndexParams)


def parse_index_params(raw: Any) -> IndexParams:
    """Validate the ``index:`` section alone; raise :class:`MlretError` naming ``index.<key>``."""
    try:
        return _INDEX.validate_python(raw)
    except ValidationError as err:
        raise as_mlret_error(err, IndexParams, ("index",)) from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml`` (DVC keeps it at the repository root)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MlretError(f"{path}: file not found.", "Run the stage from the repository root, where params.yaml lives.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise MlretError(f"{path}: cannot be read as text ({err}).", "Point at the params.yaml file itself, readable and UTF-8.") from None
    except yaml.YAMLError as err:
        message = " ".join(str(err).split())
        raise MlretError(f"{path}: not valid YAML ({message}).", "Fix the syntax at the position shown.") from None
    if not isinstance(raw, dict):
        raise MlretError(f"{path}: expected a mapping at the top level.", "See the params.yaml shipped with the project.")
    return parse_params(raw)
