"""Typed, validated view of ``params.yaml``.

Every stage reads its configuration through :func:`load_params`, so a bad
value fails once, before any work, with the key that holds it. The dataclasses
mirror the YAML sections one to one; nothing else in the package reads YAML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mlret.errors import MlretError

PARAMS_FILE = Path("params.yaml")


@dataclass(frozen=True)
class SourceParams:
    """One LAReQA-style dataset: where each language file lives and what it must hash to."""

    name: str
    url: str
    sha256: dict[str, str]
    expected_questions: dict[str, int]

    @property
    def languages(self) -> list[str]:
        return sorted(self.sha256)

    def url_for(self, lang: str) -> str:
        return self.url.format(lang=lang)


@dataclass(frozen=True)
class SplitParams:
    """Article-level train/dev/test fractions of the training source."""

    train: float
    dev: float
    test: float
    seed: int


@dataclass(frozen=True)
class DataParams:
    mirror: str | None
    train_source: str
    sources: dict[str, SourceParams]
    split: SplitParams
    download_retries: int = 3

    @property
    def eval_sources(self) -> list[str]:
        """Every dataset is evaluated: the training source on its test articles, the rest in full."""
        return sorted(self.sources)


@dataclass(frozen=True)
class Profile:
    """Fraction of training questions kept per language (``default`` for unlisted ones)."""

    name: str
    default: float
    fractions: dict[str, float] = field(default_factory=dict)

    def fraction(self, lang: str) -> float:
        return self.fractions.get(lang, self.default)


@dataclass(frozen=True)
class ModelParams:
    """Which pretrained encoder to start from, and how it turns text into one vector."""

    name: str
    pooling: str
    query_prefix: str
    passage_prefix: str
    max_query_length: int
    max_passage_length: int
    normalize: bool


STRATEGIES = ("mono", "cross", "multi", "hybrid")


@dataclass(frozen=True)
class TrainParams:
    """Contrastive fine-tuning; see mlret.training.loop for how each value is used."""

    batch_size: int
    max_steps: int | None
    epochs: float | None
    learning_rate: float
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    grad_accumulation: int
    temperature: float
    symmetric: bool
    sampling_alpha: float
    hard_negatives: int
    freeze_word_embeddings: bool
    max_query_length: int
    max_passage_length: int
    save_every: int
    precision: str


INDEX_TYPES = ("flat", "hnsw", "ivf")


@dataclass(frozen=True)
class IndexParams:
    """Which FAISS index to build and how hard it searches.

    ``hnsw_*`` apply to ``hnsw``, ``ivf_*`` to ``ivf``; ``flat`` is exact and
    takes none. ``hnsw_ef_search`` and ``ivf_nprobe`` are search-time knobs,
    applied when an index is built or loaded, so they can change without a
    rebuild.
    """

    type: str
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    hnsw_ef_construction: int = 200
    ivf_nlist: int = 1024
    ivf_nprobe: int = 32

def parse_index_params(raw: dict[str, Any]) -> IndexParams:
    """Validate the ``index:`` section; raise :class:`MlretError` naming ``index.<key>``."""
    where = "index"
    if not isinstance(raw, dict):
        raise MlretError(f"{where} is not a mapping.", "Write e.g. `index: {type: hnsw, hnsw_m: 32}` in params.yaml.")
    known = [f.name for f in fields(IndexParams)]
    unknown = sorted(str(key) for key in raw if key not in known)
    if unknown:
        raise MlretError(f"{where}: unknown key(s) {unknown}; known keys are {known}.", "Fix the spelling or remove the key.")
    kind = _get(raw, "type", str, where)
    if kind not in INDEX_TYPES:
        raise MlretError(f"{where}.type = {kind!r} is not one of {INDEX_TYPES}.", "Use `flat` (exact), `hnsw` or `ivf`.")
    values: dict[str, Any] = {"type": kind}
    for key in known[1:]:
        if key in raw:
            value = _get(raw, key, int, where)
            if value < 1:
                raise MlretError(f"{where}.{key} = {value} must be a positive int.", f"Set `{where}.{key}` to a value above 0.")
            values[key] = value
    params = IndexParams(**values)
    if params.ivf_nprobe > params.ivf_nlist:
        raise MlretError(
            f"{where}.ivf_nprobe = {params.ivf_nprobe} exceeds {where}.ivf_nlist = {params.ivf_nlist}.",
            f"Probe at most all {params.ivf_nlist} lists (that is an exact search).",
        )
    return params


@dataclass(frozen=True)
class EvalParams:
    batch_size: int  # texts per forward pass when encoding corpora
    beir: dict[str, str] = field(default_factory=dict)  # name -> folder with one BEIR-layout subfolder per language


@dataclass(frozen=True)
class Params:
    sampling: str
    seed: int
    data: DataParams
    profiles: dict[str, Profile]
    model: ModelParams
    strategies: list[str]
    seeds: list[int]
    mono_ratio: float
    train: TrainParams
    eval: EvalParams
    index: IndexParams


# ---------------------------------------------------------------------------
# parsing helpers: each names the key it complains about


def _section(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise MlretError(
            f"{where}: `{key}` is missing or not a mapping.",
            f"Add a `{key}:` section; see the params.yaml shipped with the project.",
        )
    return value


def _get(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in raw:
        raise MlretError(f"{where}: `{key}` is missing.", f"Set `{where}.{key}` in params.yaml.")
    value = raw[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise MlretError(
            f"{where}.{key} = {value!r} is not a {expected}.",
            f"Give `{where}.{key}` a {expected} value in params.yaml.",
        )
    return value


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise MlretError(
            f"{where} = {value!r} is not a fraction in [0, 1].",
            f"Set `{where}` to a number between 0 and 1 in params.yaml.",
        )
    return float(value)


def _parse_source(name: str, raw: dict[str, Any]) -> SourceParams:
    where = f"data.sources.{name}"
    url = _get(raw, "url", str, where)
    if "{lang}" not in url:
        raise MlretError(f"{where}.url has no `{{lang}}` placeholder.", "Write the URL with `{lang}` where the language code goes.")
    sha = _get(raw, "sha256", dict, where)
    for lang, digest in sha.items():
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise MlretError(f"{where}.sha256.{lang} = {digest!r} is not a SHA-256 hex digest.", "Give the 64 lowercase hex characters `sha256sum` prints.")
    expected = _get(raw, "expected_questions", dict, where)
    if set(expected) != set(sha):
        raise MlretError(
            f"{where}: languages in `expected_questions` ({sorted(expected)}) differ from those in `sha256` ({sorted(sha)}).",
            "List the same languages in both.",
        )
    return SourceParams(name=name, url=url, sha256={str(k): v for k, v in sha.items()}, expected_questions={str(k): int(v) for k, v in expected.items()})


def _parse_profile(name: str, raw: Any, known_langs: set[str]) -> Profile:
    where = f"profiles.{name}"
    if not isinstance(raw, dict):
        raise MlretError(f"{where} is not a mapping of language -> fraction.", "Write e.g. `{default: 1.0, th: 0.05}`.")
    default = _fraction(raw.get("default", 1.0), f"{where}.default")
    fractions: dict[str, float] = {}
    for lang, value in raw.items():
        if lang == "default":
            continue
        if lang not in known_langs:
            raise MlretError(
                f"{where}.{lang}: unknown language {lang!r}; the data sources have {sorted(known_langs)}.",
                "Use one of those codes, or remove the entry.",
            )
        fractions[str(lang)] = _fraction(value, f"{where}.{lang}")
    return Profile(name=name, default=default, fractions=fractions)


def parse_params(raw: dict[str, Any]) -> Params:
    """Validate a params mapping; raise :class:`MlretError` naming the first bad key."""
    data_raw = _section(raw, "data", "params.yaml")
    sources_raw = _section(data_raw, "sources", "data")
    sources = {name: _parse_source(name, _section(sources_raw, name, "data.sources")) for name in sources_raw}
    train_source = _get(data_raw, "train_source", str, "data")
    if train_source not in sources:
        raise MlretError(
            f"data.train_source = {train_source!r} is not one of data.sources ({sorted(sources)}).",
            "Pick a dataset listed under data.sources.",
        )
    split_raw = _section(data_raw, "split", "data")
    split = SplitParams(
        train=_fraction(_get(split_raw, "train", float, "data.split"), "data.split.train"),
        dev=_fraction(_get(split_raw, "dev", float, "data.split"), "data.split.dev"),
        test=_fraction(_get(split_raw, "test", float, "data.split"), "data.split.test"),
        seed=_get(split_raw, "seed", int, "data.split"),
    )
    if not math.isclose(split.train + split.dev + split.test, 1.0, abs_tol=1e-9):
        raise MlretError(
            f"data.split fractions add up to {split.train + split.dev + split.test:g}, not 1.",
            "Make data.split.train + dev + test equal 1.",
        )
    if split.train == 0 or split.test == 0:
        raise MlretError("data.split: train and test fractions must be positive.", "Give both a share of the articles.")
    mirror = data_raw.get("mirror")
    if mirror is not None and not isinstance(mirror, str):
        raise MlretError(f"data.mirror = {mirror!r} is not a path.", "Set it to a folder path, or to null to download.")
    retries = int(data_raw.get("download_retries", 3))
    data = DataParams(mirror=mirror or None, train_source=train_source, sources=sources, split=split, download_retries=retries)

    # Checked against every source, not only the training one, so that switching
    # data.train_source keeps profiles valid; fractions of absent languages do not apply.
    known_langs = {lang for source in sources.values() for lang in source.languages}
    profiles_raw = _section(raw, "profiles", "params.yaml")
    profiles = {str(name): _parse_profile(str(name), value, known_langs) for name, value in profiles_raw.items()}
    if not profiles:
        raise MlretError("profiles is empty.", "Define at least one profile, e.g. `balanced: {default: 1.0}`.")

    model_raw = _section(raw, "model", "params.yaml")
    pooling = _get(model_raw, "pooling", str, "model")
    if pooling not in ("mean", "cls"):
        raise MlretError(f"model.pooling = {pooling!r} is not `mean` or `cls`.", "Use `mean` (e5, sentence-transformers models) or `cls` (LaBSE).")
    model = ModelParams(
        name=_get(model_raw, "name", str, "model"),
        pooling=pooling,
        query_prefix=_get(model_raw, "query_prefix", str, "model"),
        passage_prefix=_get(model_raw, "passage_prefix", str, "model"),
        max_query_length=_get(model_raw, "max_query_length", int, "model"),
        max_passage_length=_get(model_raw, "max_passage_length", int, "model"),
        normalize=_get(model_raw, "normalize", bool, "model"),
    )
    for key in ("max_query_length", "max_passage_length"):
        if getattr(model, key) < 4:
            raise MlretError(f"model.{key} = {getattr(model, key)} is too small.", f"Set model.{key} to at least 4 tokens.")

    sampling = _get(raw, "sampling", str, "params.yaml")
    if sampling not in STRATEGIES:
        raise MlretError(f"sampling = {sampling!r} is not one of {STRATEGIES}.", "Set `sampling` to mono, cross, multi or hybrid.")
    strategies = _get(raw, "strategies", list, "params.yaml")
    for name in strategies:
        if name not in STRATEGIES:
            raise MlretError(f"strategies: {name!r} is not one of {STRATEGIES}.", "List only mono, cross, multi or hybrid.")
    for name in STRATEGIES:
        _section(raw, name, "params.yaml")  # each training run depends on its strategy's own section
    seeds = _get(raw, "seeds", list, "params.yaml")
    if not seeds or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
        raise MlretError(f"seeds = {seeds!r} is not a non-empty list of integers.", "Write e.g. `seeds: [0, 1, 2]`.")
    hybrid_raw = _section(raw, "hybrid", "params.yaml")
    mono_ratio = _fraction(_get(hybrid_raw, "mono_ratio", float, "hybrid"), "hybrid.mono_ratio")
    return Params(
        sampling=sampling,
        seed=_get(raw, "seed", int, "params.yaml"),
        data=data,
        profiles=profiles,
        model=model,
        strategies=[str(x) for x in strategies],
        seeds=[int(x) for x in seeds],
        mono_ratio=mono_ratio,
        train=_parse_train(_section(raw, "train", "params.yaml")),
        eval=_parse_eval(_section(raw, "eval", "params.yaml")),
        index=parse_index_params(_section(raw, "index", "params.yaml")),
    )


def _parse_eval(raw: dict[str, Any]) -> EvalParams:
    beir = raw.get("beir") or {}
    if not isinstance(beir, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in beir.items()):
        raise MlretError(f"eval.beir = {beir!r} is not a mapping of name -> folder.", "Write e.g. `beir: {miracl: /data/miracl}` (one subfolder per language).")
    for name, folder in beir.items():
        if not Path(folder).is_dir():
            raise MlretError(f"eval.beir.{name}: folder {folder} does not exist.", "Point it at a folder holding one BEIR-layout subfolder per language.")
    return EvalParams(batch_size=_positive(_get(raw, "batch_size", int, "eval"), "eval.batch_size"), beir=dict(beir))


def _positive(value: Any, where: str, kind: type = int) -> Any:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
        return value if value is None else kind(value)
    raise MlretError(f"{where} = {value!r} must be a positive {kind.__name__}.", f"Set `{where}` to a value above 0.")


def _parse_train(raw: dict[str, Any]) -> TrainParams:
    w = "train"
    max_steps = _positive(raw.get("max_steps"), "train.max_steps")
    epochs = _positive(raw.get("epochs"), "train.epochs", float)
    if max_steps is None and epochs is None:
        raise MlretError("train: neither max_steps nor epochs is set.", "Set train.max_steps (takes precedence) or train.epochs.")
    precision = _get(raw, "precision", str, w)
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise MlretError(f"train.precision = {precision!r} is not auto, fp32, bf16 or fp16.", "Use `auto` unless you need bitwise-reproducible fp32.")
    hard_negatives = _get(raw, "hard_negatives", int, w)
    if hard_negatives < 0:
        raise MlretError(f"train.hard_negatives = {hard_negatives} is negative.", "Use 0 (none) or a positive count.")
    alpha = _get(raw, "sampling_alpha", float, w)
    if alpha < 0:
        raise MlretError(f"train.sampling_alpha = {alpha} is negative.", "Use 1.0 (proportional), below 1 to up-sample small languages, 0 for uniform.")
    return TrainParams(
        batch_size=_positive(_get(raw, "batch_size", int, w), "train.batch_size"),
        max_steps=max_steps,
        epochs=epochs,
        learning_rate=_positive(_get(raw, "learning_rate", float, w), "train.learning_rate", float),
        warmup_ratio=_fraction(_get(raw, "warmup_ratio", float, w), "train.warmup_ratio"),
        weight_decay=_get(raw, "weight_decay", float, w),
        max_grad_norm=_positive(_get(raw, "max_grad_norm", float, w), "train.max_grad_norm", float),
        grad_accumulation=_positive(_get(raw, "grad_accumulation", int, w), "train.grad_accumulation"),
        temperature=_positive(_get(raw, "temperature", float, w), "train.temperature", float),
        symmetric=_get(raw, "symmetric", bool, w),
        sampling_alpha=alpha,
        hard_negatives=hard_negatives,
        freeze_word_embeddings=_get(raw, "freeze_word_embeddings", bool, w),
        max_query_length=_positive(_get(raw, "max_query_length", int, w), "train.max_query_length"),
        max_passage_length=_positive(_get(raw, "max_passage_length", int, w), "train.max_passage_length"),
        save_every=_positive(_get(raw, "save_every", int, w), "train.save_every"),
        precision=precision,
    )


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml`` (DVC keeps it at the repository root)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MlretError(f"{path}: file not found.", "Run the stage from the repository root, where params.yaml lives.") from None
    except yaml.YAMLError as err:
        raise MlretError(f"{path}: not valid YAML ({err}).", "Fix the syntax at the position shown.") from None
    if not isinstance(raw, dict):
        raise MlretError(f"{path}: expected a mapping at the top level.", "See the params.yaml shipped with the project.")
    return parse_params(raw)
