"""Fine-tune one (strategy, profile, seed): the body of the `train` stage.

The loop is deliberately plain PyTorch: the sampler decides what a batch holds,
:class:`~mlret.training.loss.InfoNCELoss` scores it, and the model is embedded
with the same pooling as :class:`~mlret.models.encoder.Encoder`, so what is
trained is exactly what is later evaluated.

Reproducibility: with ``train.precision: fp32`` on CPU, the same params and
seed give bitwise-identical weights, and a run resumed from a checkpoint ends
with the same weights as one that was never interrupted (sampler, RNG,
optimiser and schedule state are all saved). Outputs appear in one rename, so
DVC never caches a half-written model.

A checkpoint belongs to one *run identity*: a SHA-256 over everything that
decides the result (the params the stage depends on, strategy, profile, seed,
the bytes of the training and candidate tables and of the base model, the
state format). A checkpoint of any other identity, or one that cannot be read,
is discarded with a warning and the run starts from scratch: resuming it would
silently mix two experiments. The state is stored without pickle (tensors in
safetensors, the rest in JSON), and the identity is read from the JSON before
any tensor is loaded.

SIGTERM or SIGINT (and, under DVC, the exit of the ``dvc`` process that
started the run) stops training after the current step, saves a resumable
checkpoint and fails with :class:`TrainingInterrupted`, so re-running the
same command continues where it stopped.

Several GPUs: ``torchrun --nproc_per_node N stages/train.py ...``. All ranks
draw the same global batch of ``train.batch_size`` pairs from the same seeded
sampler and each embeds its own slice, so the strategy's language constraints
hold for the global batch, and the loss gathers passages across ranks so that
negatives span it too.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import resource
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from mlret.artifacts import read_table, set_default_modes, write_bytes, write_json
from mlret.data.parallel import CANDIDATE_COLUMNS
from mlret.data.splits import TRAIN_COLUMNS
from mlret.distributed import any_rank, rank_and_world
from mlret.errors import MlretError
from mlret.models.encoder import pool, resolve_precision
from mlret.models.loading import load_checkpoint, save_checkpoint
from mlret.params import ModelParams, Params, TrainParams
from mlret.training.loss import InfoNCELoss
from mlret.training.samplers import Batch, BatchSampler, PairPool, Sampling

LOG_COLUMNS = ["step", "loss", "learning_rate", "pairs_per_s"]
STATE_FORMAT = 2  # bump when the resumable state changes shape; older checkpoints then restart cleanly
STATE_JSON = "trainer_state.json"  # identity, counters, log, schedule, sampler, CPU RNG states
STATE_TENSORS = "trainer_state.safetensors"  # weights, optimiser moments, torch RNG states

logger = logging.getLogger(__name__)


class TrainingInterrupted(MlretError):
    """Training stopped on request (a signal, or the launching process exiting) after saving a resumable checkpoint."""

    def __init__(self, reason: str, step: int, resume_dir: Path) -> None:
        super().__init__(
            f"training stopped by {reason} after step {step}; a resumable checkpoint is in {resume_dir}.",
            "Run the same command (or `dvc repro`) again to continue from it.",
        )
        self.reason = reason


@dataclass(frozen=True)
class RunSpec:
    """Which run this is and where its files go."""

    strategy: Sampling
    profile: str
    seed: int
    train_table: Path
    candidates_table: Path
    base_model: Path
    out_dir: Path
    resume_dir: Path
    log_path: Path
    metrics_path: Path

    @classmethod
    def for_run(cls, strategy: Sampling, profile: str, seed: int, params: Params, root: Path = Path(".")) -> RunSpec:
        """The pipeline's file layout for one run (dvc.yaml names the same paths)."""
        if profile not in params.profiles:
            raise MlretError(f"--profile {profile!r} is not defined; params.yaml has {sorted(params.profiles)}.", "Pick one of those, or add it under `profiles`.")
        run = f"{strategy.value}/{profile}/{seed}"
        return cls(
            strategy=strategy,
            profile=profile,
            seed=seed,
            train_table=root / "data" / "splits" / profile / "train.parquet",
            candidates_table=root / "data" / "parallel" / params.data.train_source / "candidates.parquet",
            base_model=root / "models" / "base",
            out_dir=root / "models" / run,
            resume_dir=root / "checkpoints" / run,
            log_path=root / "plots" / "train" / f"{run}.csv",
            metrics_path=root / "metrics" / "train" / f"{run}.json",
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def planned_steps(train: TrainParams, n_rows: int) -> int:
    """``max_steps`` if set, else ``epochs`` passes over the profile's (question, language) rows."""
    if train.max_steps is not None:
        return train.max_steps
    assert train.epochs is not None
    return max(1, math.ceil(train.epochs * n_rows / (train.batch_size * train.grad_accumulation)))


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
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0" + file_sha256(path).encode("ascii") + b"\n")
    return digest.hexdigest()


def run_identity(spec: RunSpec, model: ModelParams, train: TrainParams, mono_ratio: float) -> str:
    """SHA-256 over everything that decides a run's weights; a checkpoint is resumed only into the same identity.

    The params are those the DVC stage depends on (``train``, the strategy's own
    section, the model's pooling and prefixes): a change DVC re-runs the stage
    for must also invalidate the checkpoint. Data and base model enter by
    content, since a re-split or a new base model keeps the same paths.
    """
    described = {
        "format": STATE_FORMAT,
        "strategy": spec.strategy.value,
        "profile": spec.profile,
        "seed": spec.seed,
        "mono_ratio": mono_ratio if spec.strategy is Sampling.HYBRID else None,
        "train": dataclasses.asdict(train),
        "model": {"pooling": model.pooling, "query_prefix": model.query_prefix, "passage_prefix": model.passage_prefix},
        "train_table": file_sha256(spec.train_table),
        "candidates_table": file_sha256(spec.candidates_table),
        "base_model": folder_sha256(spec.base_model),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode("utf-8")).hexdigest()


class Trainer:
    def __init__(self, spec: RunSpec, model: ModelParams, train: TrainParams, mono_ratio: float, device: str | None = None) -> None:
        self.spec, self.train, self.model = spec, train, model
        self.rank, self.world = rank_and_world()
        self.device = torch.device(device or (f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"))
        seed_everything(spec.seed)
        rows = read_table(spec.train_table, TRAIN_COLUMNS, "split")
        candidates = read_table(spec.candidates_table, CANDIDATE_COLUMNS, "parallelise")
        self.rows = rows.set_index(["qid", "lang"])
        self.candidate_text: dict[str, str] = dict(zip(candidates.candidate_id, candidates.text))
        self.sampler = BatchSampler(
            PairPool(rows), spec.strategy, train.batch_size, alpha=train.sampling_alpha,
            mono_ratio=mono_ratio, hard_negatives=train.hard_negatives, seed=spec.seed,
        )
        self.total_steps = planned_steps(train, len(rows))
        self.net, self.tokenizer = load_checkpoint(spec.base_model)
        self.net.to(self.device).train()
        if train.freeze_word_embeddings:
            self.net.get_input_embeddings().weight.requires_grad_(False)
        self.autocast_dtype = resolve_precision(train.precision, self.device)
        # Training truncates to the train.* lengths; prefixes and pooling are the model's.
        self.side = {
            "query": (model.query_prefix, train.max_query_length),
            "passage": (model.passage_prefix, train.max_passage_length),
        }
        decay = [p for n, p in self.net.named_parameters() if p.requires_grad and not _no_decay(n)]
        no_decay = [p for n, p in self.net.named_parameters() if p.requires_grad and _no_decay(n)]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=train.learning_rate,
        )
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, int(round(train.warmup_ratio * self.total_steps)), self.total_steps
        )
        self.loss_fn = InfoNCELoss(train.temperature, train.symmetric)
        self.ddp: torch.nn.Module = self.net
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.step = 0
        self.pairs_seen = 0
        self.log: list[dict[str, float]] = []

    # -- embedding -------------------------------------------------------------

    def embed(self, texts: Sequence[str], kind: str) -> torch.Tensor:
        prefix, max_length = self.side[kind]
        enc = self.tokenizer([prefix + t for t in texts], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        input_ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        hidden = self.ddp(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return F.normalize(pool(hidden, mask, self.model.pooling), p=2.0, dim=-1)

    def batch_texts(self, batch: Batch) -> tuple[list[str], list[str]]:
        """This rank's slice of a global batch: queries, then [positives; hard negatives]."""
        mine = range(self.rank, len(batch.pairs), self.world)
        queries = [self.rows.at[(batch.pairs[i].qid, batch.pairs[i].query_lang), "query"] for i in mine]
        positives = [self.rows.at[(batch.pairs[i].qid, batch.pairs[i].passage_lang), "positive"] for i in mine]
        negatives = [self.candidate_text[c] for i in mine for c in batch.hard_negatives[i]]
        return queries, positives + negatives

    # -- the loop ----------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.identity = run_identity(self.spec, self.model, self.train, self.sampler.mono_ratio)
        self._maybe_resume()
        started = time.perf_counter()
        start_step, start_pairs = self.step, self.pairs_seen
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", desc=f"train {self.spec.strategy.value}/{self.spec.profile}", disable=self.rank != 0)
        with StopRequests() as stop:
            while self.step < self.total_steps:
                t0 = time.perf_counter()
                loss, lr, pairs = self.train_step()
                rate = pairs / max(time.perf_counter() - t0, 1e-9)
                self.log.append({"step": self.step, "loss": loss, "learning_rate": lr, "pairs_per_s": rate})
                bar.set_postfix(loss=f"{loss:.4f}", pairs_s=f"{rate:.1f}")
                bar.update(1)
                # Every rank stops at the same step, or the others would wait forever in the next collective.
                if any_rank(stop.reason is not None, self.device):
                    self._save_resume()
                    bar.close()
                    raise TrainingInterrupted(stop.reason or "a stop request on another rank", self.step, self.spec.resume_dir)
                if self.step % self.train.save_every == 0 and self.step < self.total_steps:
                    self._save_resume()
        bar.close()
        wall = time.perf_counter() - started
        metrics = self._metrics(wall, self.pairs_seen - start_pairs, self.step - start_step)
        if self.rank == 0:
            self._write_outputs(metrics)
        return metrics

    def train_step(self) -> tuple[float, float, int]:
        """One optimiser step over ``grad_accumulation`` batches: (mean loss, learning rate used, pairs)."""
        self.optimizer.zero_grad(set_to_none=True)
        losses, pairs = [], 0
        for _ in range(self.train.grad_accumulation):
            batch = self.sampler.next_batch()
            losses.append(self.backward(*self.batch_texts(batch)))
            pairs += len(batch.pairs)
        lr = self.optimizer_step()
        self.step += 1
        self.pairs_seen += pairs
        return float(np.mean(losses)), lr, pairs

    def backward(self, queries: list[str], passages: list[str]) -> float:
        """Loss of one (micro-)batch, its gradients accumulated into the model."""
        with self._autocast():
            loss = self.loss_fn(self.embed(queries, "query"), self.embed(passages, "passage"))
        (loss / self.train.grad_accumulation).backward()
        return float(loss.detach())

    def optimizer_step(self) -> float:
        """Clip, step and advance the schedule; returns the learning rate the step used."""
        torch.nn.utils.clip_grad_norm_([p for p in self.net.parameters() if p.requires_grad], self.train.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        return lr

    def _autocast(self) -> Any:
        if self.autocast_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _metrics(self, wall: float, pairs: int, steps: int) -> dict[str, Any]:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        tail = [row["loss"] for row in self.log[-10:]]
        return {
            "steps": self.step,
            "pairs_seen": self.pairs_seen,
            "final_loss": float(np.mean(tail)) if tail else None,
            "language_share": self.sampler.language_share(),
            "batch_kinds": dict(self.sampler.kind_counts),
            "short_batches": self.sampler.short_batches,
            "wall_time_s": round(wall, 2),
            "pairs_per_s": round(pairs / wall, 2) if wall > 0 and steps else None,
            "peak_memory_mb": round(peak, 1),
            "device": str(self.device),
            "world_size": self.world,
        }

    # -- files ---------------------------------------------------------------------

    def _run_params(self) -> dict[str, Any]:
        return {
            "strategy": self.spec.strategy.value,
            "profile": self.spec.profile,
            "seed": self.spec.seed,
            "mono_ratio": self.sampler.mono_ratio,
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
        }

    def _write_outputs(self, metrics: dict[str, Any]) -> None:
        save_checkpoint(self.net, self.tokenizer, self.spec.out_dir, extra={"training_params.json": self._run_params()})
        write_bytes(self.spec.log_path, pd.DataFrame(self.log, columns=LOG_COLUMNS).to_csv(index=False).encode("utf-8"))
        write_json(self.spec.metrics_path, metrics)
        shutil.rmtree(self.spec.resume_dir, ignore_errors=True)

    def _save_resume(self) -> None:
        """Write the resumable state (no pickle) in one rename: an interrupted save leaves the previous one intact."""
        if self.rank != 0:
            return
        tensors = {f"model/{name}": _cpu_copy(value) for name, value in self.net.state_dict().items()}
        optimizer = self.optimizer.state_dict()
        optimizer_scalars: dict[str, dict[str, Any]] = {}
        for index, entries in optimizer["state"].items():
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer/{index}/{key}"] = _cpu_copy(value)
                else:
                    optimizer_scalars.setdefault(str(index), {})[key] = value
        tensors["rng/torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng/cuda/{index}"] = cuda_state
        numpy_name, numpy_keys, numpy_pos, numpy_has_gauss, numpy_gauss = np.random.get_state()
        python_version, python_internal, python_gauss = random.getstate()
        state = {
            "format": STATE_FORMAT,
            "identity": self.identity,
            "run_params": self._run_params(),
            "step": self.step,
            "pairs_seen": self.pairs_seen,
            "log": self.log,
            "optimizer": {"param_groups": optimizer["param_groups"], "scalars": optimizer_scalars},
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "numpy_rng": [numpy_name, np.asarray(numpy_keys).tolist(), int(numpy_pos), int(numpy_has_gauss), float(numpy_gauss)],
            "python_rng": [python_version, list(python_internal), python_gauss],
        }
        folder = self.spec.resume_dir
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        try:
            save_file(tensors, str(staging / STATE_TENSORS))
            state["tensors_sha256"] = file_sha256(staging / STATE_TENSORS)
            (staging / STATE_JSON).write_text(json.dumps(state, sort_keys=True) + "\n", encoding="utf-8")
            set_default_modes(staging)  # mkdtemp and safetensors create private modes
            _swap_in(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _maybe_resume(self) -> None:
        """Continue from ``resume_dir`` if it holds a readable checkpoint of this very run; otherwise discard it."""
        if not self.spec.resume_dir.exists():
            return
        fresh = self._snapshot()
        problem = None
        try:
            self._apply(*self._read_resume())
        except _Unusable as err:
            problem = str(err)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            problem = f"its state does not fit this run ({type(err).__name__}: {err})"
        if any_rank(problem is not None, self.device):
            self._apply_snapshot(fresh)
            if self.rank == 0:
                logger.warning("%s: discarding the checkpoint, %s; starting from scratch.", self.spec.resume_dir, problem or "another rank could not use it")
                shutil.rmtree(self.spec.resume_dir, ignore_errors=True)
            return
        if self.rank == 0:
            logger.warning("resuming from step %d (%s)", self.step, self.spec.resume_dir)

    def _read_resume(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The checkpoint's JSON and tensors, the JSON's identity checked before any tensor file is opened."""
        folder = self.spec.resume_dir
        if not (folder / STATE_JSON).is_file():
            raise _Unusable(f"it has no {STATE_JSON} (written by an older version, or incomplete)")
        try:
            state = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise _Unusable(f"{STATE_JSON} is unreadable ({type(err).__name__})") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise _Unusable("it was written by another version of the trainer")
        if state.get("identity") != self.identity:
            raise _Unusable("it belongs to another run (params, training data or base model differ)")
        try:
            if file_sha256(folder / STATE_TENSORS) != state.get("tensors_sha256"):
                raise _Unusable(f"{STATE_TENSORS} does not match its checksum")
            tensors = load_file(str(folder / STATE_TENSORS), device="cpu")
        except (OSError, SafetensorError) as err:
            raise _Unusable(f"{STATE_TENSORS} is unreadable ({type(err).__name__})") from None
        return state, tensors

    def _apply(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Load a checkpoint's state into this trainer (the caller restores the fresh state if this raises)."""
        self.net.load_state_dict({name[len("model/"):]: value for name, value in tensors.items() if name.startswith("model/")})
        self.optimizer.load_state_dict(self._optimizer_state(state["optimizer"], tensors))
        if set(state["scheduler"]) != set(self.scheduler.state_dict()):
            raise ValueError("the schedule state has other fields")
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        name, keys, pos, has_gauss, gauss = state["numpy_rng"]
        version, internal, python_gauss = state["python_rng"]
        cuda = sorted((int(key.rsplit("/", 1)[1]), value) for key, value in tensors.items() if key.startswith("rng/cuda/"))
        _set_rng_states(
            tensors["rng/torch"], [value for _, value in cuda],
            (str(name), np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss)),
            (int(version), tuple(int(k) for k in internal), python_gauss),
        )
        step, pairs_seen, log = int(state["step"]), int(state["pairs_seen"]), list(state["log"])
        if not 0 <= step <= self.total_steps:
            raise ValueError(f"step {step} is outside this run's {self.total_steps} steps")
        self.step, self.pairs_seen, self.log = step, pairs_seen, log

    def _optimizer_state(self, saved: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Rebuild an optimiser state dict, checking each moment against the shape of its parameter."""
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        groups = [
            {key: tuple(value) if isinstance(current.get(key), tuple) else value for key, value in group.items()}
            for group, current in zip(saved["param_groups"], self.optimizer.param_groups, strict=True)
        ]
        per_param: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer/"):
                _, index, name = key.split("/", 2)
                per_param.setdefault(int(index), {})[name] = value
        for index, scalars in saved["scalars"].items():
            per_param.setdefault(int(index), {}).update(scalars)
        for index, entries in per_param.items():
            if not 0 <= index < len(params):
                raise ValueError(f"optimiser state for parameter {index} of {len(params)}")
            for name, value in entries.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != params[index].shape:
                    raise ValueError(f"optimiser {name} of parameter {index} has shape {tuple(value.shape)}, not {tuple(params[index].shape)}")
        return {"state": per_param, "param_groups": groups}

    def _snapshot(self) -> dict[str, Any]:
        """The trainer's state before resuming, to return to if the checkpoint turns out unusable."""
        return {
            "net": {name: _cpu_copy(value) for name, value in self.net.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "scheduler": copy.deepcopy(self.scheduler.state_dict()),
            "sampler": copy.deepcopy(self.sampler.state_dict()),
            "rng": (torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [], np.random.get_state(), random.getstate()),
        }

    def _apply_snapshot(self, fresh: dict[str, Any]) -> None:
        self.net.load_state_dict(fresh["net"])
        self.optimizer.load_state_dict(fresh["optimizer"])
        self.scheduler.load_state_dict(fresh["scheduler"])
        self.sampler.load_state_dict(fresh["sampler"])
        _set_rng_states(*fresh["rng"])
        self.step, self.pairs_seen, self.log = 0, 0, []


class _Unusable(Exception):
    """Why a checkpoint cannot be resumed (the run then starts from scratch)."""


def _cpu_copy(value: torch.Tensor) -> torch.Tensor:
    # A copy, so tensors that share storage (tied weights) can go into one safetensors file.
    return value.detach().to("cpu", copy=True).contiguous()


def _set_rng_states(torch_state: torch.Tensor, cuda_states: Sequence[torch.Tensor], numpy_state: Any, python_state: Any) -> None:
    np.random.set_state(numpy_state)  # the strict ones first: a bad state raises before anything changed
    random.setstate(python_state)
    torch.set_rng_state(torch_state)
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)


def _swap_in(new: Path, target: Path) -> None:
    """Replace the folder ``target`` by ``new``; ``target`` is never half written."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        new.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(target)


class StopRequests:
    """SIGTERM and SIGINT, and under DVC the exit of the launching process, as a reason the loop polls between steps.

    Stopping between steps keeps every checkpoint exact. A second signal gets
    the previous handler (an immediate stop); the last saved checkpoint then
    still stands, since saves are atomic. DVC does not forward a SIGTERM it
    receives to its stage command, so a killed ``dvc repro`` would otherwise
    leave the training running on as an orphan.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}
        self._launcher_gone = _launcher_watch()

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    def _handle(self, signum: int, frame: object) -> None:
        self.signal = self.signal or signal.Signals(signum).name
        for other, previous in self._previous.items():
            signal.signal(other, signal.SIG_DFL if previous is None else previous)

    @property
    def reason(self) -> str | None:
        if self.signal is None and self._launcher_gone is not None and self._launcher_gone():
            self.signal = "the exit of the process that started it"
        return self.signal


def _launcher_watch() -> Callable[[], bool] | None:
    """Under DVC (it sets DVC_STAGE), a check that the process that started the run has exited.

    The launcher is the parent (``dvc``, the stage's shell having exec'd us) or,
    under torchrun, the parent of the torchrun agent.
    """
    if "DVC_STAGE" not in os.environ:
        return None
    parent = os.getppid()
    agent_parent = _parent_of(parent) if "TORCHELASTIC_RUN_ID" in os.environ else None
    return lambda: os.getppid() != parent or (agent_parent is not None and _parent_of(parent) != agent_parent)


def _parent_of(pid: int) -> int | None:
    """A process's parent id, from /proc (Linux); None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name


def train_run(spec: RunSpec, model: ModelParams, train: TrainParams, mono_ratio: float, device: str | None = None) -> dict[str, Any]:
    """Train one (strategy, profile, seed) and write its checkpoint, log and metrics."""
    return Trainer(spec, model, train, mono_ratio, device).run()
