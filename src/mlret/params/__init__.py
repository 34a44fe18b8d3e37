"""Typed, validated view of ``params.yaml``.

Every stage reads its configuration through :func:`load_params`, so a bad
value fails once, before any work, with the key that holds it. Nothing else in
the package reads YAML.

The package, top down: ``file`` (the whole file, one schema, and the checks
across sections), ``sections`` (one frozen dataclass per section),
``strategies`` (each batch-sampling strategy's own settings), ``fields``
(choices, strict value types, the :class:`~mlret.params.fields.Section` base),
``report`` (pydantic's report turned into one :class:`~mlret.errors.MlretError`).
Import the names from here.
"""

from mlret.params.fields import CORPORA, INDEX_TYPES, STRATEGIES, Corpora, IndexType, Pooling, Precision, Strategy
from mlret.params.file import PARAMS_FILE, Params, TrainingRun, load_params, parse_index_params, parse_params, read_yaml
from mlret.params.sections import (
    DataParams,
    EvalParams,
    IndexParams,
    ModelParams,
    Profile,
    ReportParams,
    SourceParams,
    SplitParams,
    TrainParams,
)
from mlret.params.strategies import CrossSettings, HybridSettings, MonoSettings, MultiSettings, StrategySettings

__all__ = [
    "CORPORA",
    "INDEX_TYPES",
    "PARAMS_FILE",
    "STRATEGIES",
    "Corpora",
    "CrossSettings",
    "DataParams",
    "EvalParams",
    "HybridSettings",
    "IndexParams",
    "IndexType",
    "ModelParams",
    "MonoSettings",
    "MultiSettings",
    "Params",
    "Pooling",
    "Precision",
    "Profile",
    "ReportParams",
    "SourceParams",
    "SplitParams",
    "Strategy",
    "StrategySettings",
    "TrainParams",
    "TrainingRun",
    "load_params",
    "parse_index_params",
    "parse_params",
    "read_yaml",
]
