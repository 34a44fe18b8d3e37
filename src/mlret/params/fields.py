"""The building blocks of every section: choices, strict value types, and errors for objects built in code.

Each choice is an enum defined here once; the code that acts on a choice
(pooling, autocast precision, batch sampling, index building) imports it from
here, so params.yaml and the code can never accept different sets of values.

Numbers are strict (``150.5`` is not a step count, ``'3'`` is not a number)
except that an int stands for a float (``learning_rate: 1``).
"""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ArgsKwargs

from mlret.params.report import as_mlret_error, invalid

# ---------------------------------------------------------------------------
# choices


class Choice(str, Enum):
    """A choice in params.yaml: equal to, printed and serialised as its plain string."""

    def __str__(self) -> str:  # f-strings follow it too: `hybrid/balanced/0`, not `Strategy.HYBRID/...`
        return str(self.value)


class Strategy(Choice):
    """How a training run mixes languages in its batches; ``hybrid`` draws mono or cross batches."""

    MONO = "mono"
    CROSS = "cross"
    MULTI = "multi"
    HYBRID = "hybrid"


class Pooling(Choice):
    MEAN = "mean"  # e5, sentence-transformers models
    CLS = "cls"  # LaBSE


class Precision(Choice):
    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class Corpora(Choice):
    """What a trained model is scored on: everything, or only the training source's test articles (cheaper)."""

    ALL = "all"  # the in-domain test pool, every zero-shot dataset and every BEIR benchmark
    IN_DOMAIN = "in_domain"


class IndexType(Choice):
    FLAT = "flat"
    HNSW = "hnsw"
    IVF = "ivf"


STRATEGIES = tuple(s.value for s in Strategy)
INDEX_TYPES = tuple(t.value for t in IndexType)
CORPORA = tuple(c.value for c in Corpora)


# ---------------------------------------------------------------------------
# value types: strict, so that YAML's guesses (1.5 for an int, 'yes' for a bool) fail


def _is_sha256(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise invalid(
            "is not a SHA-256 hex digest", "Give the 64 lowercase hex characters `sha256sum` prints.", value=value
        )
    return value


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def _is_safe_name(value: str) -> str:
    """Profile, dataset and language names become folder names, file names and DVC stage arguments.

    So they may not hold a path separator, `..`, a space or a leading `-`
    (`../../x` would write outside the stage's output folder, `a/b` nest
    folders, `my profile` break the stage's command line).
    """
    if not _SAFE_NAME.fullmatch(value):
        raise invalid(
            "is not a safe name (it becomes a folder and a command-line argument)",
            "Use only letters, digits, `_` and `-`, starting with a letter or digit (e.g. `ladder_a`, `xquad-r`).",
            value=value,
        )
    return value


Name = Annotated[str, Field(min_length=1)]  # pydantic never turns a number into a str
SafeName = Annotated[
    str, Field(strict=True), AfterValidator(_is_safe_name)
]  # profile, dataset, language, benchmark names
Bool = Annotated[bool, Field(strict=True)]
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
Seed = Annotated[int, Field(strict=True, ge=0, lt=2**32)]  # training seeds numpy's global RNG, which takes 32 bits
PositiveFloat = Annotated[float, Field(strict=True, gt=0)]  # strict float still takes an int
NonNegativeFloat = Annotated[float, Field(strict=True, ge=0)]
Fraction = Annotated[float, Field(strict=True, ge=0, le=1)]
Sha256 = Annotated[str, AfterValidator(_is_sha256)]
TokenLength = Annotated[int, Field(strict=True, ge=4)]  # shorter texts are all special tokens and prefix

CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True, config=CONFIG)
class Section:
    """A section of params.yaml; built in code (or by ``dataclasses.replace``), it fails like the file does.

    One :class:`MlretError` naming ``<WHERE>.<key>`` instead of pydantic's report:
    benchmarks and tools derive sections from command-line values. ``{name}`` in
    ``WHERE`` is the object's own name. Read from the file (a mapping, not
    constructor arguments) the section leaves its errors to the file's report,
    which picks the most useful problem of all.
    """

    WHERE: ClassVar[str] = ""

    @model_validator(mode="wrap")
    @classmethod
    def _reported(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, ArgsKwargs):
            return handler(data)
        names = [f.name for f in dataclasses.fields(cls)]
        args, kwargs = data.args, data.kwargs or {}
        if len(args) <= len(names) and not set(names[: len(args)]) & set(kwargs):
            kwargs = {**dict(zip(names, args)), **kwargs}  # errors then name the field, not the position
            data = ArgsKwargs((), kwargs)
        try:
            return handler(data)
        except ValidationError as err:
            where = cls.WHERE.format(name=kwargs.get("name", args[0] if args else "?"))
            raise as_mlret_error(err, cls, tuple(filter(None, where.split(".")))) from None
