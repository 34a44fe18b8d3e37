"""The sections of params.yaml, each a frozen pydantic dataclass whose types, ranges and choices are its validation.

Dataclasses rather than pydantic models because the package and its tests
build these objects positionally and derive variants with
``dataclasses.replace``; both keep working, and both validate exactly like the
file does. Unknown keys are errors at every level: a misspelt
``train.batchsize`` must not train silently with the default. A check across
a section's fields runs in ``__post_init__``, which pydantic calls inside
validation, so its error is reported like any other.
"""

from __future__ import annotations

import dataclasses
import math
import string
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic.dataclasses import dataclass

from mlret.params.fields import (
    CONFIG,
    Bool,
    Fraction,
    IndexType,
    Name,
    NonNegativeFloat,
    NonNegativeInt,
    Pooling,
    PositiveFloat,
    PositiveInt,
    Precision,
    SafeName,
    Section,
    Sha256,
    TokenLength,
)
from mlret.params.report import invalid


@dataclass(frozen=True, config=CONFIG)
class SourceParams(Section):
    """One LAReQA-style dataset: where each language file lives and what it must hash to.

    In params.yaml ``name`` is not written: it is the key under ``data.sources``.
    """

    WHERE: ClassVar[str] = "data.sources.{name}"

    KEY_FIELD: ClassVar[str] = "name"

    name: SafeName
    url: str
    sha256: Annotated[dict[SafeName, Sha256], Field(min_length=1)]
    expected_questions: dict[SafeName, PositiveInt]

    @property
    def languages(self) -> list[str]:
        return sorted(self.sha256)

    def url_for(self, lang: str) -> str:
        return self.url.format(lang=lang)

    @field_validator("url")
    @classmethod
    def _has_lang_placeholder(cls, url: str) -> str:
        """The URL is a ``str.format`` pattern: checked here, so a stray brace fails with params, not mid-download."""
        try:
            fields = {field for _, field, _, _ in string.Formatter().parse(url) if field is not None}
        except ValueError as err:
            raise invalid(
                f"is not a valid URL pattern ({err})",
                "Write `{lang}` where the language code goes and double any other brace (`{{`, `}}`).",
                value=url,
            ) from None
        if fields != {"lang"}:
            others = sorted(fields - {"lang"})
            reason = f"has the unknown placeholder(s) {others}" if others else "has no `{lang}` placeholder"
            raise invalid(
                reason,
                "Write the URL with `{lang}` (the only placeholder) where the language code goes; "
                "double a literal brace.",
                value=url,
            )
        return url

    def __post_init__(self) -> None:
        if set(self.expected_questions) != set(self.sha256):
            raise invalid(
                f"lists {sorted(self.expected_questions)}, but sha256 lists {sorted(self.sha256)}",
                "List the same languages in both.",
                key="expected_questions",
            )


@dataclass(frozen=True, config=CONFIG)
class SplitParams(Section):
    """Article-level train/dev/test fractions of the training source."""

    WHERE: ClassVar[str] = "data.split"

    train: Fraction
    dev: Fraction
    test: Fraction
    seed: NonNegativeInt  # numpy's Generator takes any size

    def __post_init__(self) -> None:
        total = self.train + self.dev + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise invalid(f"fractions add up to {total:g}, not 1", "Make data.split.train + dev + test equal 1.")
        if self.train == 0 or self.test == 0:
            raise invalid("train and test fractions must be positive", "Give both a share of the articles.")


