"""Typed, validated view of ``params.yaml``.

Every stage reads its configuration through :func:`load_params`, so a bad
value fails once, before any work, with the key that holds it. Nothing else in
the package reads YAML.

Each section is declared once, as a frozen pydantic dataclass: its types,
ranges and choices are the validation. Dataclasses rather than pydantic models
because the package and its tests build these objects positionally and derive
variants with ``dataclasses.replace``; both keep working, and both validate
exactly like the file does. Unknown keys are errors at every level: a
misspelt ``train.batchsize`` must not train silently with the default.
Numbers are strict (``150.5`` is not a step count, ``'3'`` is not a number)
except that an int stands for a float (``learning_rate: 1``).

Checks that relate sections (the training source among the sources, profile
languages among theirs, the headline strategy among those trained) belong to
the file, not to the objects: code may assemble a partial configuration, as the
report tests do, that a params.yaml may not be.

pydantic's multi-line report never reaches the user: :func:`_as_mlret_error`
turns the first problem into one :class:`MlretError` naming the key, the value
and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from mlret.errors import MlretError

PARAMS_FILE = Path("params.yaml")


# ---------------------------------------------------------------------------
# choices


class _Choice(str, Enum):
    """A choice in params.yaml: equal to, printed and serialised as its plain string."""

    def __str__(self) -> str:  # f-strings follow it too: `hybrid/lowres/0`, not `Sampling.HYBRID/...`
        return str(self.value)


class Sampling(_Choice):
    """How a training batch mixes languages; ``hybrid`` draws mono or cross batches."""

    MONO = "mono"
    CROSS = "cross"
    MULTI = "multi"
    HYBRID = "hybrid"


class Pooling(_Choice):
    MEAN = "mean"  # e5, sentence-transformers models
    CLS = "cls"  # LaBSE


class Precision(_Choice):
    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class IndexType(_Choice):
    FLAT = "flat"
    HNSW = "hnsw"
    IVF = "ivf"


STRATEGIES = tuple(s.value for s in Sampling)
INDEX_TYPES = tuple(t.value for t in IndexType)


# ---------------------------------------------------------------------------
# value types: strict, so that YAML's guesses (1.5 for an int, 'yes' for a bool) fail


def _invalid(reason: str, fix: str, *, key: str = "", value: Any = ...) -> PydanticCustomError:
    """A failed check, printed as ``<where>.<key> = <value> <reason>.`` with ``fix`` under it.

    ``key`` is relative to where the validator runs (empty: that place itself).
    """
    ctx = {"reason": reason, "fix": fix, "key": key, "shown": "" if value is ... else _show(value)}
    return PydanticCustomError("mlret", "{reason}", ctx)


def _is_sha256(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise _invalid("is not a SHA-256 hex digest", "Give the 64 lowercase hex characters `sha256sum` prints.", value=value)
    return value


Name = Annotated[str, Field(min_length=1)]  # pydantic never turns a number into a str
Bool = Annotated[bool, Field(strict=True)]
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
Seed = Annotated[int, Field(strict=True, ge=0, lt=2**32)]  # training seeds numpy's global RNG, which takes 32 bits
PositiveFloat = Annotated[float, Field(strict=True, gt=0)]  # strict float still takes an int
NonNegativeFloat = Annotated[float, Field(strict=True, ge=0)]
Fraction = Annotated[float, Field(strict=True, ge=0, le=1)]
Sha256 = Annotated[str, AfterValidator(_is_sha256)]

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

_Section = TypeVar("_Section", bound=type)


def _reported_as(where: str) -> Callable[[_Section], _Section]:
    """Make building the section in code (or ``dataclasses.replace``) fail like the file does.

    One :class:`MlretError` naming ``<where>.<key>`` instead of pydantic's report:
    benchmarks and tools derive sections from command-line values. ``{name}`` in
    ``where`` is the object's own name. Validation of the file never calls
    ``__init__``, so it is not converted twice.
    """

    def decorate(cls: _Section) -> _Section:
        init = cls.__init__
        names = [f.name for f in dataclasses.fields(cls)]

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            if len(args) <= len(names) and not set(names[: len(args)]) & set(kwargs):
                args, kwargs = (), {**dict(zip(names, args)), **kwargs}  # errors then name the field, not the position
            try:
                init(self, *args, **kwargs)
            except ValidationError as err:
                name = kwargs.get("name", args[0] if args else "?")
                prefix = tuple(filter(None, where.format(name=name).split(".")))
                raise _as_mlret_error(err, cls, prefix) from None

        cls.__init__ = __init__  # type: ignore[misc]
        return cls

    return decorate


# ---------------------------------------------------------------------------
# sections


@_reported_as("data.sources.{name}")
@dataclass(frozen=True, config=_CONFIG)
class SourceParams:
    """One LAReQA-style dataset: where each language file lives and what it must hash to.

    In params.yaml ``name`` is not written: it is the key under ``data.sources``.
    """

    name: Name
    url: str
    sha256: Annotated[dict[str, Sha256], Field(min_length=1)]
    expected_questions: dict[str, PositiveInt]

    @property
    def languages(self) -> list[str]:
        return sorted(self.sha256)

    def url_for(self, lang: str) -> str:
        return self.url.format(lang=lang)

    @field_validator("url")
    @classmethod
    def _has_lang_placeholder(cls, url: str) -> str:
        if "{lang}" not in url:
            raise _invalid("has no `{lang}` placeholder", "Write the URL with `{lang}` where the language code goes.", value=url)
        return url

    @model_validator(mode="after")
    def _same_languages(self) -> SourceParams:
        if set(self.expected_questions) != set(self.sha256):
            raise _invalid(
                f"lists {sorted(self.expected_questions)}, but sha256 lists {sorted(self.sha256)}",
                "List the same languages in both.",
                key="expected_questions",
            )
        return self


@_reported_as("data.split")
@dataclass(frozen=True, config=_CONFIG)
class SplitParams:
    """Article-level train/dev/test fractions of the training source."""

    train: Fraction
    dev: Fraction
    test: Fraction
    seed: NonNegativeInt  # numpy's Generator takes any size

    @model_validator(mode="after")
    def _partition(self) -> SplitParams:
        total = self.train + self.dev + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise _invalid(f"fractions add up to {total:g}, not 1", "Make data.split.train + dev + test equal 1.")
        if self.train == 0 or self.test == 0:
            raise _invalid("train and test fractions must be positive", "Give both a share of the articles.")
        return self


@_reported_as("data")
@dataclass(frozen=True, config=_CONFIG)
class DataParams:
    train_source: Name
    sources: Annotated[dict[str, SourceParams], Field(min_length=1)]
    split: SplitParams
    mirror: str | None = None  # local copy of the release; None (or empty): download
    download_retries: NonNegativeInt = 3

    @property
    def eval_sources(self) -> list[str]:
        """Every dataset is evaluated: the training source on its test articles, the rest in full."""
        return sorted(self.sources)

    @field_validator("sources", mode="before")
    @classmethod
    def _name_from_key(cls, sources: Any) -> Any:
        if not isinstance(sources, dict):
            return sources
        for name, raw in sources.items():
            if isinstance(raw, dict) and "name" in raw:
                raise _invalid(
                    "is not a key of a source",
                    f"Remove it: the source's name is its key under data.sources ({name!r}).",
                    key=f"{name}.name",
                    value=raw["name"],
                )
        return {name: {**raw, "name": name} if isinstance(raw, dict) else raw for name, raw in sources.items()}

    @field_validator("mirror")
    @classmethod
    def _empty_is_none(cls, mirror: str | None) -> str | None:
        return mirror or None


@_reported_as("profiles.{name}")
@dataclass(frozen=True, config=_CONFIG)
class Profile:
    """Fraction of training questions kept per language (``default`` for unlisted ones)."""

    name: Name
    default: Fraction = 1.0
    fractions: dict[str, Fraction] = dataclasses.field(default_factory=dict)

    def fraction(self, lang: str) -> float:
        return self.fractions.get(lang, self.default)


# Shorter texts are all special tokens and prefix.
TokenLength = Annotated[int, Field(strict=True, ge=4)]


@_reported_as("model")
@dataclass(frozen=True, config=_CONFIG)
class ModelParams:
    """Which pretrained encoder to start from, and how it turns text into one vector."""

    name: Name
    pooling: Pooling
    query_prefix: str
    passage_prefix: str
    max_query_length: TokenLength
    max_passage_length: TokenLength
    normalize: Bool


@_reported_as("train")
@dataclass(frozen=True, config=_CONFIG)
class TrainParams:
    """Contrastive fine-tuning; see mlret.training.loop for how each value is used."""

    batch_size: PositiveInt
    max_steps: PositiveInt | None
    epochs: PositiveFloat | None
    learning_rate: PositiveFloat
    warmup_ratio: Fraction
    weight_decay: NonNegativeFloat
    max_grad_norm: PositiveFloat
    grad_accumulation: PositiveInt
    temperature: PositiveFloat
    symmetric: Bool
    sampling_alpha: NonNegativeFloat  # 1 proportional, < 1 up-samples small languages, 0 uniform
    hard_negatives: NonNegativeInt
    freeze_word_embeddings: Bool
    max_query_length: PositiveInt
    max_passage_length: PositiveInt
    save_every: PositiveInt
    precision: Precision

    @model_validator(mode="after")
    def _has_a_length(self) -> TrainParams:
        if self.max_steps is None and self.epochs is None:
            raise _invalid("neither max_steps nor epochs is set", "Set train.max_steps (takes precedence) or train.epochs.")
        return self


@_reported_as("index")
@dataclass(frozen=True, config=_CONFIG)
class IndexParams:
    """Which FAISS index to build and how hard it searches.

    ``hnsw_*`` apply to ``hnsw``, ``ivf_*`` to ``ivf``; ``flat`` is exact and
    takes none. ``hnsw_ef_search`` and ``ivf_nprobe`` are search-time knobs,
    applied when an index is built or loaded, so they can change without a
    rebuild.
    """

    type: IndexType
    hnsw_m: PositiveInt = 32
    hnsw_ef_search: PositiveInt = 128
    hnsw_ef_construction: PositiveInt = 200
    ivf_nlist: PositiveInt = 1024
    ivf_nprobe: PositiveInt = 32

    @model_validator(mode="after")
    def _probe_within_lists(self) -> IndexParams:
        if self.ivf_nprobe > self.ivf_nlist:
            raise _invalid(
                f"exceeds index.ivf_nlist = {self.ivf_nlist}",
                f"Probe at most all {self.ivf_nlist} lists (that is an exact search).",
                key="ivf_nprobe",
                value=self.ivf_nprobe,
            )
        return self


@_reported_as("eval")
@dataclass(frozen=True, config=_CONFIG)
class EvalParams:
    batch_size: PositiveInt  # texts per forward pass when encoding corpora
    beir: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> folder with one BEIR-layout subfolder per language

    @field_validator("beir", mode="before")
    @classmethod
    def _null_is_empty(cls, beir: Any) -> Any:
        return {} if beir is None else beir

    @field_validator("beir")
    @classmethod
    def _folders_exist(cls, beir: dict[str, str]) -> dict[str, str]:
        for name, folder in beir.items():
            if not Path(folder).is_dir():
                raise _invalid("is not a folder", "Point it at a folder holding one BEIR-layout subfolder per language.", key=name, value=folder)
        return beir


@_reported_as("")
@dataclass(frozen=True, config=_CONFIG)
class Params:
    sampling: Sampling  # headline strategy: its metrics are the top-level ones
    data: DataParams
    profiles: dict[str, Profile]
    model: ModelParams
    strategies: list[Sampling]
    seeds: list[Seed]
    mono_ratio: Fraction  # hybrid.mono_ratio in params.yaml
    train: TrainParams
    eval: EvalParams
    index: IndexParams


# ---------------------------------------------------------------------------
# the file: the sections above, plus what only holds across them


class _NoSettings(BaseModel):
    """A strategy section with nothing to set yet; it exists so each run depends on its own."""

    model_config = _CONFIG


class _HybridSettings(BaseModel):
    model_config = _CONFIG
    mono_ratio: Fraction  # probability that a hybrid batch is monolingual


def _unique(values: list[Any]) -> list[Any]:
    plain = [v.value if isinstance(v, Enum) else v for v in values]
    repeated = sorted({v for v in plain if plain.count(v) > 1})
    if repeated:
        raise _invalid(f"repeats {repeated}", "List each value once: a repeat would train the same run twice.", value=plain)
    return values


class _ParamsFile(BaseModel):
    """params.yaml as written: profiles as flat mappings, one section per strategy."""

    model_config = _CONFIG

    sampling: Sampling
    data: DataParams
    profiles: Annotated[dict[str, dict[str, Fraction]], Field(min_length=1)]
    model: ModelParams
    strategies: Annotated[list[Sampling], Field(min_length=1), AfterValidator(_unique)]
    seeds: Annotated[list[Seed], Field(min_length=1), AfterValidator(_unique)]
    mono: _NoSettings
    cross: _NoSettings
    multi: _NoSettings
    hybrid: _HybridSettings
    train: TrainParams
    eval: EvalParams
    index: IndexParams

    @model_validator(mode="after")
    def _consistent(self) -> _ParamsFile:
        sources = self.data.sources
        if self.data.train_source not in sources:
            raise _invalid(
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
                    raise _invalid(
                        "is not a language of any data source",
                        f"{_did_you_mean(lang, ['default', *known], f'profiles.{name}')}Profiles take `default` and the languages {known}.",
                        key=f"profiles.{name}.{lang}",
                        value=value,
                    )
        if self.sampling not in self.strategies:
            raise _invalid(
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
        return Params(
            sampling=self.sampling,
            data=self.data,
            profiles=profiles,
            model=self.model,
            strategies=list(self.strategies),
            seeds=list(self.seeds),
            mono_ratio=self.hybrid.mono_ratio,
            train=self.train,
            eval=self.eval,
            index=self.index,
        )


# ---------------------------------------------------------------------------
# entry points


def parse_params(raw: Any) -> Params:
    """Validate a params mapping; raise one :class:`MlretError` naming the first bad key."""
    try:
        return _ParamsFile.model_validate(raw).to_params()
    except ValidationError as err:
        raise _as_mlret_error(err, _ParamsFile, ()) from None


_INDEX = TypeAdapter(IndexParams)


def parse_index_params(raw: Any) -> IndexParams:
    """Validate the ``index:`` section alone; raise :class:`MlretError` naming ``index.<key>``."""
    try:
        return _INDEX.validate_python(raw)
    except ValidationError as err:
        raise _as_mlret_error(err, IndexParams, ("index",)) from None


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


# ---------------------------------------------------------------------------
# from pydantic's report to one MlretError

_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")
_MAPPING = ("dict_type", "dataclass_type", "dataclass_exact_type", "model_type", "model_attributes_type")
_KINDS = {  # error type prefix -> (what the value is not, how to write one)
    "int_": ("an integer", "a whole number"),
    "float_": ("a number", "a number"),
    "bool_": ("true or false", "`true` or `false`"),
    "string_type": ("a string", "a string (quote it)"),
    "list_type": ("a list", "a list, e.g. `[a, b]`"),
}
_RETIRED = {
    # Read by nothing, so `-S seed=1` changed nothing.
    "seed": "Remove it: the training grid's seeds are `seeds: [...]` and the article split's is `data.split.seed`.",
}
_HINTS = {  # appended to the fix for these keys
    "model.pooling": " (`mean` for e5 and sentence-transformers models, `cls` for LaBSE)",
    "train.precision": " (`auto` unless you need bitwise-reproducible fp32)",
    "index.type": " (`flat` is exact; `hnsw` and `ivf` are approximate)",
    "profiles": ", e.g. `balanced: {default: 1.0}`",
    "seeds": ", e.g. `seeds: [0, 1, 2]`",
}


def _as_mlret_error(err: ValidationError, root: type, prefix: tuple[str, ...]) -> MlretError:
    """The most useful problem of ``err``: an unknown key first, since it often explains a missing one."""
    problems = err.errors(include_url=False)
    first = min(problems, key=lambda p: p["type"] not in _UNKNOWN_KEY)
    loc = tuple(part for part in first["loc"] if part != "[key]")
    kind, value, ctx = first["type"], first.get("input"), first.get("ctx") or {}
    path = _path(prefix + loc)
    hint = _HINTS.get(path, "")
    if kind == "mlret":
        key = tuple(ctx["key"].split(".")) if ctx["key"] else ()
        path = _path(prefix + loc + key)
        what = f"{path} = {ctx['shown']} {ctx['reason']}." if ctx["shown"] else f"{path}: {ctx['reason']}."
        return MlretError(what, ctx["fix"])
    if kind in _UNKNOWN_KEY:
        return _unknown_key(root, prefix, loc, value)
    if kind == "missing":
        return MlretError(f"{_path(prefix + loc[:-1])}: `{loc[-1]}` is missing.", f"Set `{path}` in params.yaml.")
    if kind in _MAPPING:
        return MlretError(f"{path} is not a mapping (got {_show(value)}).", f"Write `{path}` as a mapping of `key: value` entries.")
    shown = f"{path} = {_show(value)}"
    for start, (noun, example) in _KINDS.items():
        if kind.startswith(start):
            return MlretError(f"{shown} is not {noun}.", f"Give `{path}` {example}.")
    if kind in ("enum", "literal_error"):
        return MlretError(f"{shown} is not one of {ctx['expected']}.", f"Use one of {ctx['expected']}{hint}.")
    if kind == "greater_than" and ctx["gt"] == 0:
        noun = "integer" if _declared(root, loc) is int else "number"
        return MlretError(f"{shown} must be a positive {noun}.", f"Set `{path}` to a value above 0.")
    bounds = {  # error type -> (bound in ctx, reason, fix)
        "greater_than": ("gt", "must be above {}", "a value above {}"),
        "greater_than_equal": ("ge", "must be at least {}", "{} or more"),
        "less_than": ("lt", "must be below {}", "a value below {}"),
        "less_than_equal": ("le", "must be at most {}", "{} or less"),
    }
    if kind in bounds:
        bound, reason, target = bounds[kind]
        limit = _number(ctx[bound])
        return MlretError(f"{shown} {reason.format(limit)}.", f"Set `{path}` to {target.format(limit)}.")
    if kind == "finite_number":
        return MlretError(f"{shown} is not a finite number.", f"Give `{path}` a finite number.")
    if kind in ("too_short", "string_too_short"):
        return MlretError(f"{path} is empty.", f"Give `{path}` at least one entry{hint}." if kind == "too_short" else f"Give `{path}` a value.")
    return MlretError(f"{shown}: {first['msg']}.", "See the params.yaml shipped with the project for a valid value.")


def _unknown_key(root: type, prefix: tuple[str, ...], loc: tuple[Any, ...], value: Any) -> MlretError:
    what = f"{_path(prefix + loc)}: unknown key (set to {_show(value)})."
    section, key = prefix + loc[:-1], str(loc[-1])
    if not section and key in _RETIRED:
        return MlretError(what, _RETIRED[key])
    known = _known_keys(root, loc[:-1])
    if not known:
        return MlretError(what, f"Remove it: `{_path(section)}` takes no keys (leave it `{{}}`).")
    guess = _did_you_mean(key, known, _path(section) if section else "")
    return MlretError(what, f"{guess or 'Remove it. '}Keys of {_path(section)}: {', '.join(known)}.")


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) and text else (f".{part}" if text else str(part))
    return text or "params.yaml"


def _show(value: Any) -> str:
    shown = repr(str(value) if isinstance(value, Enum) else value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _did_you_mean(key: str, known: list[str], parent: str) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"Did you mean `{parent + '.' if parent else ''}{close[0]}`? " if close else ""


def _declared(root: type, loc: tuple[Any, ...]) -> Any:
    """The type declared for the value at ``loc`` (None if the walk leaves the declarations)."""
    kind: Any = _strip(root)
    for part in loc:
        fields = _fields_of(kind)
        if fields is not None:
            kind = fields.get(str(part))
        elif get_origin(kind) in (dict, list):
            kind = get_args(kind)[-1]
        else:
            return None
        kind = _strip(kind)
    return kind


def _known_keys(root: type, loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at ``loc`` takes; a source's name is its key, so not one of them."""
    kind = _declared(root, loc)
    fields = _fields_of(kind) or {}
    return [name for name in fields if not (kind is SourceParams and name == "name")]


def _fields_of(kind: Any) -> dict[str, Any] | None:
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return {name: info.annotation for name, info in kind.model_fields.items()}
    pydantic_fields = getattr(kind, "__pydantic_fields__", None)
    if isinstance(kind, type) and pydantic_fields is not None:
        return {name: info.annotation for name, info in pydantic_fields.items()}
    return None


def _strip(kind: Any) -> Any:
    """``T`` out of ``Annotated[T, ...]`` and ``T | None``."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
        elif get_origin(kind) in (Union, types.UnionType):
            kind = next(arg for arg in get_args(kind) if arg is not type(None))
        else:
            return kind
