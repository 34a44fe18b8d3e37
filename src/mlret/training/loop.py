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

Several GPUs: ``torchrun --nproc_per_node N stages/train.py ...``. All ranks
draw the same global batch of ``train.batch_size`` pairs from the same seeded
sampler and each embeds its own slice, so the strategy's language constraints
hold for the global batch, and the loss gathers passages across ranks so that
negatives span it too.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import resource
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from mlret.artifacts import read_table, write_bytes, write_json
from mlret.data.parallel import CANDIDATE_COLUMNS
from mlret.data.splits import TRAIN_COLUMNS
from mlret.distributed import rank_and_world
from mlret.errors import MlretError
from mlret.models.encoder import pool, resolve_precision
from mlret.models.loading import load_checkpoint, save_checkpoint
from mlret.params import ModelParams, Params, TrainParams
from mlret.training.loss import InfoNCELoss
from mlret.training.samplers import Batch, BatchSampler, PairPool, Sampling

LOG_COLUMNS = ["step", "loss", "learning_rate", "pairs_per_s"]
STATE_FORMAT = 1  # bump when the resumable state changes shape; older checkpoints then restart cleanly


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
        self._maybe_resume()
        started = time.perf_counter()
        start_step, start_pairs = self.step, self.pairs_seen
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", desc=f"train {self.spec.strategy.value}/{self.spec.profile}", disable=self.rank != 0)
        while self.step < self.total_steps:
            t0 = time.perf_counter()
            loss, lr, pairs = self.train_step()
            rate = pairs / max(time.perf_counter() - t0, 1e-9)
            self.log.append({"step": self.step, "loss": loss, "learning_rate": lr, "pairs_per_s": rate})
            bar.set_postfix(loss=f"{loss:.4f}", pairs_s=f"{rate:.1f}")
            bar.update(1)
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
        if self.rank != 0:
            return
        state = {
            "format": STATE_FORMAT,
            "run_params": self._run_params(),
            "step": self.step,
            "pairs_seen": self.pairs_seen,
            "log": self.log,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        }
        save_checkpoint(self.net, self.tokenizer, self.spec.resume_dir, extra={"training_params.json": self._run_params()}, state=state)

    def _maybe_resume(self) -> None:
        state_path = self.spec.resume_dir / "trainer_state.pt"
        if not state_path.is_file():
            return
        # Our own file, written by _save_resume above: safe to unpickle.
        # Loaded on the CPU: RNG states must stay CPU tensors; the optimiser moves its own state to the parameters.
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state.get("format") != STATE_FORMAT or state.get("run_params") != self._run_params():
            print(f"{self.spec.resume_dir}: checkpoint is from other params or an older version; starting from scratch.")
            shutil.rmtree(self.spec.resume_dir, ignore_errors=True)
            return
        net, _ = load_checkpoint(self.spec.resume_dir)
        self.net.load_state_dict(net.state_dict())
        self.net.train()
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        self.step, self.pairs_seen, self.log = state["step"], state["pairs_seen"], state["log"]
        print(f"resuming from step {self.step} ({self.spec.resume_dir})")


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name


def train_run(spec: RunSpec, model: ModelParams, train: TrainParams, mono_ratio: float, device: str | None = None) -> dict[str, Any]:
    """Train one (strategy, profile, seed) and write its checkpoint, log and metrics."""
    return Trainer(spec, model, train, mono_ratio, device).run()
