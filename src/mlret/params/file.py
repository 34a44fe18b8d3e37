"""params.yaml as a whole: one schema, read from the file, plus the checks that only hold across sections.

:class:`Params` is both what the file holds and what the stages read. The file
writes two sections in a shape of their own (a profile as a flat mapping with
``default``, runs keyed by name); :meth:`Params._from_file` validates those as
written, so an error names the key the user wrote, and hands on the objects.
Checks that relate sections (the training source among the sources, profile
languages among theirs, the headline strategy among those trained) belong to
the file (:func:`parse_params`), not to :class:`Params`: code may assemble a
partial configuration, as the report tests do, that a params.yaml may not be.

The file lives at the repository root because DVC keeps it there; it is the
one path the package knows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from mlret.errors import MlretError
from mlret.params.fields import CONFIG, Corpora, Fraction, SafeName, Section, Seed, Strategy
from mlret.params.report import as_mlret_error, did_you_mean, refusal
from mlret.params.sections import DataParams, EvalParams, IndexParams, ModelParams, Profile, ReportParams, TrainParams
from mlret.params.strategies import CrossSettings, HybridSettings, MonoSettings, MultiSettings, StrategySettings
from mlret.vocabulary import RunId

PARAMS_FILE = Path("params.yaml")


@dataclass(frozen=True, config=CONFIG)
class TrainingRun(Section):
    """One fine-tuning run of the grid: trained, encoded, indexed and scored by its own stages.

    The grid is a list rather than a product of strategies × profiles × seeds so
    that seeds and ladder profiles go only where the question needs them.
    """

    WHERE: ClassVar[str] = "runs"

    base: SafeName
    strategy: Strategy
    profile: SafeName
    seed: Seed
    corpora: Corpora = Corpora.ALL

    @property
    def id(self) -> RunId:
        """The run's identifier, which spells its folder name, stage key and label."""
        return RunId(self.base, str(self.strategy), self.profile, self.seed)

    @property
    def name(self) -> str:
        """The run's folder under its base's models/, data/eval/, metrics/: ``{strategy}/{profile}/{seed}``."""
        return self.id.name

    @property
    def key(self) -> str:
        """Its key under ``runs:`` and its DVC stage suffix (``train@{key}``)."""
        return self.id.key


@dataclass(frozen=True, config=ConfigDict(extra="ignore", allow_inf_nan=False))
class _AsWritten:
    """The sections params.yaml writes in another shape than :class:`Params` holds them."""

    profiles: Annotated[dict[SafeName, dict[SafeName, Fraction]], Field(min_length=1)] = dataclasses.field(
        default_factory=dict
    )
    runs: Annotated[dict[str, TrainingRun], Field(min_length=1)] = dataclasses.field(default_factory=dict)


_AS_WRITTEN = TypeAdapter(_AsWritten)


def _profile(name: str, flat: dict[str, float]) -> Profile:
    """A profile as written, ``{default: 1.0, zh: 0.1}``: ``default`` for the languages it does not list."""
    return Profile(name, flat.get("default", 1.0), {lang: f for lang, f in flat.items() if lang != "default"})


@dataclass(frozen=True, config=CONFIG)
class Params(Section):
    """The whole configuration; field for field the sections of params.yaml, in its order."""

    sampling: Strategy  # headline strategy: its metrics are the top-level ones
    data: DataParams
    profiles: dict[SafeName, Profile]
    bases: Annotated[dict[SafeName, ModelParams], Field(min_length=1)]
    runs: list[TrainingRun]
    mono: MonoSettings  # each strategy's own section: a run depends on its strategy's only
    cross: CrossSettings
    multi: MultiSettings
    hybrid: HybridSettings
    train: TrainParams
    eval: EvalParams
    index: IndexParams
    report: ReportParams = ReportParams()

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, data: Any) -> Any:
        """The file's mapping (code passes constructor arguments): profiles and runs as they are written."""
        if not isinstance(data, dict):
            return data
        written = _AS_WRITTEN.validate_python(data)
        if "profiles" in data:
            data = {**data, "profiles": {name: _profile(name, flat) for name, flat in written.profiles.items()}}
        if "runs" in data:
            data = {**data, "runs": list(written.runs.values())}
        return data

    @property
    def strategy_settings(self) -> dict[Strategy, StrategySettings]:
        """Each strategy's own settings, keyed by the strategy they configure."""
        return {settings.strategy: settings for settings in (self.mono, self.cross, self.multi, self.hybrid)}

    @property
    def strategies(self) -> list[Strategy]:
        """The strategies trained by some run, in the canonical order (mono, cross, multi, hybrid)."""
        trained = {run.strategy for run in self.runs}
        return [s for s in Strategy if s in trained]

    @property
    def seeds(self) -> list[int]:
        return sorted({run.seed for run in self.runs})

    def runs_of(self, base: str) -> list[TrainingRun]:
        """The runs that fine-tune ``base``, in the file's order."""
        return [run for run in self.runs if run.base == base]

    def model(self, base: str) -> ModelParams:
        """The settings of the base model keyed ``base`` under ``bases``; :class:`MlretError` if there is none."""
        if base not in self.bases:
            raise MlretError(
                f"bases: no base model {base!r}.",
                did_you_mean(base, list(self.bases), "") + f"Pick one of {sorted(self.bases)}.",
            )
        return self.bases[base]