@dataclass(frozen=True, config=CONFIG)
class DataParams(Section):
    WHERE: ClassVar[str] = "data"

    train_source: SafeName
    sources: Annotated[dict[SafeName, SourceParams], Field(min_length=1)]
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
                raise invalid(
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


@dataclass(frozen=True, config=CONFIG)
class Profile(Section):
    """Fraction of training questions kept per language (``default`` for unlisted ones)."""

    WHERE: ClassVar[str] = "profiles.{name}"

    name: SafeName
    default: Fraction = 1.0
    fractions: dict[SafeName, Fraction] = dataclasses.field(default_factory=dict)

    def fraction(self, lang: str) -> float:
        return self.fractions.get(lang, self.default)


@dataclass(frozen=True, config=CONFIG)
class ModelParams(Section):
    """One pretrained encoder of the grid (``bases.{key}``): where it comes from, how it turns text into one
    vector, and whether fine-tuning updates its word embeddings.

    ``freeze_word_embeddings`` belongs to the base, not to ``train``: a multilingual vocabulary
    already holds every language's words (and its 250k-row matrix dominates a CPU step), while an
    English vocabulary must learn the other languages' words.
    """

    WHERE: ClassVar[str] = "bases"

    name: Name
    pooling: Pooling
    query_prefix: str
    passage_prefix: str
    max_query_length: TokenLength
    max_passage_length: TokenLength
    normalize: Bool
    freeze_word_embeddings: Bool


@dataclass(frozen=True, config=CONFIG)
class TrainParams(Section):
    """Contrastive fine-tuning; see mlret.training.loop for how each value is used."""

    WHERE: ClassVar[str] = "train"

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
    # 1 proportional, < 1 up-samples small languages, 0 uniform;
    # above 10 the shares n**alpha overflow or round to one language
    sampling_alpha: Annotated[float, Field(strict=True, ge=0, le=10)]
    hard_negatives: NonNegativeInt
    max_query_length: TokenLength
    max_passage_length: TokenLength
    save_every: PositiveInt
    precision: Precision
    # quota: batch kinds and language (pair) counts fixed by apportionment, then shuffled; random: drawn i.i.d.
    schedule: Literal["quota", "random"] = "quota"

    def __post_init__(self) -> None:
        if self.max_steps is None and self.epochs is None:
            raise invalid(
                "neither max_steps nor epochs is set", "Set train.max_steps (takes precedence) or train.epochs."
            )


@dataclass(frozen=True, config=CONFIG)
class IndexParams(Section):
    """Which FAISS index to build and how hard it searches.

    ``hnsw_*`` apply to ``hnsw``, ``ivf_*`` to ``ivf``; ``flat`` is exact and
    takes none. ``hnsw_ef_search`` and ``ivf_nprobe`` are search-time knobs,
    applied when an index is built or loaded, so they can change without a
    rebuild.
    """

    WHERE: ClassVar[str] = "index"

    type: IndexType
    hnsw_m: PositiveInt = 32
    hnsw_ef_search: PositiveInt = 128
    hnsw_ef_construction: PositiveInt = 200
    ivf_nlist: PositiveInt = 1024
    ivf_nprobe: PositiveInt = 32

    def __post_init__(self) -> None:
        if self.ivf_nprobe > self.ivf_nlist:
            raise invalid(
                f"exceeds index.ivf_nlist = {self.ivf_nlist}",
                f"Probe at most all {self.ivf_nlist} lists (that is an exact search).",
                key="ivf_nprobe",
                value=self.ivf_nprobe,
            )


@dataclass(frozen=True, config=CONFIG)
class EvalParams(Section):
    WHERE: ClassVar[str] = "eval"

    batch_size: PositiveInt  # texts per forward pass when encoding corpora
    beir: dict[SafeName, str] = dataclasses.field(
        default_factory=dict
    )  # name -> folder with one BEIR-layout subfolder per language
    # Settings whose TREC run files `evaluate` writes. Cross is opt-in: its run holds pairs x queries x 100
    # lines (37 MB gzipped per model on XQuAD-R) and doubles the stage's time.
    trec_runs: list[Literal["mono", "cross", "multi"]] = dataclasses.field(default_factory=lambda: ["mono", "multi"])

    @field_validator("trec_runs")
    @classmethod
    def _no_repeats(cls, settings: list[str]) -> list[str]:
        repeated = sorted({s for s in settings if settings.count(s) > 1})
        if repeated:
            raise invalid(f"lists {repeated} more than once", "Name each setting once.")
        return settings

    @field_validator("beir", mode="before")
    @classmethod
    def _null_is_empty(cls, beir: Any) -> Any:
        return {} if beir is None else beir

    @field_validator("beir")
    @classmethod
    def _folders_exist(cls, beir: dict[str, str]) -> dict[str, str]:
        for name, folder in beir.items():
            if not Path(folder).is_dir():
                raise invalid(
                    "is not a folder",
                    "Point it at a folder holding one BEIR-layout subfolder per language.",
                    key=name,
                    value=folder,
                )
        return beir


@dataclass(frozen=True, config=CONFIG)
class ReportParams(Section):
    """How the report asks the robustness question of each base model; only the `report` stage reads it."""

    WHERE: ClassVar[str] = "report"

    # Per base, the settings whose contrasts form the primary (Holm-adjusted) family: `all` weighs mono,
    # cross and multi equally; one setting where a base learns only that one at the study's budget.
    primary_scope: dict[SafeName, Literal["all", "mono", "cross", "multi"]] = dataclasses.field(default_factory=dict)

    def scope_of(self, base: str) -> str:
        """The primary scope of ``base``: ``all`` unless ``primary_scope`` names another."""
        return self.primary_scope.get(base, "all")
