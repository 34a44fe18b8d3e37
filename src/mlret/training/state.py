"""The resumable state of a training run: what identifies the run, and how its state is stored without pickle.

A checkpoint belongs to one *run identity*: a SHA-256 over everything that
decides the result (the params the stage depends on: ``train``, the
strategy's own settings, the model's pooling and prefixes; strategy, profile,
seed; the bytes of the training and candidate tables and of the base model;
the state format). A checkpoint of any other identity, or one that cannot be
read, is refused with :class:`Unusable`: resuming it would silently mix two
experiments.

Tensors (weights, optimiser moments, torch RNG states) go to safetensors,
everything else (identity, counters, log, schedule, sampler, CPU RNG states)
to JSON, and the identity is read from the JSON before any tensor is loaded.
A save appears in one rename (:func:`mlret.artifacts.staged_dir`), so an
interrupted save leaves the previous one intact. :class:`Resumable` names the
parts of a trainer that a checkpoint holds besides its counters;
:func:`save_resumable` and :func:`restore_resumable` move them to and from disk,
:func:`snapshot` and :func:`restore_snapshot` hold them in memory while a
checkpoint is tried.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mlret.artifacts import staged_dir, write_json
from mlret.params import ModelParams, TrainParams
from mlret.training.samplers import BatchSampler
from mlret.training.spec import RunSpec

STATE_FORMAT = 3  # bump when the resumable state changes shape; older checkpoints then restart cleanly
STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
LOG_COLUMNS = ("step", "loss", "learning_rate", "pairs_per_s")  # a row of the loss log, and the columns of its CSV
# Where each optimiser's state (and its schedule's) lives in a checkpoint: the dense AdamW, then the lazy
# embedding optimiser.
OPTIMIZER_KEYS = (("optimizer", "scheduler"), ("embedding_optimizer", "embedding_scheduler"))


class Unusable(Exception):
    """Why a checkpoint cannot be resumed (the run then starts from scratch)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_sha256(folder: Path) -> str:
    """One hash over every file of a folder (names and bytes), so a changed config, weight or tokenizer file shows."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(
            path.relative_to(folder).as_posix().encode("utf-8") + b"\0" + file_sha256(path).encode("ascii") + b"\n"
        )
    return digest.hexdigest()


def run_identity(spec: RunSpec, model: ModelParams, train: TrainParams) -> str:
    """SHA-256 over everything that decides a run's weights; a checkpoint is resumed only into the same identity.

    The params are those the DVC stage depends on (``train``, the strategy's own
    section, the model's pooling and prefixes): a change DVC re-runs the stage
    for must also invalidate the checkpoint. Data and base model enter by
    content, since a re-split or a new base model keeps the same paths.
    """
    described = {
        "format": STATE_FORMAT,
        "strategy": spec.strategy.value,
        "strategy_settings": dataclasses.asdict(spec.settings),
        "profile": spec.profile,
        "seed": spec.seed,
        "train": dataclasses.asdict(train),
        "model": {
            "pooling": model.pooling,
            "query_prefix": model.query_prefix,
            "passage_prefix": model.passage_prefix,
            "freeze_word_embeddings": model.freeze_word_embeddings,
        },
        "train_table": file_sha256(spec.train_table),
        "candidates_table": file_sha256(spec.candidates_table),
        "base_model": folder_sha256(spec.base_model),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode("utf-8")).hexdigest()


def write_state(folder: Path, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Replace ``folder`` by the state (JSON) and tensors (safetensors, checksummed in the JSON)."""
    with staged_dir(folder) as staging:
        save_file(tensors, str(staging / STATE_TENSORS))
        write_json(
            staging / STATE_JSON,
            {**state, "format": STATE_FORMAT, "tensors_sha256": file_sha256(staging / STATE_TENSORS)},
        )


def read_state(folder: Path, identity: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A checkpoint's JSON and tensors, the JSON's format and identity checked before any tensor file is opened."""
    if not (folder / STATE_JSON).is_file():
        raise Unusable(f"it has no {STATE_JSON} (written by an older version, or incomplete)")
    try:
        state = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise Unusable(f"{STATE_JSON} is unreadable ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise Unusable("it was written by another version of the trainer")
    if state.get("identity") != identity:
        raise Unusable("it belongs to another run (params, training data or base model differ)")
    _check_log(state)
    try:
        if file_sha256(folder / STATE_TENSORS) != state.get("tensors_sha256"):
            raise Unusable(f"{STATE_TENSORS} does not match its checksum")
        tensors = load_file(str(folder / STATE_TENSORS), device="cpu")
    except (OSError, SafetensorError) as err:
        raise Unusable(f"{STATE_TENSORS} is unreadable ({type(err).__name__})") from None
    return state, tensors


def _check_log(state: dict[str, Any]) -> None:
    """The loss log must be one row of numbers per step done: it is written out as is when the run ends.

    A damaged log would otherwise be resumed and fail only then, in the
    metrics or the CSV, on every re-run, instead of being discarded here.
    """
    step, log = state.get("step"), state.get("log")
    if not isinstance(step, int) or isinstance(step, bool) or not isinstance(log, list) or len(log) != step:
        raise Unusable("its loss log does not have one row per step done")
    for number, row in enumerate(log, start=1):
        numbers = (
            isinstance(row, dict)
            and set(row) == set(LOG_COLUMNS)
            and all(isinstance(row[key], (int, float)) and not isinstance(row[key], bool) for key in LOG_COLUMNS)
        )
        if not numbers or row["step"] != number:
            raise Unusable(f"row {number} of its loss log is damaged")


# -- a trainer's parts, to and from a checkpoint ------------------------------------------------


@dataclass(frozen=True)
class Resumable:
    """What a checkpoint restores of a trainer besides its counters: the network, each optimiser with its schedule
    (in :data:`OPTIMIZER_KEYS` order), the sampler."""

    net: torch.nn.Module
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Any]
    sampler: BatchSampler


def save_resumable(folder: Path, parts: Resumable, progress: dict[str, Any]) -> None:
    """Write ``parts`` and ``progress`` (identity, run params, counters, log) as one checkpoint in ``folder``."""
    rng_tensors, rng = pack_rng()
    tensors = {f"model/{name}": cpu_copy(value) for name, value in parts.net.state_dict().items()} | rng_tensors
    state: dict[str, Any] = {**progress, "sampler": parts.sampler.state_dict(), **rng}
    for (key, schedule_key), optimizer, scheduler in zip(OPTIMIZER_KEYS, parts.optimizers, parts.schedulers):
        optimizer_tensors, state[key] = pack_optimizer(optimizer, key)
        tensors |= optimizer_tensors
        state[schedule_key] = scheduler.state_dict()
    write_state(folder, state, tensors)


def restore_resumable(
    parts: Resumable, state: dict[str, Any], tensors: dict[str, torch.Tensor], total_steps: int
) -> tuple[int, int, list[dict[str, float]]]:
    """Load a checkpoint into ``parts`` and return its (step, pairs seen, log).

    The caller restores a :func:`snapshot` if this raises.
    """
    parts.net.load_state_dict(
        {name[len("model/") :]: value for name, value in tensors.items() if name.startswith("model/")}
    )
    for (key, schedule_key), optimizer, scheduler in zip(OPTIMIZER_KEYS, parts.optimizers, parts.schedulers):
        optimizer.load_state_dict(unpack_optimizer(optimizer, state[key], tensors, key))
        if set(state[schedule_key]) != set(scheduler.state_dict()):
            raise ValueError("the schedule state has other fields")
        scheduler.load_state_dict(state[schedule_key])
    parts.sampler.load_state_dict(state["sampler"])
    unpack_rng(state, tensors)
    step, pairs_seen, log = int(state["step"]), int(state["pairs_seen"]), list(state["log"])
    if not 0 <= step <= total_steps:
        raise ValueError(f"step {step} is outside this run's {total_steps} steps")
    return step, pairs_seen, log


def snapshot(parts: Resumable) -> dict[str, Any]:
    """The parts (and the RNG states) before resuming, to return to if the checkpoint turns out unusable."""
    return {
        "net": {name: cpu_copy(value) for name, value in parts.net.state_dict().items()},
        "optimizers": [copy.deepcopy(o.state_dict()) for o in parts.optimizers],
        "schedulers": [copy.deepcopy(s.state_dict()) for s in parts.schedulers],
        "sampler": copy.deepcopy(parts.sampler.state_dict()),
        "rng": (
            torch.get_rng_state(),
            torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            np.random.get_state(),
            random.getstate(),
        ),
    }


def restore_snapshot(parts: Resumable, fresh: dict[str, Any]) -> None:
    parts.net.load_state_dict(fresh["net"])
    for optimizer, scheduler, optimizer_state, scheduler_state in zip(
        parts.optimizers, parts.schedulers, fresh["optimizers"], fresh["schedulers"]
    ):
        optimizer.load_state_dict(optimizer_state)
        scheduler.load_state_dict(scheduler_state)
    parts.sampler.load_state_dict(fresh["sampler"])
    set_rng_states(*fresh["rng"])


# -- optimiser and RNG states as tensors plus JSON ------------------------------------------


def pack_optimizer(
    optimizer: torch.optim.Optimizer, prefix: str = "optimizer"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The optimiser's moments as tensors (named ``prefix/index/key``), and its groups and scalar entries as JSON."""
    saved = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in saved["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/{index}/{key}"] = cpu_copy(value)
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": saved["param_groups"], "scalars": scalars}


def unpack_optimizer(
    optimizer: torch.optim.Optimizer, saved: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str = "optimizer"
) -> dict[str, Any]:
    """Rebuild an optimiser state dict, checking each moment against the shape of its parameter."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups = [
        {key: tuple(value) if isinstance(current.get(key), tuple) else value for key, value in group.items()}
        for group, current in zip(saved["param_groups"], optimizer.param_groups, strict=True)
    ]
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(f"{prefix}/"):
            _, position, name = key.split("/", 2)
            per_param.setdefault(int(position), {})[name] = value
    for index, scalars in saved["scalars"].items():
        per_param.setdefault(int(index), {}).update(scalars)
    for index, entries in per_param.items():
        if not 0 <= index < len(params):
            raise ValueError(f"optimiser state for parameter {index} of {len(params)}")
        for name, value in entries.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != params[index].shape:
                raise ValueError(
                    f"optimiser {name} of parameter {index} has shape {tuple(value.shape)}, "
                    f"not {tuple(params[index].shape)}"
                )
    return {"state": per_param, "param_groups": groups}


def pack_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Torch's (and CUDA's) RNG states as tensors, numpy's and Python's as JSON."""
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{index}"] = cuda_state
    numpy_name, numpy_keys, numpy_pos, numpy_has_gauss, numpy_gauss = np.random.get_state()
    python_version, python_internal, python_gauss = random.getstate()
    return tensors, {
        "numpy_rng": [
            numpy_name,
            np.asarray(numpy_keys).tolist(),
            int(numpy_pos),
            int(numpy_has_gauss),
            float(numpy_gauss),
        ],
        "python_rng": [python_version, list(python_internal), python_gauss],
    }


def unpack_rng(state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Restore :func:`pack_rng`'s states."""
    name, keys, pos, has_gauss, gauss = state["numpy_rng"]
    version, internal, python_gauss = state["python_rng"]
    cuda = sorted((int(key.rsplit("/", 1)[1]), value) for key, value in tensors.items() if key.startswith("rng/cuda/"))
    set_rng_states(
        tensors["rng/torch"],
        [value for _, value in cuda],
        (str(name), np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss)),
        (int(version), tuple(int(k) for k in internal), python_gauss),
    )


def set_rng_states(
    torch_state: torch.Tensor, cuda_states: Sequence[torch.Tensor], numpy_state: Any, python_state: Any
) -> None:
    np.random.set_state(numpy_state)  # the strict ones first: a bad state raises before anything changed
    random.setstate(python_state)
    torch.set_rng_state(torch_state)
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)


def cpu_copy(value: torch.Tensor) -> torch.Tensor:
    # A copy, so tensors that share storage (tied weights) can go into one safetensors file.
    return value.detach().to("cpu", copy=True).contiguous()