def _check_across_sections(params: Params, run_keys: list[str]) -> None:
    """What no section can check alone; ``run_keys`` are the names the runs have under ``runs:``."""
    sources = params.data.sources
    if params.data.train_source not in sources:
        raise refusal(
            "data.train_source",
            f"is not one of data.sources {sorted(sources)}",
            "Pick a dataset listed under data.sources.",
            params.data.train_source,
        )
    # Checked against every source, not only the training one, so that switching
    # data.train_source keeps profiles valid; fractions of absent languages do not apply.
    known = sorted({lang for source in sources.values() for lang in source.languages})
    for name, profile in params.profiles.items():
        for lang, value in profile.fractions.items():
            if lang not in known:
                raise refusal(
                    f"profiles.{name}.{lang}",
                    "is not a language of any data source",
                    did_you_mean(lang, ["default", *known], f"profiles.{name}")
                    + f"Profiles take `default` and the languages {known}.",
                    value,
                )
    for key, run in zip(run_keys, params.runs, strict=True):
        if run.base not in params.bases:
            raise refusal(
                f"runs.{key}.base",
                "is not a base model of `bases`",
                did_you_mean(run.base, list(params.bases), "") + f"Pick one of {sorted(params.bases)}.",
                run.base,
            )
        if run.profile not in params.profiles:
            raise refusal(
                f"runs.{key}.profile",
                "is not a profile of `profiles`",
                did_you_mean(run.profile, list(params.profiles), f"runs.{key}.profile")
                + f"Pick one of {sorted(params.profiles)}.",
                run.profile,
            )
        if key != run.key:
            raise refusal(
                f"runs.{key}",
                f"names the run {run.key!r}",
                f"Key each run `{{base}}-{{strategy}}-{{profile}}-{{seed}}`: rename it to `{run.key}`.",
            )
    for base, scope in params.report.primary_scope.items():
        if base not in params.bases:
            raise refusal(
                f"report.primary_scope.{base}",
                "is not a base model of `bases`",
                did_you_mean(base, list(params.bases), "") + f"Key it by one of {sorted(params.bases)}.",
                scope,
            )
    # Every base reports the headline strategy: the summary sets each base's answer side by side.
    for base in params.bases:
        trained = sorted({str(run.strategy) for run in params.runs_of(base)})
        if str(params.sampling) not in trained:
            raise refusal(
                "sampling",
                f"is not among the strategies trained on base {base!r} {trained}",
                f"Add a `{base}-{params.sampling}-...` run under `runs`, pick one of those as the headline, "
                f"or remove `bases.{base}`.",
                str(params.sampling),
            )


def _validated(kind: type[Any], raw: Any, where: tuple[str, ...] = ()) -> Any:
    """``raw`` read as ``kind``; pydantic's report becomes one :class:`MlretError` naming ``where`` + the key."""
    try:
        return TypeAdapter(kind).validate_python(raw)
    except ValidationError as err:
        raise as_mlret_error(err, kind, where) from None


def parse_params(raw: Any) -> Params:
    """Validate a params mapping; raise one :class:`MlretError` naming the first bad key."""
    params: Params = _validated(Params, raw)
    _check_across_sections(params, list(raw["runs"]))
    return params


def parse_index_params(raw: Any) -> IndexParams:
    """Validate the ``index:`` section alone; raise :class:`MlretError` naming ``index.<key>``."""
    index: IndexParams = _validated(IndexParams, raw, ("index",))
    return index


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
    """The one way the package reads YAML: :class:`_StrictLoader`; file and syntax errors as :class:`MlretError`."""
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
