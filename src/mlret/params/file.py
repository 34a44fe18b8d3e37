"""params.yaml as a whole: the sections, plus the checks that only hold across them.

Checks that relate sections (the training source among the sources, profile
languages among theirs, the headline strategy among those trained) belong to
the file, not to :class:`Params`: code may assemble a partial configuration,
as the report tests do, that a params.yaml may not be.

The file lives at the repository root because DVC keeps it there; it is the
one path the package knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

from mlret.errors import MlretError
from mlret.params.fields import CONFIG, Corpora, Fraction, SafeName, Seed, Strategy, reported_as
from mlret.params.report import as_mlret_error, did_you_mean, invalid
from mlret.params.sections import DataParams, EvalParams, IndexParams, ModelParams, Profile, TrainParams
from mlret.params.strategies import CrossSettings, HybridSettings, MonoSettings, MultiSettings, StrategySettings

PARAMS_FILE = Path("params.yaml")


@reported_as("runs")
@dataclass(frozen=True, config=CONFIG)
class TrainingRun:
    """One fine-tuning run of the grid: trained, encoded, indexed and scored by its own stages.

    The grid is a list rather than a product of strategies × profiles × seeds so
    that seeds and ladder profiles go only where the question needs them.
    """

    strategy: Strategy
    profile: SafeName
    seed: Seed
    corpora: Corpora = Corpora.ALL

    @property
    def name(self) -> str:
        """The run's folder under models/, data/eval/, metrics/: ``{strategy}/{profile}/{seed}``."""
        return f"{self.strategy}/{self.profile}/{self.seed}"

    @property
    def key(self) -> str:
        """Its key under ``runs:`` and its DVC stage suffix (``train@{key}``)."""
        return f"{self.strategy}-{self.profile}-{self.seed}"


@reported_as("")
@dataclass(frozen=True, config=CONFIG)
class Params:
    sampling: Strategy  # headline strategy: its metrics are the top-level ones
    data: DataParams
    profiles: dict[SafeName, Profile]
    model: ModelParams
    runs: list[TrainingRun]
    strategy_settings: dict[Strategy, StrategySettings]  # each strategy's own section of params.yaml
    train: TrainParams
    eval: EvalParams
    index: IndexParams

    @field_validator("strategy_settings")
    @classmethod
    def _settings_of_their_strategy(
        cls, settings: dict[Strategy, StrategySettings]
    ) -> dict[Strategy, StrategySettings]:
        for strategy, own in settings.items():
            if own.strategy is not strategy:
                raise invalid(
                    f"holds the settings of {own.strategy}",
                    "Key each strategy to its own settings object.",
                    key=str(strategy),
                )
        return settings

    @property
    def strategies(self) -> list[Strategy]:
        """The strategies trained by some run, in the canonical order (mono, cross, multi, hybrid)."""
        trained = {run.strategy for run in self.runs}
        return [s for s in Strategy if s in trained]

    @property
    def seeds(self) -> list[int]:
        return sorted({run.seed for run in self.runs})


class _ParamsFile(BaseModel):
    """params.yaml as written: profiles as flat mappings, one section per strategy."""

    model_config = CONFIG

    sampling: Strategy
    data: DataParams
    profiles: Annotated[dict[SafeName, dict[SafeName, Fraction]], Field(min_length=1)]
    model: ModelParams
    runs: Annotated[dict[str, TrainingRun], Field(min_length=1)]
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
        for key, run in self.runs.items():
            if run.profile not in self.profiles:
                raise invalid(
                    "is not a profile of `profiles`",
                    f"{did_you_mean(run.profile, list(self.profiles), f'runs.{key}.profile')}Pick one of {sorted(self.profiles)}.",
                    key=f"runs.{key}.profile",
                    value=run.profile,
                )
            if key != run.key:
                raise invalid(
                    f"names the run {run.key!r}",
                    f"Key each run `{{strategy}}-{{profile}}-{{seed}}`: rename it to `{run.key}`.",
                    key=f"runs.{key}",
                )
        trained = sorted({str(run.strategy) for run in self.runs.values()})
        if str(self.sampling) not in trained:
            raise invalid(
                f"is not among the trained strategies {trained}",
                f"Add a `{self.sampling}` run under `runs`, or pick one of those as the headline.",
                key="sampling",
                value=str(self.sampling),
            )
        return self

    def to_params(self) -> Params:
        profiles = {
            name: Profile(
                name, fractions.get("default", 1.0), {lang: f for lang, f in fractions.items() if lang != "default"}
            )
            for name, fractions in self.profiles.items()
        }
        settings = (self.mono, self.cross, self.multi, self.hybrid)
        return Params(
            sampling=self.sampling,
            data=self.data,
            profiles=profiles,
            model=self.model,
            runs=list(self.runs.values()),
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


class _Refused(yaml.constructor.ConstructorError):
    def __init__(self, problem: str, fix: str, mark: yaml.Mark) -> None:
        super().__init__(None, None, problem, mark)
        self.fix = fix


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing what DVC (YAML 1.2) and the stages would read differently.

    A repeated key is taken silently by PyYAML (the last one wins) and refused
    by DVC; ``yes``/``no``/``on``/``off`` are booleans to PyYAML (YAML 1.1) and
    strings to DVC. ``torchrun stages/train.py`` and ``python -m mlret.search``
    read the file without DVC, so both are refused here rather than letting
    the two readers disagree.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                first = seen[key].start_mark.line + 1
                raise _Refused(
                    f"key {key!r} appears twice (first on line {first}); DVC refuses the file",
                    "Keep one of the two.",
                    key_node.start_mark,
                )
            if isinstance(key, (str, int, float, bool)):
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> bool:
        if node.value.lower() not in ("true", "false"):
            raise _Refused(
                f"`{node.value}` is a boolean to the stages (YAML 1.1) but a string to DVC (YAML 1.2)",
                "Write `true` or `false` (or quote it if you mean the string).",
                node.start_mark,
            )
        return bool(super().construct_yaml_bool(node))


_StrictLoader.add_constructor("tag:yaml.org,2002:bool", _StrictLoader.construct_yaml_bool)


def read_yaml(path: str | Path) -> Any:
    """The one way the package reads YAML: :class:`_StrictLoader`, with file and syntax errors as :class:`MlretError`."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_StrictLoader)
    except FileNotFoundError:
        raise MlretError(
            f"{path}: file not found.", "Run the stage from the repository root, where params.yaml lives."
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise MlretError(
            f"{path}: cannot be read as text ({err}).", "Point at the params.yaml file itself, readable and UTF-8."
        ) from None
    except _Refused as err:
        raise MlretError(f"{path}, line {err.problem_mark.line + 1}: {err.problem}.", err.fix) from None
    except yaml.YAMLError as err:
        message = " ".join(str(err).split())
        raise MlretError(f"{path}: not valid YAML ({message}).", "Fix the syntax at the position shown.") from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml`` (DVC keeps it at the repository root)."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise MlretError(
            f"{path}: expected a mapping at the top level.", "See the params.yaml shipped with the project."
        )
    return parse_params(raw)
